// Request bodies without a length, HTTP/2 streams without content-length
// (browsers' streamed fetch bodies, gRPC-style clients) and HTTP/1.1 chunked
// uploads, held until they end so that the app gets a Content-Length (issue 9,
// item 22: uWSGI's --http-socket reads no chunked body): in memory up to 1 MiB,
// then in a deleted file in TMPDIR; 413 over --max-buffered-body; `off` streams
// them chunked; a temp folder that cannot be written gets a 500 and a log line
// naming it, and the proxy serves on.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger } from '../../src/log/index.js';
import { waitFor } from '../helpers/wait.js';
import {
  connectTls,
  type Echo,
  makePair,
  removeDir,
  startEchoBackend,
  startProxy,
  writePaced,
} from './fixtures/helpers.js';

const pair = makePair();
const backend = await startEchoBackend();
const spoolDir = mkdtempSync(join(tmpdir(), 'harbor-spool-'));
const savedTmp = process.env.TMPDIR;
process.env.TMPDIR = spoolDir;
t.teardown(async () => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  await backend.close();
  removeDir(pair.dir);
  rmSync(spoolDir, { recursive: true, force: true });
});

/** This process's open files under `dir` (a deleted one reads "... (deleted)"). */
function openFilesIn(dir: string): string[] {
  const found: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) found.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

interface Upload {
  status: number;
  body: Buffer;
}

/**
 * POSTs `body` without content-length, in 64 KiB pieces with backpressure; with `pauseAt`,
 * stops there until `resume` is called.
 */
function upload(
  session: http2.ClientHttp2Session,
  body: Buffer,
  options: { pauseAt?: number; trailers?: Record<string, string> } = {},
): { done: Promise<Upload>; resume: () => void; stream: http2.ClientHttp2Stream } {
  const stream = session.request(
    { ':method': 'POST', ':path': '/up' },
    { waitForTrailers: options.trailers !== undefined },
  );
  if (options.trailers !== undefined) {
    const trailers = options.trailers;
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  }
  const done = new Promise<Upload>((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
  });
  const { resume } = writePaced(stream, body, options);
  return { done, stream, resume };
}

function connect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`https://localhost:${port}`, { ca: pair.cert });
  session.on('error', () => {});
  return session;
}

for (const protocol of ['HTTP/2 without content-length', 'HTTP/1.1 chunked'] as const) {
  t.test(
    `${protocol}, over 1 MiB: held in a deleted file in TMPDIR, then sent with its length`,
    async (t) => {
      const fx = await startProxy(backend.address, { pair });
      t.teardown(() => fx.proxy.close());
      const session = connect(fx.port);
      t.teardown(() => session.close());
      const body = Buffer.alloc(3 * 1024 * 1024 + 5);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
      const before = backend.requests;
      const options = { pauseAt: 2 * 1024 * 1024 };
      const { done, resume } =
        protocol === 'HTTP/1.1 chunked'
          ? chunkedUpload(fx.port, body, options)
          : upload(session, body, options);
      // Opened, then unlinked in the open's callback: wait for both.
      await waitFor(
        () => openFilesIn(spoolDir).length === 1 && openFilesIn(spoolDir)[0]!.endsWith(' (deleted)'),
        'the body file to be open and deleted',
      );
      t.match(
        openFilesIn(spoolDir)[0],
        /\/harbor-body-\d+-[0-9a-f]+ \(deleted\)$/,
        'deleted as soon as open',
      );
      t.same(readdirSync(spoolDir), [], 'nothing is left in the folder, even by a crash');
      t.equal(backend.requests, before, 'the backend is not taken while the body comes in');
      resume();
      const answer = await done;
      t.equal(answer.status, 200);
      const echo = JSON.parse(answer.body.toString()) as Echo;
      t.equal(echo.headers['content-length'], String(body.length), 'the app gets a Content-Length');
      t.notOk('transfer-encoding' in echo.headers, 'not chunked');
      t.equal(echo.bodySha, createHash('sha256').update(body).digest('hex'), 'every byte, in order');
      await waitFor(() => openFilesIn(spoolDir).length === 0, 'the body file to be closed');
    },
  );
}

t.test('trailers: a held body goes chunked with them as its trailer section', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const body = Buffer.alloc(1536 * 1024, 3);
  const answer = await upload(session, body, { trailers: { 'x-digest': 'sha-256=abc' } }).done;
  const echo = JSON.parse(answer.body.toString()) as Echo;
  t.equal(echo.headers['transfer-encoding'], 'chunked');
  t.equal(echo.bodyLength, body.length);
  t.same(echo.trailers, { 'x-digest': 'sha-256=abc' });
});

t.test('over --max-buffered-body: 413, the backend never sees it, the session serves on', async (t) => {
  const fx = await startProxy(backend.address, { pair, limits: { maxBufferedBodyBytes: 2 * 1024 * 1024 } });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const before = backend.requests;
  const answer = await upload(session, Buffer.alloc(3 * 1024 * 1024, 1)).done;
  t.equal(answer.status, 413);
  t.match(answer.body.toString(), /too large/);
  t.equal(backend.requests, before, 'no request reached the backend');
  await waitFor(() => openFilesIn(spoolDir).length === 0, 'the body file to be closed');
  const next = await upload(session, Buffer.from('small')).done;
  t.equal(next.status, 200);
  t.equal((JSON.parse(next.body.toString()) as Echo).bodyLength, 5);
});

