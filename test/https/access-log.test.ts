// The access log: one line per request, HTTP/1 and HTTP/2, JSON and combined,
// with the proxy's own answers and their reason; no secret header, the query
// string dropped unless kept; a file reopened for logrotate.
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { AccessLog } from '../../src/https/access-log.js';
import { Head } from '../../src/https/head.js';
import { parseRequestHead } from '../../src/https/head-parser.js';
import { waitFor } from '../helpers/wait.js';
import {
  connectTls,
  deadBackend,
  h2Request,
  httpsRequest,
  makePair,
  rawExchange,
  removeDir,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));
const dir = mkdtempSync(join(tmpdir(), 'harbor-access-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string): Record<string, unknown>[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];

const h2Get = async (port: number, path: string) =>
  Number((await h2Request(port, pair, { ':path': path, 'user-agent': 'h2-test' }))[':status']);

/**
 * Parses `GET path` into `head` (reused, as a connection does) and writes its line to `log`;
 * returns the parser's verdict (null: parsed, and the line written).
 */
const logGet = (log: AccessLog, head: Head, path: string, requestId: string, service = 'web-https') => {
  const raw = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`, 'latin1');
  head.reset();
  const refused = parseRequestHead(head, raw, 0, raw.length);
  if (refused !== null) return refused;
  log.write(
    {
      service,
      client: '127.0.0.1',
      head,
      protocol: 'HTTP/1.1',
      status: 200,
      bytesIn: raw.length,
      bytesOut: 2,
      headBytesOut: 0,
      startedAt: performance.now(),
      backendAt: 0,
      tls: 'TLSv1.3',
      requestId,
      reason: undefined,
      grpcStatus: -1,
    },
    performance.now(),
  );
  return null;
};

t.test('JSON: a line per request, HTTP/1 and HTTP/2, the proxy own answers with their reason', async (t) => {
  const file = join(dir, 'json.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: false });
  t.teardown(() => log.close());
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair, accessLog: log });
  t.teardown(() => fx.proxy.close());

  await httpsRequest(fx.port, pair, {
    path: '/shop?token=s3cret',
    headers: { authorization: 'Bearer s3cret', cookie: 'session=s3cret', 'user-agent': 'h1-test' },
  });
  t.equal(await h2Get(fx.port, '/h2?x=1'), 200);
  await rawExchange(fx.port, pair, `GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, {
    untilIncludes: '\r\n\r\n',
  });
  await waitFor(async () => lines(file).length >= 3, 'three lines');
  const [h1, h2, big] = lines(file);
  t.match(h1, {
    type: 'access',
    service: 'web-https',
    client: '127.0.0.1',
    method: 'GET',
    path: '/shop',
    protocol: 'HTTP/1.1',
    status: 200,
    tls: /^TLSv1\.[23]$/,
    request_id: /^[0-9a-f-]{36}$/,
  });
  t.ok((h1!.bytes_in as number) > 100 && (h1!.bytes_out as number) > 100, 'bytes both ways');
  t.ok((h1!.duration_ms as number) >= (h1!.backend_ms as number), 'backend time within the total');
  t.match(h2, { protocol: 'h2', path: '/h2', status: 200, method: 'GET' });
  t.match(big, { status: 431, reason: /head too large|too-many|431/, method: '-' });
  t.notMatch(readFileSync(file, 'utf8'), /s3cret/, 'no token, cookie or authorization value');

  // No backend: the proxy's 503, with why.
  const down = await startProxy(await deadBackend(), { pair, accessLog: log });
  t.teardown(() => down.proxy.close());
  const refused = await httpsRequest(down.port, pair, { path: '/' });
  await waitFor(async () => lines(file).length >= 4, 'the 503 line');
  t.match(lines(file)[3], {
    status: 503,
    reason: 'backend not listening',
    request_id: refused.headers['x-request-id'],
  });
});

