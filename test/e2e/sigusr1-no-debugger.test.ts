// SIGUSR1 is taken by both long-running programs: the sidecar reopens its access log with it,
// harbor-node has nothing to reopen. Untaken, it would open Node's debugger on 127.0.0.1:9229
// (`kill -USR1` on harbor-node did), a way into the process for anyone on the machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { spawnSidecar } from '../helpers/reload-harness.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

t.test('harbor-sidecar: SIGUSR1 is logged, no debugger opens, it serves on', async (t) => {
  const certsDir = mkdtempSync(join(tmpdir(), 'harbor-usr1-'));
  t.teardown(() => rmSync(certsDir, { recursive: true, force: true }));
  // No pair yet: the sidecar runs, waiting for one, which is all a signal needs.
  const sidecar = await spawnSidecar({ service: 'web-https', certsDir, backendPort: 1 });
  t.teardown(() => sidecar.child.kill('SIGKILL'));
  await sidecar.waitForLog((l) => /no certificate pair yet/.test(String(l.msg)), 'waiting for a pair');
  sidecar.child.kill('SIGUSR1');
  const line = await sidecar.waitForLog((l) => l.signal === 'SIGUSR1', 'for SIGUSR1');
  t.match(line, { msg: 'SIGUSR1: no access log file to reopen', file: null });
  t.notMatch(sidecar.other.join(''), /Debugger listening/);
  t.equal(sidecar.child.exitCode, null, 'still running');
});

t.test('harbor-node: SIGUSR1 is logged, no debugger opens, it serves on', async (t) => {
  const range = await freeRange(2);
  const node = await startNodeProcess(t, ['--ports', `${range.first}-${range.last}`]);
  node.child.kill('SIGUSR1');
  const line = await node.waitLog((l) => l.signal === 'SIGUSR1', 'for SIGUSR1');
  t.match(line.msg, /^SIGUSR1 ignored/);
  t.notMatch(node.output(), /Debugger listening/);
  t.equal((await api(node.api, 'GET', '/v1/services')).status, 200, 'its API answers');
});
