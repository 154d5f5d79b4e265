// A long-running real peer (redis-server, dnsmasq...) started by a test: its
// output kept for failure messages, SIGKILLed at teardown.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Test } from 'tap';

export interface Daemon {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
}

export function daemon(t: Test, command: string, args: string[]): Daemon {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (c: Buffer) => {
    output += c.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  t.teardown(() => {
    const failed = child.exitCode !== null && child.exitCode !== 0;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (failed) t.comment(`${command} output:\n${output}`);
  });
  return { child, output: () => output };
}