t.test(
  "the proxy's own answers: their bytes and id in the line, for a head refused before it was a request too",
  async (t) => {
    const file = join(dir, 'own-answers.log');
    const log = new AccessLog({ format: 'json', file, keepQuery: false });
    t.teardown(() => log.close());
    const down = await startProxy(await deadBackend(), { pair, accessLog: log });
    t.teardown(() => down.proxy.close());
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

    // HTTP/1, refused at its head (a smuggling attempt): no request yet, an answer all the same.
    const smuggle = 'GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n';
    const answer = await rawExchange(down.port, pair, smuggle);
    t.match(answer, /^HTTP\/1\.1 400 /);
    const h1Id = /\r\nX-Request-Id: ([^\r]+)\r\n/.exec(answer)?.[1];
    t.match(h1Id, UUID, 'the refusal carries an id');
    // HTTP/1 answered by the proxy after the head became a request (no backend).
    const unavailable = await rawExchange(down.port, pair, 'GET /x HTTP/1.1\r\nHost: h\r\n\r\n', {
      untilIncludes: 'not listening yet.',
    });
    t.match(unavailable, /^HTTP\/1\.1 503 /);
    // HTTP/2: a header list over the limit, refused at its head; then a 503.
    const big = await h2Request(down.port, pair, { ':path': '/big', 'x-big': 'a'.repeat(20_000) });
    t.equal(big[':status'], 431);
    t.match(big['x-request-id'], UUID);
    const h2Down = await h2Request(down.port, pair, { ':path': '/h2' });
    t.equal(h2Down[':status'], 503);

    // Plain HTTP on the TLS port: the redirect to https is the proxy's own answer too.
    const plain = await new Promise<string>((resolve) => {
      const socket = net.connect(down.port, '127.0.0.1');
      let out = '';
      socket.on('data', (c: Buffer) => {
        out += c.toString('latin1');
      });
      socket.on('close', () => resolve(out));
      socket.write('GET /shop?token=s3cret HTTP/1.1\r\nHost: shop.example.com:35048\r\n\r\n');
    });
    t.match(plain, /^HTTP\/1\.1 301 /);
    const plainId = /\r\nX-Request-Id: ([^\r]+)\r\n/.exec(plain)?.[1];
    t.match(plainId, UUID, 'the redirect carries an id');

    await waitFor(async () => lines(file).length >= 5, 'five lines');
    const [refused, h1Down, h2Big, h2Unavailable, redirected] = lines(file);
    t.match(redirected, {
      status: 301,
      method: 'GET',
      path: '/shop',
      protocol: 'HTTP/1.1',
      tls: '',
      request_id: plainId,
      bytes_out: plain.length,
      reason: 'plain HTTP on the TLS port',
    });
    t.match(refused, { status: 400, protocol: 'HTTP/1.1', request_id: h1Id, bytes_out: answer.length });
    t.match(h1Down, { status: 503, path: '/x', bytes_out: unavailable.length });
    t.match(h2Big, { status: 431, protocol: 'h2', request_id: big['x-request-id'] });
    t.match(h2Unavailable, { status: 503, protocol: 'h2', path: '/h2', request_id: h2Down['x-request-id'] });
    // HTTP/2 counts its answer as HTTP/1 counts the same one (the head in HTTP/1 form).
    t.notMatch(unavailable, /Connection: close/);
    t.equal(h2Unavailable!.bytes_out, h1Down!.bytes_out, 'the same 503, the same bytes');
    t.ok((h2Big!.bytes_out as number) > 60, 'the 431 counted');
  },
);

