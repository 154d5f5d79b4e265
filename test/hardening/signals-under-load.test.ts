// Signals while traffic flows (issue 9): SIGHUP to harbor-node and to
// harbor-sidecar, several times, under a bounded request loop, must cost no
// request; SIGTERM then drains both cleanly.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

/** Runs `request` in a loop (at most `max` times) until `stop()` says so; counts outcomes. */
async function loop(request: () => Promise<boolean>, stop: () => boolean, max = 5000) {
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < max && !stop(); i++) {
    if (await request().catch(() => false)) ok++;
    else failed++;
  }
  return { ok, failed };
}

t.test('harbor-node: SIGHUP five times under a TCP request loop costs no request', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-signals-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const range = await freeRange(2);
  const node = await startNodeProcess(t, [
    '--ports',
    `${range.first}-${range.last}`,
    '--state',
    join(dir, 'state.json'),
  ]);
  const app = await tagServer(t, 'app');
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'tcp-load' });
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/a`, { host: '127.0.0.1', port: app.port });
  let signals = 0;
  const running = loop(
    async () => (await tcpRequest(creds.port)) === 'app',
    () => signals >= 5,
  );
  for (let i = 0; i < 5; i++) {
    const before = node.logs().filter((l) => String(l.msg).startsWith('reloaded:')).length;
    node.child.kill('SIGHUP');
    await waitFor(
      () => node.logs().filter((l) => String(l.msg).startsWith('reloaded:')).length > before,
      `reload ${i + 1}`,
    );
    signals++;
  }
  const result = await running;
  t.ok(result.ok > 0, `${result.ok} requests during five reloads`);
  t.equal(result.failed, 0, 'none failed');
  node.child.kill('SIGTERM');
  t.equal(await node.exited, 0, 'then SIGTERM drains it');
});

t.test('harbor-sidecar: SIGHUP five times under an HTTPS request loop costs no request', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'harbor-signals-sidecar-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const pair = new OpensslFactory(root).pair(
    'localhost',
    { type: 'ec' },
    { hosts: ['localhost', '127.0.0.1'] },
  );
  const certs = join(root, 'certs');
  mkdirSync(certs);
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const intPort = await freePort();
  copyFileSync(pair.certFile, join(certs, 'harbor.crt'));
  copyFileSync(pair.keyFile, join(certs, 'harbor.key'));
  const child = startSidecar([
    'run',
    '--service',
    'web-https',
    '--int-port',
    String(intPort),
    '--backend',
    `127.0.0.1:${backend.port}`,
    '--certs-dir',
    certs,
    '--listen',
    '127.0.0.1',
  ]);
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
  const ca = read(pair.certFile);
  let signals = 0;
  const running = loop(
    async () => (await httpsGet(intPort, ca, '/load')).status === 200,
    () => signals >= 5,
  );
  let seen = 0;
  child.stdout?.on('data', (c: Buffer) => {
    seen += (c.toString().match(/SIGHUP: reloading every certificate pair/g) ?? []).length;
  });
  for (let i = 0; i < 5; i++) {
    const before = seen;
    child.kill('SIGHUP');
    await waitFor(() => seen > before, `reload ${i + 1}`);
    signals++;
  }
  const result = await running;
  t.ok(result.ok > 0, `${result.ok} requests during five reloads`);
  t.equal(result.failed, 0, 'none failed');
  child.kill('SIGTERM');
  t.same(await exited(child), { code: 0, signal: null }, 'then SIGTERM drains it');
});