t.test('off: a body without a length goes chunked as it comes', async (t) => {
  const fx = await startProxy(backend.address, { pair, limits: { maxBufferedBodyBytes: 0 } });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const body = Buffer.alloc(2 * 1024 * 1024, 9);
  const echo = JSON.parse((await upload(session, body).done).body.toString()) as Echo;
  t.equal(echo.headers['transfer-encoding'], 'chunked');
  t.equal(echo.bodySha, createHash('sha256').update(body).digest('hex'));
  t.same(openFilesIn(spoolDir), [], 'no file');
});

t.test('a client that resets mid-upload leaves no file open', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const { done, stream } = upload(session, Buffer.alloc(4 * 1024 * 1024, 2), { pauseAt: 2 * 1024 * 1024 });
  done.catch(() => {});
  await waitFor(() => openFilesIn(spoolDir).length === 1, 'the body file to be open');
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await waitFor(() => openFilesIn(spoolDir).length === 0, 'the body file to be closed');
  t.same(readdirSync(spoolDir), [], 'and nothing in the folder');
});

t.test('a temp folder that cannot be written: 500, a line naming it, and the proxy serves on', async (t) => {
  const lines: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
  const logger = createLogger({ level: 'info', pretty: false, name: 'test', destination: sink });
  const fx = await startProxy(backend.address, { pair, logger });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const missing = join(spoolDir, 'not-there');
  process.env.TMPDIR = missing;
  t.teardown(() => {
    process.env.TMPDIR = spoolDir;
  });
  const answer = await upload(session, Buffer.alloc(2 * 1024 * 1024, 4)).done;
  t.equal(answer.status, 500);
  await waitFor(() => lines.some((l) => l.includes('could not be held')), 'the warning');
  const line = JSON.parse(lines.find((l) => l.includes('could not be held'))!);
  t.equal(line.folder, missing, 'names the folder');
  t.equal(line.code, 'ENOENT', 'and why');
  const small = await upload(session, Buffer.from('in memory')).done;
  t.equal(small.status, 200, 'a body that fits in memory still goes through');
});

/** An HTTP/1.1 chunked POST of `body` in 64 KiB writes (Node's client chunks a body of unknown length). */
function chunkedUpload(
  port: number,
  body: Buffer,
  options: { pauseAt?: number } = {},
): { done: Promise<Upload>; resume: () => void } {
  let resolveDone: (u: Upload) => void = () => {};
  let rejectDone: (e: Error) => void = () => {};
  const done = new Promise<Upload>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const req = https.request(
    {
      host: '127.0.0.1',
      port,
      ca: pair.cert,
      servername: 'localhost',
      agent: false,
      method: 'POST',
      path: '/up',
    },
    (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveDone({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    },
  );
  req.on('error', rejectDone);
  const { resume } = writePaced(req, body, options);
  return { done, resume };
}

t.test('HTTP/1.1 chunked: 100 Continue at once, trailers kept, a pipelined request after', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const socket = await connectTls(fx.port, pair);
  t.teardown(() => socket.destroy());
  let seen = '';
  socket.on('data', (c: Buffer) => {
    seen += c.toString('latin1');
  });
  socket.write('POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n');
  await waitFor(() => seen.includes('HTTP/1.1 100 Continue\r\n\r\n'), '100 Continue from the proxy');
  socket.write('5\r\nhello\r\n0\r\n\r\n');
  socket.write('POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
  socket.write('3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n');
  await new Promise((resolve) => socket.once('close', resolve));
  const bodies = seen
    .split('HTTP/1.1 200 OK')
    .slice(1)
    .map((r) => {
      // The echo answers chunked: one chunk of JSON.
      const body = r.slice(r.indexOf('\r\n\r\n') + 4);
      return JSON.parse(body.slice(body.indexOf('\r\n') + 2, body.lastIndexOf('\r\n0\r\n'))) as Echo;
    });
  t.equal(bodies.length, 2, 'both requests answered, in order');
  t.equal(bodies[0]?.url, '/a');
  t.equal(bodies[0]?.headers['content-length'], '5');
  t.notOk(bodies[0]?.headers.expect, 'Expect is answered by the proxy, not passed on');
  t.equal(bodies[1]?.url, '/b');
  t.equal(bodies[1]?.headers['transfer-encoding'], 'chunked', 'trailers ride in a chunked body');
  t.same(bodies[1]?.trailers, { 'x-sum': '7' });
  t.equal(bodies[1]?.bodyLength, 3);
});

t.test('HTTP/1.1 chunked over --max-buffered-body: 413 and the connection closed', async (t) => {
  const fx = await startProxy(backend.address, { pair, limits: { maxBufferedBodyBytes: 1024 * 1024 } });
  t.teardown(() => fx.proxy.close());
  const before = backend.requests;
  const answer = await chunkedUpload(fx.port, Buffer.alloc(2 * 1024 * 1024, 1)).done.catch((e: Error) => ({
    status: -1,
    body: Buffer.from(e.message),
  }));
  t.equal(answer.status, 413, answer.body.toString());
  t.equal(backend.requests, before, 'no request reached the backend');
  await waitFor(() => openFilesIn(spoolDir).length === 0, 'the body file to be closed');
});

t.test('HTTP/1.1 chunked with --max-buffered-body off: relayed chunked as it comes', async (t) => {
  const fx = await startProxy(backend.address, { pair, limits: { maxBufferedBodyBytes: 0 } });
  t.teardown(() => fx.proxy.close());
  const body = Buffer.alloc(1536 * 1024, 6);
  const echo = JSON.parse((await chunkedUpload(fx.port, body).done).body.toString()) as Echo;
  t.equal(echo.headers['transfer-encoding'], 'chunked');
  t.equal(echo.bodyLength, body.length);
});
