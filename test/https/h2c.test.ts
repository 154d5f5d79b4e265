// --backend-protocol h2c: HTTP/2 clients' streams go to the backend as
// streams of a clear-text HTTP/2 session. A real gRPC server and client
// (@grpc/grpc-js) through the proxy: unary, streaming each way, status and
// trailers, cancellation, deadlines, a drain; then Node's HTTP/2 server as the
// backend for what a gRPC library hides: the header rules, large bodies both
// ways, 1xx, HSTS, resets, the 502/503/504 answers, the access log, curl, and
// an HTTP/1.1 client still on HTTP/1.1.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import type { Address } from '../../src/config/types.js';
import { AccessLog } from '../../src/https/access-log.js';
import { MAX_SESSIONS } from '../../src/https/h2c-backend.js';
import { requestSecondsOf } from '../../src/stats/index.js';
import { readText } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { bigHeldBack, bigMessagesWhole, ECHO, frame, framesOf, startGrpcServer } from './fixtures/grpc.js';
import {
  captureLogger,
  deadBackend,
  h2Client,
  h2Get,
  httpsRequest,
  makePair,
  patternedBytes,
  removeDir,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));

const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
// biome-ignore lint/suspicious/noExplicitAny: the generic client's methods are made at run time
type Client = any;

function grpcClient(port: number): Client {
  return new EchoClient(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(pair.cert))) as Client;
}

/** The gRPC server behind a proxy speaking `backendProtocol` to it, and a client of the proxy; closed at the end of `t`. */
async function grpcThroughProxy(t: Test, backendProtocol: 'h2c' | 'http1') {
  const backend = await startGrpcServer();
  const fx = await startProxy(backend.address, { pair, backendProtocol });
  const client = grpcClient(fx.port);
  t.teardown(async () => {
    client.close();
    await fx.proxy.close();
    backend.close();
  });
  return { backend, fx, client };
}

function unary(client: Client, name: string, request: Buffer, options: grpc.CallOptions = {}) {
  return new Promise<{ error: grpc.ServiceError | null; value?: Buffer; trailers?: grpc.Metadata }>(
    (resolve) => {
      let answer: { error: grpc.ServiceError | null; value?: Buffer } | undefined;
      let trailers: grpc.Metadata | undefined;
      // The answer (the callback) and the trailing metadata ('status') come in either order.
      const settle = () => {
        if (answer !== undefined && trailers !== undefined) resolve({ ...answer, trailers });
      };
      const call = (client[name] as (...a: unknown[]) => grpc.ClientUnaryCall)(
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + 20_000, ...options },
        (error: grpc.ServiceError | null, value?: Buffer) => {
          answer = { error, value };
          settle();
        },
      );
      call.on('status', (s: grpc.StatusObject) => {
        trailers = s.metadata;
        settle();
      });
    },
  );
}

