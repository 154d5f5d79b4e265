// `harbor-sidecar exec -- CMD ARGS...`: run a start command with the port
// variables added, passing signals to it and its exit status back.
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { HarborError } from '../../errors/index.js';
import type { CommandContext } from '../context.js';
import { portVariablesOrStatus } from './env.js';

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
];

export async function execCommand(context: CommandContext): Promise<number> {
  const { positionals, env, stderr } = context;
  const [file, ...args] = positionals;
  if (file === undefined)
    throw new HarborError('E_USAGE', 'exec needs a command: harbor-sidecar exec -- CMD ARGS...');
  const variables = portVariablesOrStatus(context);
  if (typeof variables === 'number') return variables;
  // The relays are in place before the child starts: installed after it, a SIGTERM that came
  // as soon as the command was running (a supervisor stopping it at once) could find none and
  // end this process with Node's default action, leaving the command running unwatched. A
  // signal is handled in a later turn of the loop, by when `child` is set.
  let child: ChildProcess | undefined;
  const relays = FORWARDED_SIGNALS.map((signal) => {
    const relay = () => child?.kill(signal);
    process.on(signal, relay);
    return () => process.off(signal, relay);
  });
  child = spawn(file, args, { stdio: 'inherit', env: { ...env, ...Object.fromEntries(variables) } });
  const started = child;
  try {
    return await new Promise<number>((resolve) => {
      started.once('error', (error: NodeJS.ErrnoException) => {
        // Shells use 127 for "not found" and 126 for "cannot run"; wrapped start commands keep those meanings.
        stderr.write(`harbor-sidecar: cannot run ${file}: ${error.code ?? error.message} [E_CHILD]\n`);
        resolve(error.code === 'ENOENT' ? 127 : 126);
      });
      started.once('exit', (code, signal) => {
        resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1));
      });
    });
  } finally {
    for (const remove of relays) remove();
  }
}