t.test('a backend that fails: a line saying what failed, for a response cut mid-way too', async (t) => {
  const file = join(dir, 'failed.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: false });
  t.teardown(() => log.close());
  // Closes at once without answering (/close), or promises 100 bytes, sends 5 and closes (/cut).
  const backend = net.createServer((socket) => {
    socket.once('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').startsWith('GET /cut ')) {
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort');
      } else socket.destroy();
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.teardown(() => backend.close());
  const port = (backend.address() as net.AddressInfo).port;
  const fx = await startProxy({ kind: 'tcp', host: '127.0.0.1', port }, { pair, accessLog: log });
  t.teardown(() => fx.proxy.close());

  t.equal((await httpsRequest(fx.port, pair, { path: '/close' })).status, 502);
  t.equal(await h2Get(fx.port, '/close'), 502);
  // The client sees a 200 head, then the connection (HTTP/1) or the stream (HTTP/2) cut.
  const cut = await rawExchange(fx.port, pair, 'GET /cut HTTP/1.1\r\nHost: h\r\n\r\n');
  t.match(cut, /^HTTP\/1\.1 200 OK\r\n[\s\S]*short$/);
  const h2Cut = await new Promise<string>((resolve) => {
    const session = http2.connect(`https://localhost:${fx.port}`, { ca: pair.cert });
    session.on('error', () => undefined);
    const stream = session.request({ ':path': '/cut' });
    stream.on('error', (error: Error & { code?: string }) => {
      session.close();
      resolve(error.code ?? error.message);
    });
    stream.on('end', () => {
      session.close();
      resolve('ended whole');
    });
    stream.resume();
  });
  t.not(h2Cut, 'ended whole', 'the HTTP/2 stream is reset, not ended');

  await waitFor(async () => lines(file).length >= 4, 'four lines');
  const byPath = (path: string, protocol: string) =>
    lines(file).find((l) => l.path === path && l.protocol === protocol);
  for (const protocol of ['HTTP/1.1', 'h2']) {
    t.match(
      byPath('/close', protocol),
      { status: 502, reason: 'backend failed: closed before answering' },
      protocol,
    );
    t.match(
      byPath('/cut', protocol),
      { status: 200, reason: 'backend failed: closed mid-response', tls: /^TLSv1\.[23]$/ },
      `${protocol}: the cut response has its line, with the TLS version read while the connection lived`,
    );
  }
});

t.test('a client that leaves before its answer: a 499 line, HTTP/1 and HTTP/2', async (t) => {
  const file = join(dir, 'gone.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: false });
  t.teardown(() => log.close());
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair, accessLog: log });
  t.teardown(() => fx.proxy.close());
  // HTTP/1: the client closes while the backend takes its time.
  const socket = await connectTls(fx.port, pair);
  socket.write('GET /slow?ms=3000 HTTP/1.1\r\nHost: h\r\n\r\n');
  await waitFor(async () => backend.requests >= 1, 'the request at the backend');
  socket.destroy();
  // HTTP/2: the client resets its stream.
  const session = http2.connect(`https://localhost:${fx.port}`, { ca: pair.cert });
  t.teardown(() => session.destroy());
  const stream = session.request({ ':path': '/slow?ms=3000' });
  stream.on('error', () => {});
  await waitFor(async () => backend.requests >= 2, 'the stream at the backend');
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await waitFor(async () => lines(file).length >= 2, 'two lines');
  t.match(
    lines(file)
      .map((l) => `${l.protocol} ${l.status} ${l.reason}`)
      .sort(),
    ['HTTP/1.1 499 client went away', 'h2 499 client went away'],
  );
});

t.test('combined, the query kept when asked, and a file reopened after logrotate moved it', async (t) => {
  const file = join(dir, 'combined.log');
  const log = new AccessLog({ format: 'combined', file, keepQuery: true });
  t.teardown(() => log.close());
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair, accessLog: log });
  t.teardown(() => fx.proxy.close());
  await httpsRequest(fx.port, pair, {
    path: '/a?b=c',
    headers: { referer: 'https://x/', 'user-agent': 'agent "q"' },
  });
  await waitFor(async () => existsSync(file) && readFileSync(file, 'utf8').includes('\n'), 'a line');
  t.match(
    readFileSync(file, 'utf8'),
    /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/a\?b=c HTTP\/1\.1" 200 \d+ "https:\/\/x\/" "agent \\"q\\"" web-https [0-9a-f-]{36} [\d.]+\n$/,
  );
  renameSync(file, `${file}.1`);
  log.reopen();
  await httpsRequest(fx.port, pair, { path: '/after' });
  await waitFor(
    async () => existsSync(file) && readFileSync(file, 'utf8').includes('/after'),
    'the new file',
  );
  t.notMatch(readFileSync(`${file}.1`, 'utf8'), /\/after/, 'the rotated file is left alone');
});

