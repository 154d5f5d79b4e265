import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import {
  type AdminServer,
  adminHandler,
  createAdminServer,
  type MetricsSource,
  type StatusReport,
} from '../../src/admin/index.js';
import type { Address } from '../../src/config/types.js';
import { createLogger, silentLogger } from '../../src/log/index.js';
import { createServiceStats } from '../../src/stats/index.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function fetchAdmin(address: Address, path: string, init: { method?: string; accept?: string } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const target =
      address.kind === 'unix' ? { socketPath: address.path } : { host: address.host, port: address.port };
    const req = request(
      { ...target, path, method: init.method ?? 'GET', headers: init.accept ? { accept: init.accept } : {} },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A logger whose JSON lines land in an array, to assert on what was logged. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug', pretty: false, name: 'test', destination }), lines };
}

const report: StatusReport = {
  program: 'harbor-sidecar',
  version: '0.0.0-test',
  pid: process.pid,
  startedAt: new Date().toISOString(),
  state: 'listening',
  services: [],
};

const stats = createServiceStats();
const source: MetricsSource = { services: () => [{ name: 'web-https', stats }] };

function start(t: Test, address: Address | 'off', readiness: () => Promise<string[]> = async () => []) {
  const server = createAdminServer({
    address,
    logger: silentLogger(),
    readiness,
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  t.teardown(() => server.close());
  return server;
}

const loopback: Address = { kind: 'tcp', host: '127.0.0.1', port: 0 };

t.test('every endpoint answers over real HTTP', async (t) => {
  const server = start(t, loopback);
  await server.start();
  const address = server.address();
  if (address?.kind !== 'tcp') throw new Error('admin server did not listen');
  t.not(address.port, 0, 'address() gives the real port');

  const health = await fetchAdmin(address, '/healthz');
  t.equal(health.status, 200);
  t.equal(health.body, 'ok\n');
  t.equal(health.headers['cache-control'], 'no-store');

  const ready = await fetchAdmin(address, '/readyz');
  t.equal(ready.status, 200);
  t.equal(ready.body, 'ready\n');

  const metrics = await fetchAdmin(address, '/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  t.match(metrics.body, /^harbor_connections_total\{service="web-https"\} 0$/m);

  const status = await fetchAdmin(address, '/status');
  t.equal(status.status, 200);
  t.match(status.headers['content-type'], /^application\/json/);
  t.same(JSON.parse(status.body), report);

  const status2 = await fetchAdmin(address, '/status?pretty=1');
  t.equal(status2.status, 200, 'a query string does not change the path');

  const head = await fetchAdmin(address, '/healthz', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body, '');

  const post = await fetchAdmin(address, '/status', { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET, HEAD');

  const unknown = await fetchAdmin(address, '/admin');
  t.equal(unknown.status, 404);
  t.match(unknown.body, /\/healthz/);
});

t.test('/readyz turns 503 with the reasons and back to 200 as readiness changes', async (t) => {
  let reasons: string[] = [
    'web-https: no valid certificate pair loaded',
    'web-https: backend 127.0.0.1:1 refused',
  ];
  const server = start(t, loopback, async () => reasons);
  await server.start();
  const address = server.address()!;

  const text = await fetchAdmin(address, '/readyz');
  t.equal(text.status, 503);
  t.equal(
    text.body,
    'not ready\nweb-https: no valid certificate pair loaded\nweb-https: backend 127.0.0.1:1 refused\n',
  );
  const json = await fetchAdmin(address, '/readyz', { accept: 'application/json' });
  t.equal(json.status, 503);
  t.same(JSON.parse(json.body), { ready: false, reasons });
  const query = await fetchAdmin(address, '/readyz?format=json');
  t.same(JSON.parse(query.body), { ready: false, reasons });

  reasons = [];
  const back = await fetchAdmin(address, '/readyz', { accept: 'application/json' });
  t.equal(back.status, 200);
  t.same(JSON.parse(back.body), { ready: true, reasons: [] });
});

t.test('a readiness check that throws or hangs is a 503, not a crash or a hung probe', async (t) => {
  const throwing = createAdminServer({
    address: loopback,
    logger: silentLogger(),
    readiness: async () => {
      throw new Error('stat certs/web-https.crt: EACCES');
    },
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  t.teardown(() => throwing.close());
  await throwing.start();
  const a = await fetchAdmin(throwing.address()!, '/readyz');
  t.equal(a.status, 503);
  t.match(a.body, /readiness check failed: stat certs\/web-https.crt: EACCES/);

  const hanging = createAdminServer({
    address: loopback,
    logger: silentLogger(),
    readiness: () => new Promise<string[]>(() => {}),
    readinessTimeoutMs: 50,
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  t.teardown(() => hanging.close());
  await hanging.start();
  const b = await fetchAdmin(hanging.address()!, '/readyz');
  t.equal(b.status, 503);
  t.match(b.body, /did not answer within 50 ms/);
});

t.test('a /status that cannot be serialised is a 500 with the reason', async (t) => {
  const server = createAdminServer({
    address: loopback,
    logger: silentLogger(),
    readiness: async () => [],
    status: () => ({ big: 1n }),
    metrics: source,
    processMetrics: false,
  });
  t.teardown(() => server.close());
  await server.start();
  const answer = await fetchAdmin(server.address()!, '/status');
  t.equal(answer.status, 500);
  t.match(JSON.parse(answer.body).error, /BigInt/);
  t.equal((await fetchAdmin(server.address()!, '/healthz')).status, 200, 'still serving');
});

t.test('an address that is taken is a warning; the process keeps running', async (t) => {
  const holder = createNetServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const port = (holder.address() as { port: number }).port;

  const { logger, lines } = capturingLogger();
  const server: AdminServer = createAdminServer({
    address: { kind: 'tcp', host: '127.0.0.1', port },
    logger,
    readiness: async () => [],
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  t.teardown(() => server.close());
  await server.start();
  t.equal(server.address(), undefined, 'no admin address');
  const warning = lines.find((line) => line.code === 'W_ADMIN_UNAVAILABLE');
  t.ok(warning, 'a W_ADMIN_UNAVAILABLE line is logged');
  t.equal(warning?.level, 40, 'at warn level');
  t.equal(warning?.admin, `127.0.0.1:${port}`);
  t.match(
    String(warning?.msg),
    new RegExp(
      `admin endpoint 127\\.0\\.0\\.1:${port} not started \\(address in use by this process \\(another of its own listeners\\)\\)`,
    ),
  );
  await server.close();

  // A bad socket path (its folder does not exist) is the same kind of warning.
  const { logger: logger2, lines: lines2 } = capturingLogger();
  const bad = createAdminServer({
    address: { kind: 'unix', path: '/nonexistent-harbor-dir/admin.sock' },
    logger: logger2,
    readiness: async () => [],
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  await bad.start();
  t.equal(bad.address(), undefined);
  // libuv says EACCES for it; the warning says what is wrong.
  t.match(
    lines2.find((line) => line.code === 'W_ADMIN_UNAVAILABLE'),
    {
      reason: 'its folder /nonexistent-harbor-dir does not exist',
      msg: /admin endpoint \/nonexistent-harbor-dir\/admin\.sock not started \(its folder \/nonexistent-harbor-dir does not exist\)/,
    },
  );
});

t.test('a unix socket address works, replaces a stale socket, and leaves a live one alone', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'harbor-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'admin.sock');

  // A stale socket, as a process killed with SIGKILL leaves behind.
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ],
    { timeout: 10_000 },
  );
  t.equal(child.signal, 'SIGKILL');
  t.ok((await stat(path)).isSocket(), 'a stale socket file is left behind');

  const server = start(t, { kind: 'unix', path });
  await server.start();
  t.same(server.address(), { kind: 'unix', path });
  const health = await fetchAdmin({ kind: 'unix', path }, '/healthz');
  t.equal(health.status, 200);
  t.equal(health.body, 'ok\n');

  // A second admin server on the same live socket must not steal it.
  const { logger, lines } = capturingLogger();
  const second = createAdminServer({
    address: { kind: 'unix', path },
    logger,
    readiness: async () => [],
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  await second.start();
  t.equal(second.address(), undefined);
  t.ok(lines.some((line) => line.code === 'W_ADMIN_UNAVAILABLE'));
  t.equal((await fetchAdmin({ kind: 'unix', path }, '/healthz')).status, 200, 'the first keeps serving');

  // A regular file at the path is never removed.
  const file = join(dir, 'not-a-socket');
  await writeFile(file, 'keep me');
  const third = start(t, { kind: 'unix', path: file });
  await third.start();
  t.equal(third.address(), undefined);
  t.ok((await stat(file)).isFile(), 'the file is still there');

  await server.close();
  await t.rejects(stat(path), { code: 'ENOENT' }, 'closing removes the socket file');
});

t.test('an IPv6 loopback address works', async (t) => {
  const server = start(t, { kind: 'tcp', host: '::1', port: 0 });
  await server.start();
  const address = server.address();
  t.equal(address?.kind === 'tcp' && address.host, '::1');
  t.equal((await fetchAdmin(address!, '/healthz')).body, 'ok\n');
});

t.test("'off' listens nowhere", async (t) => {
  const server = start(t, 'off');
  await server.start();
  t.equal(server.address(), undefined);
  await server.close();
});

t.test('adminHandler mounts on another server and leaves other paths to it', async (t) => {
  const handle = adminHandler({
    logger: silentLogger(),
    readiness: async () => ['node: state file not loaded'],
    status: () => report,
    metrics: source,
    processMetrics: false,
  });
  const api = createServer((req, res) => {
    if (handle(req, res)) return;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"api":true}');
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => api.close(() => resolve())));
  const address: Address = { kind: 'tcp', host: '127.0.0.1', port: (api.address() as { port: number }).port };

  t.equal((await fetchAdmin(address, '/v1/services')).body, '{"api":true}');
  t.equal((await fetchAdmin(address, '/healthz')).body, 'ok\n');
  const ready = await fetchAdmin(address, '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body, /node: state file not loaded/);
  t.match((await fetchAdmin(address, '/metrics')).body, /harbor_requests_total/);
  t.equal((await fetchAdmin(address, '/status')).status, 200);
});
