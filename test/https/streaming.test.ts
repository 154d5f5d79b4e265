// Bodies stream through with backpressure both ways: 20 MB up and down arrive
// intact; with 60 MB in flight, a client that stops reading stalls the
// backend, and a backend that stops reading stalls the client, before the
// whole body has moved (kernel buffers hold some MB; the proxy adds 256 KiB).
// Downloads at once, read in bursts, each arrive as the backend sent them: the
// proxy reads every backend socket into one buffer and must copy what a client
// has not taken yet.
// 200 MB each way with the proxy's RSS measured: test/https/fixtures/soak.ts.
import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import {
  connectTls,
  httpsRequest,
  patternedBytes,
  removeDir,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const SIZE = 20 * 1024 * 1024;
const backend = await startEchoBackend();
const fx = await startProxy(backend.address);
t.teardown(async () => {
  await fx.proxy.close();
  await backend.close();
  removeDir(fx.pair.dir);
});

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('20 MB down and 20 MB up (chunked) arrive intact', async (t) => {
  const down = await httpsRequest(fx.port, fx.pair, { path: `/bytes?n=${SIZE}` });
  t.equal(down.body.length, SIZE);
  t.ok(down.body.every((b) => b === 0x61));

  const body = Buffer.alloc(SIZE);
  for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
  const sha = createHash('sha256').update(body).digest('hex');
  const up = await httpsRequest(fx.port, fx.pair, {
    method: 'POST',
    path: '/up',
    headers: { 'transfer-encoding': 'chunked' },
    body,
  });
  const echo = JSON.parse(up.body.toString());
  t.equal(echo.bodyLength, SIZE);
  t.equal(echo.bodySha, sha);
});

t.test(
  'downloads at once, read in bursts, HTTP/1 and HTTP/2: each arrives as the backend sent it',
  async (t) => {
    const size = 6 * 1024 * 1024;
    // A client that stops now and then: the proxy's writes queue up behind what it has not read.
    const bursty = (stream: NodeJS.ReadableStream & { pause(): void; resume(): void }) => {
      let reads = 0;
      stream.on('data', () => {
        if (++reads % 8 === 0) {
          stream.pause();
          setTimeout(() => stream.resume(), 2);
        }
      });
    };
    const http1 = async (seed: number): Promise<Buffer> => {
      const socket = await connectTls(fx.port, fx.pair);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      bursty(socket);
      socket.write(`GET /bytes?n=${size}&seed=${seed} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
      await new Promise((resolve) => socket.once('close', resolve));
      const all = Buffer.concat(chunks);
      return all.subarray(all.indexOf('\r\n\r\n') + 4);
    };
    const h2 = async (seed: number): Promise<Buffer> => {
      const session = http2.connect(`https://localhost:${fx.port}`, { ca: fx.pair.cert });
      t.teardown(() => session.destroy());
      const stream = session.request({ ':path': `/bytes?n=${size}&seed=${seed}` });
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      bursty(stream);
      await new Promise((resolve, reject) => {
        stream.once('end', resolve);
        stream.once('error', reject);
      });
      session.close();
      return Buffer.concat(chunks);
    };
    const bodies = await Promise.all([http1(1), http1(2), h2(3), h2(4)]);
    bodies.forEach((body, i) => {
      t.ok(
        body.equals(patternedBytes(size, i + 1)),
        `download ${i + 1} (${i < 2 ? 'HTTP/1.1' : 'h2'}) intact`,
      );
    });
  },
);

t.test('a client that stops reading stops the backend (the proxy buffers no whole body)', async (t) => {
  const own = await startEchoBackend();
  t.teardown(() => own.close());
  const written: net.Socket[] = [];
  own.server.on('connection', (s: net.Socket) => written.push(s));
  const ownFx = await startProxy(own.address, { pair: fx.pair });
  t.teardown(() => ownFx.proxy.close());
  const socket = await connectTls(ownFx.port, fx.pair);
  t.teardown(() => socket.destroy());
  socket.pause();
  const BIG = 3 * SIZE;
  socket.write(`GET /bytes?n=${BIG} HTTP/1.1\r\nHost: h\r\n\r\n`);
  // Kernel socket buffers on loopback can hold many MB: what shows backpressure is that the
  // backend stalls (its count stops moving) before it has sent everything.
  const sent = (): number => written.reduce((a, s) => a + s.bytesWritten, 0);
  let before = -1;
  let now = sent();
  for (let i = 0; i < 100 && now !== before; i++) {
    await wait(200);
    before = now;
    now = sent();
  }
  t.equal(written.length, 1);
  t.ok(now > 0 && now < BIG, `backend stalled after ${now} of ${BIG} bytes while the client read nothing`);
  let received = 0;
  socket.on('data', (c: Buffer) => {
    received += c.length;
  });
  socket.resume();
  while (received < BIG) await wait(20);
  t.ok(received >= BIG, 'everything arrives once the client reads');
});

t.test('a backend that stops reading stops the client', async (t) => {
  let held: net.Socket | undefined;
  let bytes = 0;
  const hash = createHash('sha256');
  const slowServer = net.createServer((s) => {
    held = s;
    s.pause();
    let head = true;
    s.on('data', (c: Buffer) => {
      let chunk = c;
      if (head) {
        const end = c.indexOf('\r\n\r\n');
        if (end === -1) return;
        head = false;
        chunk = c.subarray(end + 4);
      }
      bytes += chunk.length;
      hash.update(chunk);
      if (bytes >= 3 * SIZE) {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n${hash.digest('hex')}`);
      }
    });
  });
  await new Promise<void>((resolve) => slowServer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => slowServer.close());
  const slowFx = await startProxy(
    { kind: 'tcp', host: '127.0.0.1', port: (slowServer.address() as net.AddressInfo).port },
    { pair: fx.pair },
  );
  t.teardown(() => slowFx.proxy.close());
  const socket = await connectTls(slowFx.port, fx.pair);
  t.teardown(() => socket.destroy());
  const BIG = 3 * SIZE;
  const block = Buffer.alloc(65536, 0x42);
  const shaOf = createHash('sha256');
  for (let n = 0; n < BIG; n += block.length) shaOf.update(block);
  const sha = shaOf.digest('hex');
  let response = '';
  socket.on('data', (c: Buffer) => {
    response += c.toString();
  });
  socket.write(`POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: ${BIG}\r\n\r\n`);
  let offset = 0;
  const pump = (): void => {
    while (offset < BIG) {
      offset += block.length;
      if (!socket.write(block)) return;
    }
  };
  socket.on('drain', pump);
  pump();
  const accepted = (): number => offset - socket.writableLength;
  let before = -1;
  let now = accepted();
  for (let i = 0; i < 100 && now !== before; i++) {
    await wait(200);
    before = now;
    now = accepted();
  }
  t.ok(
    now < BIG,
    `the client stalled after handing over ${now} of ${BIG} bytes while the backend read nothing`,
  );
  held?.resume();
  while (!response.includes(sha)) await wait(20);
  t.match(response, /^HTTP\/1\.1 200 OK/);
});

t.test('a client that stops reading is cut after the idle timeout, and frees the backend', async (t) => {
  // Issue 9, item 16: two such clients took a 2-thread gunicorn app down for everyone.
  const own = await startEchoBackend();
  t.teardown(() => own.close());
  const backendSockets: net.Socket[] = [];
  own.server.on('connection', (s: net.Socket) => backendSockets.push(s));
  const ownFx = await startProxy(own.address, {
    pair: fx.pair,
    limits: { idleTimeoutMs: 500, headerTimeoutMs: 500 },
  });
  t.teardown(() => ownFx.proxy.close());
  const closed = (s: net.Socket) =>
    new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', resolve)));

  // HTTP/1.1: reads nothing of a 60 MB answer.
  const socket = await connectTls(ownFx.port, fx.pair);
  t.teardown(() => socket.destroy());
  socket.pause();
  socket.write(`GET /bytes?n=${3 * SIZE} HTTP/1.1\r\nHost: h\r\n\r\n`);
  await waitFor(() => backendSockets.length === 1, 'the backend connection');
  await closed(backendSockets[0]!);
  t.pass('HTTP/1.1: the backend connection is closed, not held for the stalled client');

  // HTTP/2: a stream whose client never reads (its flow-control window stays shut).
  const session = http2.connect(`https://localhost:${ownFx.port}`, { ca: fx.pair.cert });
  t.teardown(() => session.destroy());
  session.on('error', () => {});
  const stream = session.request({ ':path': `/bytes?n=${3 * SIZE}` });
  stream.on('error', () => {});
  stream.pause();
  await waitFor(() => backendSockets.length === 2, 'the second backend connection');
  await closed(backendSockets[1]!);
  t.pass('HTTP/2: the stream is cancelled and its backend connection closed');
  await waitFor(() => stream.destroyed || stream.rstCode !== undefined, 'the client to see the stream reset');
  t.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL, 'reset with CANCEL');
});
