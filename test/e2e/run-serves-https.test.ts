import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';
import { exited, runSidecar, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet, servedFingerprint } from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-run-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const certs = join(root, 'app', 'certs');
mkdirSync(certs, { recursive: true });
const first = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
copyFileSync(first.certFile, join(certs, 'harbor.crt'));
copyFileSync(first.keyFile, join(certs, 'harbor.key'));

t.test('run serves HTTPS on int_port to the backend, reloads on SIGHUP, drains on SIGTERM', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const intPort = await freePort();
  const child = startSidecar(['run', '--listen', '127.0.0.1', '--log-level', 'info'], {
    STACKATO_SERVICES: JSON.stringify({ 'shop-https': { int_port: intPort, port: 35123, name: 'id-1' } }),
    PORT: String(backend.port),
    HARBOR_APP_ROOT: join(root, 'app'),
  });
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /harbor-sidecar serving/);
  const answer = await httpsGet(intPort, read(first.certFile), '/hello');
  t.equal(answer.status, 200);
  t.equal(answer.body, 'backend:GET /hello');
  t.equal(backend.seen.at(-1)?.['x-forwarded-proto'], 'https');
  t.equal(backend.seen.at(-1)?.['x-forwarded-port'], '35123');

  const second = factory.pair('localhost', { type: 'rsa' }, { hosts: ['localhost', '127.0.0.1'] });
  copyFileSync(second.keyFile, join(certs, 'harbor.key.new'));
  copyFileSync(second.certFile, join(certs, 'harbor.crt.new'));
  renameSync(join(certs, 'harbor.key.new'), join(certs, 'harbor.key'));
  renameSync(join(certs, 'harbor.crt.new'), join(certs, 'harbor.crt'));
  child.kill('SIGHUP');
  const expected = opensslFingerprint(second.certFile);
  let served = '';
  await eventually(async () => {
    served = await servedFingerprint(intPort);
    return served === expected;
  });
  t.equal(served, expected, 'the new certificate is served after the swap');

  child.kill('SIGTERM');
  t.same(await exited(child), { code: 0, signal: null });
});

t.test('an int_port that is taken: one line naming the port and the service, exit 1', async (t) => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const port = (holder.address() as { port: number }).port;
  const result = runSidecar([
    'run',
    '--listen',
    '127.0.0.1',
    '--service',
    'shop-https',
    '--int-port',
    String(port),
    '--backend',
    '8080',
    '--app-root',
    join(root, 'app'),
  ]);
  t.equal(result.status, 1);
  t.match(result.stderr, new RegExp(`port ${port} \\(int_port of service "shop-https"\\) is already taken`));
});

t.test('nothing to serve: one line, exit 0', async (t) => {
  const none = runSidecar(['run']);
  t.equal(none.status, 0);
  t.equal(none.stdout, 'harbor-sidecar: no Harbor services in this environment; nothing to serve\n');
  const tcpOnly = runSidecar(['run'], {
    STACKATO_SERVICES: JSON.stringify({ 'znc-port': { int_port: 4100 } }),
  });
  t.equal(tcpOnly.status, 0);
  t.match(tcpOnly.stdout, /no HTTPS service and no --forward among znc-port; nothing to serve/);
});

t.test('bad configuration exits 78 before serving', async (t) => {
  const result = runSidecar(['run'], {
    STACKATO_SERVICES: JSON.stringify({ 'a-https': { int_port: 4100 } }),
  });
  t.equal(result.status, 78);
  t.match(result.stderr, /service "a-https" needs a backend/);
});

t.test('an access log file that cannot be opened at start: exit 78 naming it and why', async (t) => {
  const base = {
    STACKATO_SERVICES: JSON.stringify({ 'a-https': { int_port: 4100 } }),
    PORT: '8080',
    HARBOR_APP_ROOT: join(root, 'app'),
    HARBOR_ACCESS_LOG: 'json',
  };
  // Before, the sidecar served on and only warned that every line was being lost.
  const missing = join(root, 'no-such-folder', 'access.log');
  const noFolder = runSidecar(['run', '--access-log-file', missing], base);
  t.equal(noFolder.status, 78);
  t.match(
    noFolder.stderr,
    `--access-log-file / HARBOR_ACCESS_LOG_FILE ${missing}: its folder does not exist (ENOENT)`,
  );
  t.match(noFolder.stderr, /\[E_SETTING\]/);
  t.notMatch(noFolder.stderr, /serving/);
  const folder = runSidecar(['run'], { ...base, HARBOR_ACCESS_LOG_FILE: root });
  t.equal(folder.status, 78);
  t.match(folder.stderr, `${root}: it is a folder (EISDIR)`);
});