t.test(
  'gRPC through the proxy: unary, streaming both ways, status, trailers, cancellation, deadline',
  async (t) => {
    const { backend, client } = await grpcThroughProxy(t, 'h2c');

    const one = await unary(client, 'unary', Buffer.from('hi'));
    t.equal(one.error, null, 'a unary call succeeds');
    t.equal(one.value?.toString(), 'echo:hi');
    t.same(one.trailers?.get('x-served-by'), ['grpc-test'], "the server's trailing metadata arrives");
    const metadata = backend.seen.metadata[0] as grpc.Metadata;
    t.same(metadata.get('x-forwarded-proto'), ['https'], 'the forwarding headers reach the server');
    t.same(metadata.get('x-forwarded-for'), ['127.0.0.1']);
    t.match(String(metadata.get('x-request-id')[0]), /^[0-9a-f-]{36}$/, 'a request id');

    const counted: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.count(Buffer.from('50')) as grpc.ClientReadableStream<Buffer>;
      call.on('data', (m: Buffer) => counted.push(m.toString()));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    t.same(
      counted,
      Array.from({ length: 50 }, (_, i) => String(i)),
      'a server stream arrives whole and in order',
    );

    const sum = await new Promise<string>((resolve, reject) => {
      const call = client.sum((error: grpc.ServiceError | null, value: Buffer) =>
        error ? reject(error) : resolve(value.toString()),
      ) as grpc.ClientWritableStream<Buffer>;
      for (let i = 1; i <= 100; i++) call.write(Buffer.from(String(i)));
      call.end();
    });
    t.equal(sum, '5050', 'a client stream arrives whole');

    const replies = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = client.chat() as grpc.ClientDuplexStream<Buffer, Buffer>;
      call.on('data', (m: Buffer) => {
        got.push(m.toString());
        if (got.length < 5) call.write(Buffer.from(`m${got.length}`));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(got));
      call.write(Buffer.from('m0'));
    });
    t.same(replies, ['re:m0', 're:m1', 're:m2', 're:m3', 're:m4'], 'a conversation, one message at a time');

    const failed = await unary(client, 'fail', Buffer.from('x'));
    t.equal(
      failed.error?.code,
      grpc.status.NOT_FOUND,
      "the server's status arrives (a trailers-only response)",
    );
    t.equal(failed.error?.details, 'no such thing');

    // A client that cancels: the server's call is cancelled too (the backend stream is reset).
    await new Promise<void>((resolve) => {
      const call = client.count(Buffer.from('100000')) as grpc.ClientReadableStream<Buffer>;
      let got = 0;
      call.on('data', () => {
        if (++got === 10) call.cancel();
      });
      call.on('error', (e: grpc.ServiceError) => {
        t.equal(e.code, grpc.status.CANCELLED, 'the client sees its cancel');
        resolve();
      });
    });
    await waitFor(() => backend.seen.cancelled.includes('count 100000'), 'the server to see the cancel');
    t.pass('the cancel reached the server (the backend stream was reset)');

    const late = await unary(client, 'slow', Buffer.from('x'), { deadline: Date.now() + 300 });
    t.equal(late.error?.code, grpc.status.DEADLINE_EXCEEDED, 'a deadline expires at the client');
    await waitFor(() => backend.seen.cancelled.includes('slow'), 'the server to see the call end');
    t.pass('the server ended the call too (its grpc-timeout passed on, the stream reset)');

    const again = await unary(client, 'unary', Buffer.from('after'));
    t.equal(again.value?.toString(), 'echo:after', 'the session to the backend still serves');
  },
);

t.test('a drain lets a gRPC stream in flight finish', async (t) => {
  const { fx, client } = await grpcThroughProxy(t, 'h2c');
  const counted: string[] = [];
  const done = new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.count(Buffer.from('200')) as grpc.ClientReadableStream<Buffer>;
    call.on('data', (m: Buffer) => counted.push(m.toString()));
    call.on('error', (e: grpc.ServiceError) => resolve(e));
    call.on('end', () => resolve(null));
  });
  await waitFor(() => counted.length >= 5, 'the stream to begin');
  const drained = fx.proxy.drain(30_000);
  t.equal(await done, null, 'the stream ends without an error');
  t.equal(counted.length, 200, 'every message arrived');
  await drained;
});

t.test('without h2c, a gRPC server behind the proxy cannot be reached (the HTTP/1.1 default)', async (t) => {
  const { client } = await grpcThroughProxy(t, 'http1');
  const result = await unary(client, 'unary', Buffer.from('hi'));
  t.equal(result.error?.code, grpc.status.UNAVAILABLE);
  t.match(result.error?.details, /502/);
});

// ---- Node's HTTP/2 server as the backend --------------------------------------

interface H2Backend {
  address: Address;
  server: http2.Http2Server;
  /** Heads the backend received, in order. */
  heads: http2.IncomingHttpHeaders[];
  /** HTTP/1.1 requests that reached it (preface sniffed: one port, both protocols). */
  http1: http.IncomingMessage[];
  close(): Promise<void>;
}

