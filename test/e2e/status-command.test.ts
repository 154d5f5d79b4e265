import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';
import { exited, type RunResult, runSidecarAsync, startSidecar, waitForOutput } from '../helpers/cli.js';
import { type EchoBackend, echoBackend, freePort, httpsGet, refusingPort } from '../helpers/net.js';

function status(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runSidecarAsync(['status', ...args], env);
}

const root = mkdtempSync(join(tmpdir(), 'harbor-status-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const pair = factory.pair('localhost', { type: 'rsa' }, { hosts: ['localhost', '127.0.0.1'], days: 45 });
mkdirSync(join(root, 'app', 'certs'), { recursive: true });
copyFileSync(pair.certFile, join(root, 'app', 'certs', 'shop-https.crt'));
copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'shop-https.key'));

t.test('status of a running sidecar: table, --json, exit 0 ready, 1 not ready', async (t) => {
  let backend: EchoBackend = await echoBackend();
  const backendPort = backend.port;
  t.teardown(() => backend.close());
  const tcpApp = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => tcpApp.close());
  const admin = `127.0.0.1:${await freePort()}`;
  const httpsPort = await freePort();
  const tcpPort = await freePort();
  const sidecar = startSidecar(
    [
      'run',
      '--listen',
      '127.0.0.1',
      '--forward',
      `ldap-port=127.0.0.1:${(tcpApp.address() as { port: number }).port}`,
    ],
    {
      HARBOR_ADMIN: admin,
      STACKATO_SERVICES: JSON.stringify({
        'shop-https': { int_port: httpsPort, port: 35443, name: 'id-shop' },
        'ldap-port': { int_port: tcpPort, port: 35389, name: 'id-ldap' },
      }),
      PORT: String(backendPort),
      HARBOR_APP_ROOT: join(root, 'app'),
    },
  );
  t.teardown(() => {
    sidecar.kill('SIGKILL');
  });
  await waitForOutput(sidecar, /"msg":"harbor-sidecar serving"/);
  for (let i = 0; i < 3; i++) t.equal((await httpsGet(httpsPort, read(pair.certFile), '/')).status, 200);
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: tcpPort }, () => socket.end('x'));
    socket.on('close', () => resolve());
    socket.resume();
  });

  await t.test('the table, found through --admin and through HARBOR_ADMIN', async (t) => {
    const viaFlag = await status(['--admin', admin]);
    t.equal(viaFlag.status, 0, viaFlag.stderr);
    t.equal(viaFlag.stderr, '');
    const lines = viaFlag.stdout.split('\n');
    t.match(
      lines.shift(),
      new RegExp(`^harbor-sidecar \\S+, pid ${sidecar.pid}, started \\S+, answered at ${admin}$`),
      'which process answered, and where',
    );
    t.match(
      lines[0],
      /^SERVICE\s+PROTOCOL\s+INT_PORT\s+PORT\s+CERTIFICATE\s+DAYS LEFT\s+CONNS\s+REQUESTS\s+P50\/P99\s+LAST RELOAD$/,
    );
    const shop = lines.find((l) => l.startsWith('shop-https'));
    t.match(
      shop,
      new RegExp(
        `^shop-https\\s+https\\s+${httpsPort}\\s+35443\\s+\\S*localhost\\s+4[45]\\s+0/3\\s+(0\\s+-|\\d+\\s+\\S+s/\\S+s)\\s+-$`,
      ),
    );
    const ldap = lines.find((l) => l.startsWith('ldap-port'));
    t.match(ldap, new RegExp(`^ldap-port\\s+tcp\\s+${tcpPort}\\s+35389\\s+-\\s+-\\s+\\d/1\\s+-\\s+-\\s+-$`));
    t.equal(lines.at(-2), 'ready');
    t.equal(lines.at(-1), '');

    const viaEnv = await status([], { HARBOR_ADMIN: admin });
    t.equal(viaEnv.status, 0);
    t.equal(viaEnv.stdout.replace(/\d+\/\d+/g, 'n/n'), viaFlag.stdout.replace(/\d+\/\d+/g, 'n/n'));
  });

  await t.test('--json: the /status document with ready and reasons', async (t) => {
    const result = await status(['--json'], { HARBOR_ADMIN: admin });
    t.equal(result.status, 0);
    const doc = JSON.parse(result.stdout);
    t.match(doc, {
      program: 'harbor-sidecar',
      state: 'listening',
      ready: true,
      reasons: [],
      pid: sidecar.pid,
    });
    const shop = doc.services.find((s: { name: string }) => s.name === 'shop-https');
    t.equal(shop.pair.inspection.fingerprint256, opensslFingerprint(pair.certFile));
    t.equal(shop.pair.inspection.keyType, 'RSA 2048');
    t.equal(shop.pair.reason, 'per-service pair');
    t.equal(shop.pair.certFile, join(root, 'app', 'certs', 'shop-https.crt'));
    t.equal(shop.counters.requests['2xx'], 3);
  });

  await t.test('the backend down: not ready, exit 1, with the reason; back: exit 0', async (t) => {
    await backend.close();
    const table = await status(['--admin', admin]);
    t.equal(table.status, 1);
    t.match(table.stdout, /^shop-https\s+https/m, 'the table is still printed');
    const verdict = `\nnot ready\n  shop-https: backend 127.0.0.1:${backendPort} does not accept connections (ECONNREFUSED)\n`;
    t.ok(table.stdout.endsWith(verdict), `the table ends with the verdict and its reason:\n${table.stdout}`);
    const json = await status(['--admin', admin, '--json']);
    t.equal(json.status, 1);
    t.match(JSON.parse(json.stdout), {
      ready: false,
      reasons: [`shop-https: backend 127.0.0.1:${backendPort} does not accept connections (ECONNREFUSED)`],
    });
    backend = await echoBackend(backendPort);
    t.equal((await status(['--admin', admin])).status, 0);
  });

  sidecar.kill('SIGTERM');
  t.same(await exited(sidecar), { code: 0, signal: null });
});

t.test('status when the admin endpoint cannot be reached: one line, exit 1', async (t) => {
  const nobody = `127.0.0.1:${await refusingPort()}`;
  const table = await status(['--admin', nobody]);
  t.equal(table.status, 1);
  t.equal(
    table.stdout,
    `harbor-sidecar status: admin endpoint ${nobody} unreachable (ECONNREFUSED); is harbor-sidecar running with --admin ${nobody}?\n`,
  );
  const json = await status(['--json'], { HARBOR_ADMIN: nobody });
  t.equal(json.status, 1);
  t.match(JSON.parse(json.stdout), { ready: false, reasons: [/unreachable \(ECONNREFUSED\)/] });
  const off = await status([], { HARBOR_ADMIN: 'off' });
  t.equal(off.status, 78);
  t.match(off.stderr, /status needs the admin endpoint, but HARBOR_ADMIN \(or --admin\) is off/);
});
