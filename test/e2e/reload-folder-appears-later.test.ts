import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { httpsGet, servedFingerprint } from '../helpers/net.js';
import { echoBackendWithWs, spawnSidecar, TestCa } from '../helpers/reload-harness.js';

// Issue 3: a certificate folder that does not exist at start (a secret mounted later) is waited for, without
// serving; once a valid pair appears the service starts and says so. SIGHUP reloads at once; a SIGHUP during
// the drain after SIGTERM is ignored and the request in flight still completes.

const root = mkdtempSync(join(tmpdir(), 'harbor-reload-later-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

t.test('folder appears later, SIGHUP reloads now, SIGHUP while draining is ignored', async (t) => {
  const ca = new TestCa(root);
  const [first, second] = await ca.leaves(2);
  // Two levels missing: the watcher has to wait on the nearest folder that exists.
  const certs = join(root, 'mnt', 'secrets', 'tls');
  const backend = await echoBackendWithWs(1500);
  t.teardown(() => backend.close());
  const sidecar = await spawnSidecar({ service: 'shop-https', certsDir: certs, backendPort: backend.port });
  t.teardown(() => sidecar.child.kill('SIGKILL'));

  const waiting = await sidecar.waitForLog((l) => /waiting for .*appear/.test(l.msg), 'waiting');
  t.match(waiting.msg, /tls does not exist/, 'says the folder does not exist and that it waits');
  await sidecar.waitForLog((l) => l.msg === 'harbor-sidecar started; waiting for certificate pairs', 'up');
  t.equal(await refused(sidecar.port), 'ECONNREFUSED', 'not serving while there is no pair');
  t.equal(sidecar.child.exitCode, null, 'still running');

  const from = sidecar.lines.length;
  mkdirSync(certs, { recursive: true });
  writeFileSync(join(certs, 'harbor.key'), first!.key);
  writeFileSync(join(certs, 'harbor.crt'), first!.cert);
  const found = await sidecar.waitForLog((l) => /starts serving/.test(l.msg), 'starts serving', from);
  t.match(found, { new: { fingerprint: first!.fingerprint } }, 'says it starts serving, with the pair');
  await sidecar.waitForLog((l) => l.msg === 'https proxy listening', 'listening', from);
  const answer = await httpsGet(sidecar.port, ca.pem, '/hello');
  t.same([answer.status, answer.body], [200, 'backend:GET /hello'], 'serves through to the backend');
  t.equal(await servedFingerprint(sidecar.port), first!.fingerprint);

  // SIGHUP straight after the write: the reload is SIGHUP's, ahead of the watcher's 150 ms debounce.
  const hupFrom = sidecar.lines.length;
  writeFileSync(join(certs, 'harbor.key'), second!.key);
  writeFileSync(join(certs, 'harbor.crt'), second!.cert);
  sidecar.child.kill('SIGHUP');
  const reloaded = await sidecar.waitForLog((l) => /certificate reloaded/.test(l.msg), 'reloaded', hupFrom);
  t.match(
    reloaded,
    {
      trigger: 'SIGHUP',
      old: { fingerprint: first!.fingerprint },
      new: { fingerprint: second!.fingerprint },
    },
    'SIGHUP reloaded it, logging old and new',
  );
  t.equal(await servedFingerprint(sidecar.port), second!.fingerprint);

  // A slow request in flight, then SIGTERM, then SIGHUP: ignored; the request completes; exit 0.
  let answeredFirst = false;
  const slow = httpsGet(sidecar.port, ca.pem, '/slow').then((r) => {
    answeredFirst = sidecar.child.exitCode === null;
    return r;
  });
  while (backend.slowArrived === 0) await new Promise((r) => setTimeout(r, 10));
  const drainFrom = sidecar.lines.length;
  sidecar.child.kill('SIGTERM');
  await sidecar.waitForLog((l) => /draining/.test(l.msg), 'draining', drainFrom);
  sidecar.child.kill('SIGHUP');
  await sidecar.waitForLog((l) => l.msg === 'SIGHUP ignored while draining', 'SIGHUP ignored', drainFrom);
  const late = await slow;
  t.same([late.status, late.body], [200, 'backend:GET /slow'], 'the request in flight completes');
  t.ok(answeredFirst, 'answered before the process exited');
  t.same(await sidecar.exit, { code: 0, signal: null }, 'exits 0');
  t.same(
    sidecar.lines
      .slice(drainFrom)
      .filter((l) => /reload/.test(l.msg) && l.msg !== 'SIGHUP ignored while draining'),
    [],
    'no reload during the drain',
  );
  t.same(sidecar.errors(), [], 'no error logged');
});
