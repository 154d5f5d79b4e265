// HTTP/2 uploads without content-length (browsers' streamed fetch bodies,
// gRPC-style clients) held until they end, so that the app gets a Content-Length
// (issue 9, item 22): in memory up to 1 MiB, then in a deleted file in TMPDIR;
// 413 over --max-buffered-body; `off` streams them chunked; a temp folder that
// cannot be written gets a 500 and a log line naming it, and the proxy serves on.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger } from '../../src/log/index.js';
import { waitFor } from '../helpers/wait.js';
import { type Echo, makePair, removeDir, startEchoBackend, startProxy } from './fixtures/helpers.js';

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
  let sent = 0;
  let stopAt = options.pauseAt ?? body.length;
  const pump = (): void => {
    while (sent < stopAt) {
      const piece = body.subarray(sent, Math.min(sent + 64 * 1024, stopAt));
      sent += piece.length;
      if (!stream.write(piece)) {
        stream.once('drain', pump);
        return;
      }
    }
    if (sent >= body.length && !stream.writableEnded) stream.end();
  };
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
  pump();
  return {
    done,
    stream,
    resume: () => {
      stopAt = body.length;
      pump();
    },
  };
}

function connect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`https://localhost:${port}`, { ca: pair.cert });
  session.on('error', () => {});
  return session;
}

t.test('over 1 MiB: held in a deleted file in TMPDIR, then sent with its length', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const session = connect(fx.port);
  t.teardown(() => session.close());
  const body = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const before = backend.requests;
  const { done, resume } = upload(session, body, { pauseAt: 2 * 1024 * 1024 });
  await waitFor(() => openFilesIn(spoolDir).length === 1, 'the body file to be open');
  t.match(openFilesIn(spoolDir)[0], /\/harbor-body-\d+-[0-9a-f]+ \(deleted\)$/, 'deleted as soon as open');
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
});

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
