// The access log in a running sidecar, whose lines its own thread formats and
// writes: on stdout each line whole beside the sidecar's other JSON logs; in a
// file reopened on SIGUSR1 after logrotate moved it (the lines before in the
// old file, those after in the new one); and on SIGTERM, the lines of the last
// requests answered written before the process ends.
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type RunningSidecar, spawnSidecar } from '../helpers/reload-harness.js';
import { waitFor } from '../helpers/wait.js';
import { httpsStatus as get, startEchoBackend } from '../https/fixtures/helpers.js';

const CERTS = new URL('../../certs-example/', import.meta.url).pathname;

const pathsIn = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).path)
    : [];

/** A sidecar with `args` in front of an echo backend, serving; both stopped at the test's end. */
async function serving(t: Test, args: string[]): Promise<RunningSidecar> {
  const app = await startEchoBackend();
  t.teardown(() => app.close());
  const sidecar = await spawnSidecar({
    service: 'web-https',
    certsDir: CERTS,
    backendPort: (app.address as { port: number }).port,
    extraArgs: args,
  });
  t.teardown(() => sidecar.child.kill('SIGKILL'));
  await sidecar.waitForLog((l) => l.msg === 'harbor-sidecar serving', 'serving', 0, 30_000);
  return sidecar;
}

t.test('on stdout: each line whole, beside the other logs', async (t) => {
  const sidecar = await serving(t, ['--access-log', 'json']);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const paths = Array.from({ length: 200 }, (_, i) => `/s/${i}`);
  const statuses = await Promise.all(paths.map((p) => get(agent, sidecar.port, p)));
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    'every request answered',
  );
  await sidecar.waitForLog((l) => l.type === 'access' && l.path === '/s/199', 'the last request', 0, 30_000);
  await waitFor(
    () => sidecar.lines.filter((l) => l.type === 'access').length >= paths.length,
    'a line per request',
  );
  const logged = sidecar.lines.filter((l) => l.type === 'access').map((l) => l.path);
  t.same([...logged].sort(), [...paths].sort(), 'one line per request, on stdout');
  t.same(sidecar.other, [], 'no line cut or mixed with another (every stdout line parses as JSON)');
});

t.test('in a file: reopened on SIGUSR1 after it moved, and written whole on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-access-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.log');
  const sidecar = await serving(t, ['--access-log', 'json', '--access-log-file', file]);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  t.equal(await get(agent, sidecar.port, '/before'), 200);
  await waitFor(() => pathsIn(file).includes('/before'), 'the first line in the file');
  // logrotate: move the file, then signal.
  renameSync(file, `${file}.1`);
  const from = sidecar.lines.length;
  sidecar.child.kill('SIGUSR1');
  await sidecar.waitForLog((l) => l.signal === 'SIGUSR1', 'for SIGUSR1', from);
  t.equal(await get(agent, sidecar.port, '/after'), 200);
  await waitFor(() => pathsIn(file).includes('/after'), 'a line in the new file');

  // The last requests, answered just before the signal: their lines are in the file at the end.
  const last = Array.from({ length: 50 }, (_, i) => `/last/${i}`);
  for (const path of last) t.equal(await get(agent, sidecar.port, path), 200, path);
  agent.destroy();
  sidecar.child.kill('SIGTERM');
  const exit = await sidecar.exit;
  t.equal(exit.code, 0, 'a clean stop');
  t.same(pathsIn(`${file}.1`), ['/before'], 'the moved file keeps the lines before the signal');
  t.same(pathsIn(file), ['/after', ...last], 'the new one, every line after it, the last ones included');
});
