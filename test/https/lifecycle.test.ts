// Lifecycle: listening on IPv4 and IPv6, a taken port, draining (in-flight
// requests finish, idle connections close at once, the deadline cuts the
// rest), and no file descriptors left behind after many connections.
import { readdirSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import t from 'tap';
import { isHarborError } from '../../src/errors/index.js';
import { createHttpsProxy, serverTlsOptions } from '../../src/https/index.js';
import { createLogger, silentLogger } from '../../src/log/index.js';
import { createServiceStats } from '../../src/stats/index.js';
import { eventually, waitFor } from '../helpers/wait.js';
import {
  connectTls,
  httpsRequest,
  makePair,
  rawExchange,
  removeDir,
  service,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const backend = await startEchoBackend();
const pair = makePair();
t.teardown(async () => {
  await backend.close();
  removeDir(pair.dir);
});

function captureLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', pretty: false, name: 'test', destination }), lines };
}

t.test('default hosts: IPv4 and IPv6 on one port', async (t) => {
  const proxy = createHttpsProxy({
    service: service(),
    listen: { port: 0 },
    backend: backend.address,
    tls: serverTlsOptions({ cert: pair.cert, key: pair.key }),
    stats: createServiceStats(),
    logger: silentLogger(),
  });
  await proxy.start();
  t.teardown(() => proxy.close());
  const addresses = proxy.address();
  t.same(
    addresses.map((a) => a.host),
    ['0.0.0.0', '::'],
  );
  t.equal(addresses[0]?.port, addresses[1]?.port);
  t.equal(proxy.state, 'listening');
  const r = await httpsRequest(addresses[0]?.port ?? 0, pair, { host: '::1', path: '/v6' });
  t.equal(r.status, 200);
});

t.test('a taken int_port: E_PORT_IN_USE naming the port and the service', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  const port = (squatter.address() as net.AddressInfo).port;
  const proxy = createHttpsProxy({
    service: service('shop-https'),
    listen: { port, hosts: ['127.0.0.1'] },
    backend: backend.address,
    tls: serverTlsOptions({ cert: pair.cert, key: pair.key }),
    stats: createServiceStats(),
    logger: silentLogger(),
  });
  const error = await proxy.start().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isHarborError(error, 'E_PORT_IN_USE'));
  t.match((error as Error).message, new RegExp(`port ${port}.*shop-https`));
  t.equal(proxy.state, 'stopped');
});

t.test('drain: in-flight request completes, idle connections close at once, new ones refused', async (t) => {
  const { logger, lines } = captureLogger();
  const fx = await startProxy(backend.address, { pair, logger });
  const idle = await connectTls(fx.port, pair);
  let idleText = '';
  idle.on('data', (c: Buffer) => {
    idleText += c.toString();
  });
  idle.write('GET /warm HTTP/1.1\r\nHost: h\r\n\r\n');
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (idleText.includes('/warm')) resolve();
    };
    idle.on('data', check);
  });
  const idleClosed = new Promise<void>((resolve) => idle.on('close', () => resolve()));
  const h2 = http2.connect(`https://localhost:${fx.port}`, { ca: pair.cert });
  await new Promise<void>((resolve) => h2.once('connect', () => resolve()));
  const h2Closed = new Promise<void>((resolve) => h2.once('close', () => resolve()));
  // A connection that has sent nothing at all is idle too.
  const silent = net.connect(fx.port, '127.0.0.1');
  silent.on('error', () => {});
  await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
  const silentClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));

  const before = backend.requests;
  const slow = rawExchange(fx.port, pair, 'GET /slow?ms=700 HTTP/1.1\r\nHost: h\r\n\r\n', {
    untilIncludes: '"url":"/slow?ms=700"',
  });
  while (backend.requests === before) await new Promise((resolve) => setTimeout(resolve, 10));

  const drained = fx.proxy.drain(15_000);
  t.equal(fx.proxy.state, 'draining');
  await idleClosed;
  await h2Closed;
  await silentClosed;
  t.pass(
    'idle HTTP/1 connection, idle HTTP/2 session and silent connection closed while a request is in flight',
  );
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(fx.port, '127.0.0.1');
    s.on('connect', () => resolve('accepted'));
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'no new connections while draining');
  const response = await slow;
  t.match(response, /^HTTP\/1\.1 200 OK/);
  t.match(response, /\r\nConnection: close\r\n/, 'told the client the connection ends');
  await drained;
  t.equal(fx.proxy.state, 'stopped');
  t.equal(
    lines.filter((l) => String(l.msg).includes('deadline')).length,
    0,
    'drain finished before its deadline',
  );
});

t.test('drain: the deadline closes what is still running', async (t) => {
  const { logger, lines } = captureLogger();
  const fx = await startProxy(backend.address, { pair, logger });
  const before = backend.requests;
  const slow = httpsRequest(fx.port, pair, { path: '/slow?ms=5000' }).then(
    () => 'completed',
    () => 'cut',
  );
  while (backend.requests === before) await new Promise((resolve) => setTimeout(resolve, 10));
  await fx.proxy.drain(200);
  t.equal(await slow, 'cut');
  t.equal(lines.filter((l) => String(l.msg).includes('deadline')).length, 1);
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

t.test('no file descriptors left after many connections of every kind', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  // Warm up lazily created handles (pool, TLS) before counting.
  await httpsRequest(fx.port, pair, { path: '/' });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const before = openFds();
  for (let i = 0; i < 300; i++) {
    switch (i % 4) {
      case 0:
        await httpsRequest(fx.port, pair, { path: `/fd/${i}` });
        break;
      case 1: {
        const s = await connectTls(fx.port, pair);
        s.destroy();
        break;
      }
      case 2:
        await rawExchange(fx.port, pair, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', { untilIncludes: '"url"' });
        break;
      default:
        await new Promise<void>((resolve) => {
          const s = net.connect(fx.port, '127.0.0.1');
          s.on('connect', () => s.end('GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
          s.on('close', () => resolve());
          s.on('error', () => resolve());
          s.resume();
        });
    }
  }
  await waitFor(() => fx.stats.connectionsOpen === 0, 'every connection counted closed');
  t.equal(fx.stats.connectionsOpen, 0);
  t.equal(fx.proxy.openConnections, 0);
  const after = openFds();
  // The pool may keep a few idle backend connections (both ends are in this process).
  t.ok(after - before <= 8, `fds before ${before}, after ${after}`);
  await fx.proxy.close();
  t.ok(await eventually(() => openFds() <= before + 2), `after close: ${openFds()} (before ${before})`);
});
