// The admin endpoint is an aid, never a reason to stop serving: an address
// another process holds is one W_ADMIN_UNAVAILABLE warning and the sidecar
// serves HTTPS on. On a unix socket path it answers there (also replacing a
// socket file left by a killed process) and removes the file on exit.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { exited, type RunResult, runSidecarAsync, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet } from '../helpers/net.js';

function status(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runSidecarAsync(['status', ...args], env);
}

function unixGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

const root = mkdtempSync(join(tmpdir(), 'harbor-admin-taken-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const pair = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
mkdirSync(join(root, 'app', 'certs'), { recursive: true });
copyFileSync(pair.certFile, join(root, 'app', 'certs', 'harbor.crt'));
copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'harbor.key'));

async function sidecarWithAdmin(t: Test, admin: string, backendPort: number) {
  const httpsPort = await freePort();
  const child = startSidecar(['run', '--listen', '127.0.0.1', '--admin', admin], {
    STACKATO_SERVICES: JSON.stringify({
      'shop-https': { int_port: httpsPort, port: 35443, name: 'id-shop' },
    }),
    PORT: String(backendPort),
    HARBOR_APP_ROOT: join(root, 'app'),
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return { child, httpsPort };
}

t.test('an admin address another process holds: a warning, and HTTPS is served on', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const holder = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not a harbor-sidecar\n');
  });
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const admin = `127.0.0.1:${(holder.address() as { port: number }).port}`;

  const { child, httpsPort } = await sidecarWithAdmin(t, admin, backend.port);
  // Both waits attach now: the two lines may come in one chunk.
  const serving = waitForOutput(child, /"msg":"harbor-sidecar serving"/);
  const warning = JSON.parse(await waitForOutput(child, /"code":"W_ADMIN_UNAVAILABLE"/)) as Record<
    string,
    unknown
  >;
  t.equal(warning.level, 40, 'a warning, not an error');
  t.equal(warning.admin, admin);
  // The holder is this test's own process: named with its pid and command line.
  t.match(warning.reason, new RegExp(`^address in use by pid ${process.pid} \\(\\S*node`));
  t.match(warning.msg, `admin endpoint ${admin} not started (address in use by pid ${process.pid}`);
  await serving;
  const answer = await httpsGet(httpsPort, read(pair.certFile), '/still-serving');
  t.equal(answer.status, 200);
  t.equal(answer.body, 'backend:GET /still-serving');

  // status asks whoever holds the address, sees it is not a sidecar, and says so.
  const asked = await status(['--admin', admin]);
  t.equal(asked.status, 1);
  t.equal(
    asked.stdout,
    `harbor-sidecar status: admin endpoint ${admin} answered /status with HTTP 404: not a harbor-sidecar\n`,
  );

  child.kill('SIGTERM');
  t.same(await exited(child), { code: 0, signal: null });
});

t.test(
  'status cannot silently read another sidecar: one serving other services is named, exit 1',
  async (t) => {
    const backend = await echoBackend();
    t.teardown(() => backend.close());
    const admin = `127.0.0.1:${await freePort()}`;
    const { child } = await sidecarWithAdmin(t, admin, backend.port);
    await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
    const other = await status(['--admin', admin], {
      STACKATO_SERVICES: JSON.stringify({ 'blog-https': { int_port: 4100, port: 35444, name: 'id-blog' } }),
    });
    t.equal(other.status, 1);
    t.match(
      other.stdout,
      `the sidecar at ${admin} (pid ${child.pid}) serves shop-https, not this configuration's blog-https: another sidecar holds this admin address`,
    );
    const same = await status(['--admin', admin], {
      STACKATO_SERVICES: JSON.stringify({ 'shop-https': { int_port: 4100, port: 35443, name: 'id-shop' } }),
    });
    t.equal(same.status, 0, 'its own configuration: ready');
    child.kill('SIGTERM');
    await exited(child);
  },
);

t.test(
  'admin on a unix socket: served there, a stale socket file replaced, the file removed on exit',
  async (t) => {
    const backend = await echoBackend();
    t.teardown(() => backend.close());
    const socketPath = join(root, 'admin.sock');
    // A socket file left behind by a process killed with SIGKILL.
    const stale = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`,
    ]);
    await waitForOutput(stale, /^up$/);
    stale.kill('SIGKILL');
    await exited(stale);
    t.ok(statSync(socketPath).isSocket(), 'the stale socket file is there');

    const { child } = await sidecarWithAdmin(t, socketPath, backend.port);
    await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
    t.same(await unixGet(socketPath, '/healthz'), { status: 200, body: 'ok\n' });
    t.same(await unixGet(socketPath, '/readyz'), { status: 200, body: 'ready\n' });
    const asked = await status([], { HARBOR_ADMIN: socketPath });
    t.equal(asked.status, 0);
    t.match(asked.stdout, /^shop-https\s+https\s/m);

    child.kill('SIGTERM');
    t.same(await exited(child), { code: 0, signal: null });
    t.notOk(existsSync(socketPath), 'the socket file is removed on a clean exit');
  },
);