t.test('a line written after reopen() goes to the new file, one written before it to the old', async (t) => {
  // The reopen and the lines reach the log's thread by two ways (a message, the ring): a line
  // written at once after reopen() is on the ring before the thread has the message.
  const file = join(dir, 'reopen-order.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: false });
  t.teardown(() => log.close());
  await log.flush(); // the thread has opened the file
  const head = new Head();
  for (let round = 0; round < 10; round++) {
    logGet(log, head, `/before-${round}`, `b${round}`);
    renameSync(file, `${file}.${round}`);
    log.reopen();
    logGet(log, head, `/after-${round}`, `a${round}`);
    await log.flush();
    // The file moved holds the lines since the reopen before (none in the first round).
    t.same(
      lines(`${file}.${round}`).map((line) => line.path),
      round === 0 ? ['/before-0'] : [`/after-${round - 1}`, `/before-${round}`],
      `round ${round}: the moved file has the lines before`,
    );
    t.same(
      lines(file).map((line) => line.path),
      [`/after-${round}`],
      `round ${round}: the new file the line after`,
    );
  }
});

t.test(
  "combined: the bytes are the response body's, as Apache's %b and nginx's $body_bytes_sent",
  async (t) => {
    const file = join(dir, 'combined-bytes.log');
    const log = new AccessLog({ format: 'combined', file, keepQuery: false });
    t.teardown(() => log.close());
    const body = 'x'.repeat(1234);
    const origin = http.createServer((req, res) => {
      if (req.url === '/hint') res.writeEarlyHints({ link: '</s.css>; rel=preload' });
      res
        .writeHead(200, {
          'content-type': 'text/plain',
          'content-length': body.length,
          'x-filler': 'y'.repeat(300),
        })
        .end(body);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    t.teardown(() => origin.close());
    const port = (origin.address() as net.AddressInfo).port;
    const fx = await startProxy({ kind: 'tcp', host: '127.0.0.1', port }, { pair, accessLog: log });
    t.teardown(() => fx.proxy.close());
    const down = await startProxy(await deadBackend(), { pair, accessLog: log });
    t.teardown(() => down.proxy.close());

    const h1 = await httpsRequest(fx.port, pair, { path: '/h1' });
    t.equal(h1.body.length, 1234);
    await httpsRequest(fx.port, pair, { path: '/hint' });
    t.equal(await h2Get(fx.port, '/h2'), 200);
    const refused = await httpsRequest(down.port, pair, { path: '/down' });
    const plain = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(fx.port, '127.0.0.1', () =>
        socket.write('GET /plain HTTP/1.1\r\nHost: h\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    const plainBody = plain.slice(plain.indexOf('\r\n\r\n') + 4);
    t.ok(plainBody.length > 0, 'the redirect has a body');
    await waitFor(
      async () => existsSync(file) && readFileSync(file, 'utf8').split('\n').length > 5,
      'five lines',
    );
    const bytesOf = (path: string) => {
      const line = readFileSync(file, 'utf8')
        .split('\n')
        .find((l) => l.includes(`"GET ${path} `));
      return Number(/" \d{3} (\d+) "/.exec(line ?? '')?.[1]);
    };
    t.equal(bytesOf('/h1'), 1234, 'HTTP/1.1: the body only');
    t.equal(bytesOf('/hint'), 1234, 'a 103 before it is a head too');
    t.equal(bytesOf('/h2'), 1234, 'HTTP/2: the body only');
    t.equal(bytesOf('/down'), refused.body.length, "the proxy's own 503: its body");
    t.equal(bytesOf('/plain'), plainBody.length, 'the redirect to https: its body');
  },
);

t.test('lines formatted with their batch keep their own request and time', async (t) => {
  // A connection reuses its head object for the next request, and a batch is formatted up to
  // 100 ms after its first line: each line must say what its own request was, and when it ended.
  const file = join(dir, 'batch.log');
  const log = new AccessLog({ format: 'combined', file, keepQuery: true });
  const head = new Head();
  const entry = (status: number) => ({
    service: 'web-https',
    client: '127.0.0.1',
    head,
    protocol: 'HTTP/1.1' as const,
    status,
    bytesIn: 1,
    bytesOut: 2,
    headBytesOut: 0,
    startedAt: performance.now(),
    backendAt: 0,
    tls: 'TLSv1.3',
    requestId: `id-${status}`,
    reason: undefined,
    grpcStatus: -1,
  });
  const parse = (text: string) => {
    const raw = Buffer.from(text, 'latin1');
    head.reset();
    t.equal(parseRequestHead(head, raw, 0, raw.length), null, 'the head parses');
  };
  parse('GET /first HTTP/1.1\r\nHost: h\r\nUser-Agent: one\r\n\r\n');
  log.write(entry(200), performance.now());
  parse('POST /second?x HTTP/1.1\r\nHost: h\r\nUser-Agent: two\r\n\r\n');
  log.write(entry(201), performance.now());
  head.reset();
  await log.close();
  const [first, second] = readFileSync(file, 'utf8').split('\n');
  t.match(first, /"GET \/first HTTP\/1\.1" 200 2 "-" "one" web-https id-200 /);
  t.match(second, /"POST \/second\?x HTTP\/1\.1" 201 2 "-" "two" web-https id-201 /);

  const jsonFile = join(dir, 'batch.json.log');
  const json = new AccessLog({ format: 'json', file: jsonFile, keepQuery: false });
  t.teardown(() => json.close());
  parse('GET /timed HTTP/1.1\r\nHost: h\r\n\r\n');
  const before = Date.now();
  json.write(entry(200), performance.now());
  const after = Date.now();
  await waitFor(async () => lines(jsonFile).length === 1, 'the batch, written on its timer');
  const written = Date.now();
  const time = Date.parse(lines(jsonFile)[0]!.time as string);
  // The timer is 100 ms; libuv's cached loop time may start it a little early.
  t.ok(written - before >= 50, `written ${written - before} ms after the request ended`);
  t.ok(
    time >= before - 1 && time <= after + 1,
    `the line's time is its request's end (${time - before} ms after it), not the batch's`,
  );
});

t.test('a batch of lines longer than its buffer holds is written whole', async (t) => {
  const file = join(dir, 'long.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: true });
  const head = new Head();
  const paths: string[] = [];
  for (let i = 0; i < 12; i++) {
    // 12 lines of ~20 KB in one batch: more than the writer's 256 KiB buffer holds. The sixth is
    // 60 KB, which may take six times that escaped: a buffer of its own, between two others.
    const path = `/${i}/${'x'.repeat(i === 5 ? 60_000 : 20_000)}`;
    paths.push(path);
    t.equal(logGet(log, head, path, `id-${i}`), null);
  }
  await log.close();
  t.same(
    lines(file).map((l) => l.path),
    paths,
    'every line, in order, with its whole path',
  );
});

t.test(
  'batches that fill several buffers: every line, in order, whole, multi-byte characters at the cuts',
  async (t) => {
    const file = join(dir, 'many.log');
    const log = new AccessLog({ format: 'json', file, keepQuery: true });
    const head = new Head();
    const services: string[] = [];
    // 3,000 lines of 300-1,300 bytes (about 2.4 MB): batches of 128 appended to 256 KiB buffers,
    // some of them not fitting what is left of one. Each service name (the one field that may be
    // any text) holds characters of two and four bytes in UTF-8: four batches have fewer
    // characters than the room left and more bytes (checked against a copy that keeps a cut batch).
    for (let i = 0; i < 3000; i++) {
      const service = `web-${'\u00e9'.repeat(i % 397)}\u{1F600}${'s'.repeat((i * 37) % 211)}`;
      services.push(service);
      if (logGet(log, head, `/${i}`, `id-${i}`, service) !== null) throw new Error(`GET /${i} refused`);
    }
    await log.close();
    const written = lines(file);
    t.equal(written.length, services.length, 'as many lines as requests');
    const wrong = written.findIndex(
      (l, i) => l.service !== services[i] || l.path !== `/${i}` || l.request_id !== `id-${i}`,
    );
    t.equal(wrong, -1, 'each line whole, in order');
  },
);
