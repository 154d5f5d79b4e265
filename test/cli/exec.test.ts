import { spawn } from 'node:child_process';
import t from 'tap';
import { cleanEnv, exited, runSidecar, SIDECAR_BIN, waitForOutput } from '../helpers/cli.js';

const env = { STACKATO_SERVICES: JSON.stringify({ 'znc-port': { int_port: 4100 } }) };

t.test('exec runs the command with the variables and returns its exit status', async (t) => {
  const result = runSidecar(
    ['exec', '--', 'bash', '-c', 'echo "$STACKATO_HARBOR $STACKATO_HARBOR_ZNC_PORT"; exit 7'],
    env,
  );
  t.equal(result.stdout, '4100 4100\n');
  t.equal(result.status, 7);
});

t.test('exec passes SIGTERM to the child and returns the status the child chose', async (t) => {
  const script = `trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done`;
  // A process group of its own: if the wrapper dies first, the teardown still ends the shell
  // (which holds the output pipes open: the file would wait for its time limit).
  const child = spawn(process.execPath, [SIDECAR_BIN, 'exec', '--', 'bash', '-c', script], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
  await waitForOutput(child, /^ready$/);
  const output = waitForOutput(child, /^got-term$/);
  child.kill('SIGTERM');
  await output;
  t.same(await exited(child), { code: 42, signal: null });
});

t.test('a child killed by a signal gives 128+n', async (t) => {
  const result = runSidecar(['exec', '--', 'bash', '-c', 'kill -KILL $$'], env);
  t.equal(result.status, 137);
});

t.test('a missing command: one line, 127; no command: usage error', async (t) => {
  const missing = runSidecar(['exec', '--', '/nonexistent/start-app'], env);
  t.equal(missing.status, 127);
  t.match(missing.stderr, /cannot run \/nonexistent\/start-app: ENOENT/);
  const none = runSidecar(['exec'], env);
  t.equal(none.status, 2);
  t.match(none.stderr, /exec needs a command/);
});