/** An h2c server that answers by path; HTTP/1.1 on the same port goes to an HTTP/1.1 server. */
async function startH2Backend(): Promise<H2Backend> {
  const heads: http2.IncomingHttpHeaders[] = [];
  const http1: http.IncomingMessage[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    heads.push(headers);
    const path = String(headers[':path']);
    stream.on('error', () => {});
    if (path === '/echo-body') {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ size, sha256: hash.digest('hex') }));
      });
    } else if (path === '/request-trailers') {
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on('trailers', (h) => {
        trailers = h;
      });
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end(JSON.stringify({ sum: trailers['x-sum'] ?? null }));
      });
    } else if (path === '/continue-self' || path === '/continue-never') {
      // Says 100 itself, or never (Node's stream API sends none unless told).
      if (path === '/continue-self') stream.additionalHeaders({ ':status': 100 });
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
      });
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end(String(size));
      });
    } else if (path.startsWith('/big')) {
      stream.respond({ ':status': 200 });
      const body = patternedBytes(4 * 1024 * 1024, 7);
      stream.end(body);
    } else if (path === '/hints') {
      stream.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
      stream.respond({ ':status': 200 });
      stream.end('after hints');
    } else if (path === '/trailers') {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }));
      stream.end('with trailers');
    } else if (path === '/reset-mid') {
      stream.respond({ ':status': 200 });
      stream.write('half a bo');
      // RST_STREAM without END_STREAM (close(code) would end the body first).
      setTimeout(() => stream.destroy(new Error('cut')), 50);
    } else if (path === '/silent') {
      // Never answers.
    } else if (path === '/hsts-own') {
      stream.respond({ ':status': 200, 'strict-transport-security': 'max-age=5' });
      stream.end('own');
    } else {
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
      stream.end(`h2c ${path}`);
    }
  });
  const h1 = http.createServer((req, res) => {
    http1.push(req);
    req.resume();
    res.end(`http1 ${req.url}`);
  });
  const PREFACE = 'PRI * HTTP/2.0';
  const front = net.createServer((socket) => {
    socket.once('readable', () => {
      const first = socket.read() as Buffer | null;
      if (first === null) return socket.destroy();
      socket.unshift(first);
      if (first.toString('latin1', 0, PREFACE.length) === PREFACE) server.emit('connection', socket);
      else h1.emit('connection', socket);
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const port = (front.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  front.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    address: { kind: 'tcp', host: '127.0.0.1', port },
    server,
    heads,
    http1,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}

t.test(
  'what an h2c backend receives and answers: the header rules, bodies, 1xx, trailers, HSTS',
  async (t) => {
    const backend = await startH2Backend();
    const dir = mkdtempSync(join(tmpdir(), 'h2c-log-'));
    const log = new AccessLog({ format: 'json', file: join(dir, 'access.log'), keepQuery: false });
    const fx = await startProxy(backend.address, {
      pair,
      backendProtocol: 'h2c',
      hsts: 'max-age=60',
      accessLog: log,
    });
    const session = h2Client(fx.port, pair);
    t.teardown(async () => {
      session.close();
      await fx.proxy.close();
      await backend.close();
      removeDir(dir);
    });

    const plain = await h2Get(session, {
      ':path': '/x?q=1',
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'http',
      x_spoof: 'no',
      te: 'trailers',
    });
    t.equal(plain.body.toString(), 'h2c /x?q=1');
    t.same(plain.headers['set-cookie'], ['a=1', 'b=2'], 'two cookies stay two');
    t.equal(plain.headers['strict-transport-security'], 'max-age=60', 'HSTS added');
    t.match(plain.headers['x-request-id'], undefined, 'the backend answered, not the proxy');
    const seen = backend.heads.at(-1) as http2.IncomingHttpHeaders;
    t.equal(seen[':scheme'], 'http');
    t.equal(seen[':authority'], `localhost:${fx.port}`, 'the authority kept');
    t.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'the client address appended');
    t.equal(seen['x-forwarded-proto'], 'https', "the client's own dropped");
    t.equal(seen['x-forwarded-port'], '35048');
    t.equal(seen.te, 'trailers', 'te: trailers passed on');
    t.equal(seen.x_spoof, undefined, 'a name with an underscore dropped');
    t.match(String(seen['x-request-id']), /^[0-9a-f-]{36}$/);
    t.equal(backend.http1.length, 0, 'nothing went over HTTP/1.1');

    const own = await h2Get(session, { ':path': '/hsts-own' });
    t.equal(own.headers['strict-transport-security'], 'max-age=5', "the app's own HSTS wins");

    const upload = patternedBytes(3 * 1024 * 1024 + 17, 3);
    const echoed = await h2Get(session, { ':method': 'POST', ':path': '/echo-body' }, upload);
    t.same(
      JSON.parse(echoed.body.toString()),
      { size: upload.length, sha256: createHash('sha256').update(upload).digest('hex') },
      'a 3 MiB body without a length streams to the backend whole',
    );
    t.equal(backend.heads.at(-1)?.['content-length'], undefined, 'and is not held to be given one');

    const big = await h2Get(session, { ':path': '/big' });
    t.equal(big.body.length, 4 * 1024 * 1024, 'a 4 MiB response arrives whole');
    t.ok(big.body.equals(patternedBytes(4 * 1024 * 1024, 7)), 'byte for byte');

    const hints = await h2Get(session, { ':path': '/hints' });
    t.equal(hints.informational[0]?.[':status'], 103, 'a 103 passed on');
    t.equal(hints.informational[0]?.link, '</a.css>; rel=preload');
    t.equal(hints.body.toString(), 'after hints');

    const trailed = await h2Get(session, { ':path': '/trailers' });
    t.equal(trailed.trailers['x-checksum'], 'abc', 'trailers passed on');

    const cut = await h2Get(session, { ':path': '/reset-mid' });
    t.ok(cut.error !== undefined, `a response the backend reset is reset for the client too (${cut.error})`);

    await log.close();
    const lines = readFileSync(join(dir, 'access.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const first = lines.find((l) => l.path === '/x');
    t.match(first, { protocol: 'h2', status: 200, method: 'GET' }, 'an access-log line per stream');
    t.equal(first.request_id, seen['x-request-id'], 'with the id the backend got');
    const posted = lines.find((l) => l.path === '/echo-body');
    t.ok(posted.bytes_in > upload.length, 'the body counted in');
    t.ok(lines.find((l) => l.path === '/big').bytes_out > 4 * 1024 * 1024, 'the body counted out');
    t.match(
      lines.find((l) => l.path === '/reset-mid'),
      { status: 200, reason: /closed mid-response/ },
    );
  },
);

t.test("a request's trailers reach the h2c backend; Expect: 100-continue is answered once", async (t) => {
  const backend = await startH2Backend();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c' });
  const session = h2Client(fx.port, pair);
  t.teardown(async () => {
    session.close();
    await fx.proxy.close();
    await backend.close();
  });
  const trailed = await new Promise<string>((resolve, reject) => {
    const stream = session.request(
      { ':method': 'POST', ':path': '/request-trailers' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sum': 'abc' }));
    stream.end('body');
    readText(stream).then(resolve, reject);
  });
  t.same(JSON.parse(trailed), { sum: 'abc' }, "the client's trailers reached the backend");
  const untrailed = await h2Get(
    session,
    { ':method': 'POST', ':path': '/request-trailers' },
    Buffer.from('b'),
  );
  t.same(JSON.parse(untrailed.body.toString()), { sum: null }, 'a body without trailers ends as it did');

  // The client sends its body only once told to continue, as curl does for a large upload.
  const upload = (path: string) =>
    new Promise<{ continues: number; body: string; waitedMs: number }>((resolve, reject) => {
      const started = Date.now();
      const stream = session.request({ ':method': 'POST', ':path': path, expect: '100-continue' });
      let continues = 0;
      let waitedMs = -1;
      stream.on('headers', (h) => {
        if (h[':status'] === 100) continues++;
      });
      stream.on('continue', () => {
        if (waitedMs === -1) waitedMs = Date.now() - started;
        stream.end(Buffer.alloc(1000));
      });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => {
        body += c;
      });
      stream.on('end', () => resolve({ continues, body, waitedMs }));
      stream.on('error', reject);
    });
  const silent = await upload('/continue-never');
  t.equal(silent.body, '1000', 'a backend that never says 100: the proxy says it, the body goes');
  t.equal(silent.continues, 1);
  t.ok(silent.waitedMs >= 200, `after the backend's chance to say it (${silent.waitedMs} ms)`);
  const own = await upload('/continue-self');
  t.equal(own.body, '1000');
  t.equal(own.continues, 1, "the backend's own 100, once");
});

t.test('an h2c backend that fails: 503 before it answered once, 502 after, 504 on silence', async (t) => {
  const down = await startProxy(await deadBackend(), { pair, backendProtocol: 'h2c' });
  const downSession = h2Client(down.port, pair);
  t.teardown(async () => {
    downSession.close();
    await down.proxy.close();
  });
  const refused = await h2Get(downSession, { ':path': '/' });
  t.equal(refused.headers[':status'], 503, 'no backend yet: 503');
  t.match(String(refused.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'with its request id');

  const backend = await startH2Backend();
  const fx = await startProxy(backend.address, {
    pair,
    backendProtocol: 'h2c',
    limits: { backendTimeoutMs: 500 },
  });
  const session = h2Client(fx.port, pair);
  t.teardown(async () => {
    session.close();
    await fx.proxy.close();
  });
  t.equal((await h2Get(session, { ':path': '/' })).headers[':status'], 200);
  const silent = await h2Get(session, { ':path': '/silent' });
  t.equal(silent.headers[':status'], 504, 'a backend that never answers: 504');
  t.equal(backend.heads.at(-1)?.[':path'], '/silent');
  await backend.close();
  const gone = await h2Get(session, { ':path': '/' });
  t.equal(gone.headers[':status'], 502, 'a backend that went away after answering: 502');
  // The latency histograms see the same: one answer from the backend, two of the proxy's own.
  await waitFor(() => requestSecondsOf(fx.stats, '5xx')?.count === 2, 'the 504 and the 502 timed');
  t.equal(requestSecondsOf(fx.stats, '2xx')?.count, 1);
  t.equal(fx.stats.backendSeconds?.count, 1, "only the 200 had the backend's first byte");
  t.ok(requestSecondsOf(fx.stats, '5xx')!.sum >= 0.5, 'the 504 took the backend timeout');
});

t.test("the backend's stream limit, a refused stream, a GOAWAY: every request still answered", async (t) => {
  // Two streams at a time per session, as a backend may set it: ten at once wait for room or
  // go to another session (before, eight of ten were refused and answered 502).
  const server = http2.createServer({ settings: { maxConcurrentStreams: 2 } });
  let open = 0;
  let most = 0;
  let refused = 0;
  let sessions = 0;
  server.on('session', () => sessions++);
  const bodies: number[] = [];
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/refuse-once' && refused++ === 0) {
      // RST_STREAM REFUSED_STREAM: not processed, safe to send again (RFC 9113 section 8.7).
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (headers[':path'] === '/goaway') {
      stream.respond({ ':status': 200 });
      stream.end('bye');
      stream.session?.close();
      return;
    }
    open++;
    most = Math.max(most, open);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      bodies.push(Buffer.concat(chunks).length);
      setTimeout(() => {
        open--;
        stream.respond({ ':status': 200 });
        stream.end(String(headers[':path']));
      }, 50);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const fx = await startProxy({ kind: 'tcp', host: '127.0.0.1', port }, { pair, backendProtocol: 'h2c' });
  const session = h2Client(fx.port, pair);
  t.teardown(async () => {
    session.close();
    await fx.proxy.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const many = await Promise.all(Array.from({ length: 10 }, (_, i) => h2Get(session, { ':path': `/m${i}` })));
  t.same(
    many.map((a) => a.headers[':status']),
    Array(10).fill(200),
    'ten streams at once, two at a time per session: all answered',
  );
  t.same(
    many.map((a) => a.body.toString()),
    Array.from({ length: 10 }, (_, i) => `/m${i}`),
  );
  t.ok(
    sessions >= 2 && sessions <= MAX_SESSIONS,
    `more sessions opened for them, within the bound (${sessions}; ${most} streams at once)`,
  );

  const body = patternedBytes(20_000, 5);
  const again = await h2Get(session, { ':method': 'POST', ':path': '/refuse-once' }, body);
  t.equal(again.headers[':status'], 200, 'a refused stream is sent again');
  t.equal(refused, 2, 'the backend saw it twice');
  t.equal(bodies.at(-1), body.length, 'with its whole body');

  t.equal((await h2Get(session, { ':path': '/goaway' })).body.toString(), 'bye');
  const after = await h2Get(session, { ':path': '/after-goaway' });
  t.equal(after.headers[':status'], 200, 'after a GOAWAY, a new session');
  t.equal(after.body.toString(), '/after-goaway');
});

t.test('h2c set for a backend that speaks HTTP/1.1 only: 502, and the log line says so', async (t) => {
  const server = http.createServer((_req, res) => res.end('http/1.1 only'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { logger, lines } = captureLogger();
  const port = (server.address() as net.AddressInfo).port;
  const fx = await startProxy(
    { kind: 'tcp', host: '127.0.0.1', port },
    { pair, backendProtocol: 'h2c', logger },
  );
  const session = h2Client(fx.port, pair);
  t.teardown(async () => {
    session.close();
    await fx.proxy.close();
    server.close();
  });
  const answer = await h2Get(session, { ':path': '/' });
  t.equal(answer.headers[':status'], 502);
  t.match(
    lines.find((l) => typeof l.reason === 'string' && l.reason.includes('not HTTP/2')),
    { reason: 'bad response: not HTTP/2 (is --backend-protocol h2c right?)', msg: /answering 502/ },
    'the line names the setting to check',
  );
});

t.test('curl over HTTP/2, and an HTTP/1.1 client, through an h2c backend', async (t) => {
  const backend = await startH2Backend();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c' });
  t.teardown(async () => {
    await fx.proxy.close();
    await backend.close();
  });
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'curl',
      [
        '-sS',
        '--http2',
        '--cacert',
        pair.certFile,
        `https://localhost:${fx.port}/curl`,
        '-w',
        ' %{http_version}',
      ],
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    ),
  );
  t.equal(out, 'h2c /curl 2', 'curl --http2 gets the h2c backend');
  const h1 = await httpsRequest(fx.port, pair, { path: '/old' });
  t.equal(h1.body.toString(), 'http1 /old', 'an HTTP/1.1 client still goes over HTTP/1.1');
  t.equal(backend.http1.length, 1);
});

/** A gRPC server behind the proxy (`--idle-timeout` as given), and an HTTP/2 stream open to its Big method. */
async function bigOverHttp2(t: Test, idleTimeoutMs: number) {
  const backend = await startGrpcServer();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c', limits: { idleTimeoutMs } });
  const session = h2Client(fx.port, pair);
  t.teardown(async () => {
    session.destroy();
    await fx.proxy.close();
    backend.close();
  });
  const stream = session.request({
    ':method': 'POST',
    ':path': '/harbor.test.Echo/Big',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  return { backend, stream };
}

t.test(
  'a client that stops reading its stream, then reads again: the server is held back meanwhile, and every byte arrives',
  async (t) => {
    const messages = 64;
    const { backend, stream } = await bigOverHttp2(t, 60_000);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('trailers', resolve));
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.pause();
    stream.end(frame(Buffer.from(String(messages))));
    // Not read until the server has been held back: it wrote some of the 64 MiB, then nothing
    // more for half a second. A proxy that kept reading the server while its client did not would
    // let it write all of it (into the proxy's memory).
    await bigHeldBack(backend.seen);
    const writtenWhileHeld = backend.seen.big.written;
    t.ok(
      !backend.seen.big.done && writtenWhileHeld < messages / 2,
      `the server was held at ${writtenWhileHeld} of ${messages} MiB`,
    );
    stream.resume();
    await ended;
    const frames = framesOf(Buffer.concat(chunks));
    t.equal(frames.length, messages, 'every message');
    t.ok(bigMessagesWhole(frames, messages), 'each message whole and in order');
    t.match(await trailers, { 'grpc-status': '0' });
    t.ok(backend.seen.big.done, 'the server wrote the rest once the client read again');
  },
);

t.test(
  'a client that stops reading its stream is reset after --idle-timeout, and the call cancelled',
  async (t) => {
    const { backend, stream } = await bigOverHttp2(t, 1000);
    stream.on('error', () => {});
    const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1)));
    stream.end(frame(Buffer.from('32')));
    // 32 MiB of answer, never read: the stream's window fills, and the proxy's queue behind it.
    stream.pause();
    await waitFor(() => backend.seen.cancelled.includes('big'), 'the server sees the call cancelled');
    t.equal(await closed, 8, "the client's stream is reset (CANCEL)");
  },
);
