// Bodies stream through with backpressure both ways: 20 MB up and down arrive
// intact, a client that stops reading stops the backend, and a backend that
// stops reading stops the client. (200 MB with RSS measured: npm run soak:https.)
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import t from 'tap';
import { connectTls, httpsRequest, removeDir, startEchoBackend, startProxy } from './fixtures/helpers.js';

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
  socket.write(`GET /bytes?n=${SIZE} HTTP/1.1\r\nHost: h\r\n\r\n`);
  await wait(500);
  const total = written.reduce((a, s) => a + s.bytesWritten, 0);
  t.equal(written.length, 1);
  t.ok(
    total > 0 && total < SIZE / 2,
    `backend wrote ${total} bytes of ${SIZE} while the client read nothing`,
  );
  let received = 0;
  socket.on('data', (c: Buffer) => {
    received += c.length;
  });
  socket.resume();
  while (received < SIZE) await wait(20);
  t.ok(received >= SIZE, 'everything arrives once the client reads');
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
      if (bytes >= SIZE) {
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
  const body = Buffer.alloc(SIZE, 0x42);
  const sha = createHash('sha256').update(body).digest('hex');
  let response = '';
  socket.on('data', (c: Buffer) => {
    response += c.toString();
  });
  socket.write(`POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: ${SIZE}\r\n\r\n`);
  let offset = 0;
  const pump = (): void => {
    while (offset < SIZE) {
      const piece = body.subarray(offset, offset + 65536);
      offset += piece.length;
      if (!socket.write(piece)) return;
    }
  };
  socket.on('drain', pump);
  pump();
  await wait(500);
  const accepted = offset - socket.writableLength;
  t.ok(
    accepted < SIZE / 2,
    `client could hand over ${accepted} of ${SIZE} bytes while the backend read nothing`,
  );
  held?.resume();
  while (!response.includes(sha)) await wait(20);
  t.match(response, /^HTTP\/1\.1 200 OK/);
});
