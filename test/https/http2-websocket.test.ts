// WebSockets over HTTP/2 (RFC 8441): the proxy's SETTINGS allow extended
// CONNECT, a browser opens its WebSocket as a stream of the HTTP/2 connection it
// has, and the backend gets the HTTP/1.1 handshake that stream stands for. The
// stream and the backend connection are then spliced both ways, ends and resets
// passed on; a backend that refuses, or answers with a wrong accept key, is
// answered as any other request.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { WebSocketServer } from 'ws';
import { AccessLog } from '../../src/https/access-log.js';
import { unreadBytes } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import {
  h2Client,
  makePair,
  patternedBytes,
  readJsonLines,
  removeDir,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
const dir = mkdtempSync(join(tmpdir(), 'harbor-h2ws-'));
t.teardown(() => {
  removeDir(pair.dir);
  rmSync(dir, { recursive: true, force: true });
});

/** The upgrade requests the backends received, as the backend saw their heads. */
const upgrades: http.IncomingHttpHeaders[] = [];

// A framework's server: a page at every path, a WebSocket echo at /chat (the `ws` library checks the
// handshake as any app would), and a handshake it refuses at /refuse.
const app = http.createServer((_req, res) => {
  res.setHeader('content-type', 'text/html');
  res.end('<!doctype html><title>app</title>');
});
const wss = new WebSocketServer({ noServer: true });
app.on('upgrade', (req, socket, head) => {
  upgrades.push(req.headers);
  if (req.url === '/refuse') {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(`hello ${req.headers['x-forwarded-proto']}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
});
await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));

// A backend as raw bytes: /echo echoes whatever comes after its 101 and ends when the proxy
// does; /bad-accept answers with a key that is not the one owed; /stall reads nothing after
// its 101 (kept in `stalled`, for the test to close with bytes unread: a TCP reset).
let stalled: net.Socket | undefined;
const rawSockets = new Set<net.Socket>();
const raw = net.createServer((socket) => {
  rawSockets.add(socket);
  socket.on('close', () => rawSockets.delete(socket));
  socket.on('error', () => {});
  let text = '';
  const onHead = (chunk: Buffer) => {
    text += chunk.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return;
    socket.off('data', onHead);
    const [line, ...fields] = text.slice(0, end).split('\r\n');
    const headers: http.IncomingHttpHeaders = {};
    for (const field of fields) {
      const colon = field.indexOf(':');
      headers[field.slice(0, colon).toLowerCase()] = field.slice(colon + 1).trim();
    }
    upgrades.push({ ...headers, ':line': line });
    const key = String(headers['sec-websocket-key']);
    const path = line?.split(' ')[1];
    const accept = path === '/bad-accept' ? 'd3Jvbmc=' : acceptFor(key);
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n`,
    );
    const rest = Buffer.from(text.slice(end + 4), 'latin1');
    if (path === '/stall') {
      socket.pause();
      stalled = socket;
      return;
    }
    if (rest.length > 0) socket.write(rest);
    socket.pipe(socket);
  };
  socket.on('data', onHead);
});
await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));

const acceptFor = (key: string) =>
  createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

const logFile = join(dir, 'access.log');
const log = new AccessLog({ format: 'json', file: logFile, keepQuery: false });
const appFx = await startProxy(
  { kind: 'tcp', host: '127.0.0.1', port: (app.address() as net.AddressInfo).port },
  {
    pair,
    accessLog: log,
  },
);
const rawFx = await startProxy(
  { kind: 'tcp', host: '127.0.0.1', port: (raw.address() as net.AddressInfo).port },
  {
    pair,
    accessLog: log,
  },
);
t.teardown(async () => {
  await appFx.proxy.close();
  await rawFx.proxy.close();
  await log.close();
  wss.close();
  app.closeAllConnections();
  app.close();
  for (const socket of rawSockets) socket.destroy();
  raw.close();
});

/** A session to `port` once the proxy's SETTINGS have come (extended CONNECT needs them). */
async function settledSession(t: Test, port: number): Promise<http2.ClientHttp2Session> {
  const session = h2Client(port, pair);
  t.teardown(() => session.destroy());
  await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
  return session;
}

/** An extended CONNECT stream for `protocol` to `path`, with its response head (or the code it was reset with). */
async function extendedConnect(
  session: http2.ClientHttp2Session,
  path: string,
  protocol = 'websocket',
): Promise<{ stream: http2.ClientHttp2Stream; headers: http2.IncomingHttpHeaders }> {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': protocol,
    ':path': path,
    ':scheme': 'https',
    ':authority': 'localhost',
    'sec-websocket-version': '13',
    // HTTP/2 has no key: a client's own must not reach the backend as if it were the handshake's.
    'sec-websocket-key': 'Y2xpZW50IGtleSAxMjM0NQ==',
  });
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  return { stream, headers };
}

/** Reads `stream` until `size` bytes came. */
function readBytes(stream: http2.ClientHttp2Stream, size: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got < size) return;
      stream.off('data', onData);
      resolve(Buffer.concat(chunks));
    };
    stream.on('data', onData);
  });
}

/** The access-log line of the request to `path` (the log written out until it comes). */
async function lineFor(path: string): Promise<Record<string, unknown> | undefined> {
  let line: Record<string, unknown> | undefined;
  await waitFor(() => {
    log.flush();
    line = existsSync(logFile) ? readJsonLines(logFile).find((l) => l.path === path) : undefined;
    return line !== undefined;
  }, `the access-log line of ${path}`);
  return line;
}

t.test('the proxy allows extended CONNECT in its SETTINGS', async (t) => {
  const session = await settledSession(t, appFx.port);
  t.equal(session.remoteSettings.enableConnectProtocol, true);
});

t.test('a tunnel passes bytes both ways, with backpressure, and the ends pass on', async (t) => {
  const session = await settledSession(t, rawFx.port);
  const before = upgrades.length;
  const { stream, headers } = await extendedConnect(session, '/echo?room=1');
  t.equal(headers[':status'], 200, 'the WebSocket is open: 200 on HTTP/2');
  t.equal(headers['sec-websocket-protocol'], 'chat', "the backend's subprotocol is passed on");
  t.equal(headers['sec-websocket-accept'], undefined, 'the HTTP/1.1 accept key is not');
  const handshake = upgrades[before]!;
  t.equal(handshake[':line'], 'GET /echo?room=1 HTTP/1.1', 'the backend got the HTTP/1.1 handshake');
  t.match(handshake.upgrade, /^websocket$/i);
  t.match(handshake.connection, /upgrade/i);
  t.equal(handshake['sec-websocket-version'], '13');
  t.not(handshake['sec-websocket-key'], 'Y2xpZW50IGtleSAxMjM0NQ==', "the client's key is not passed on");
  t.equal(
    Buffer.from(String(handshake['sec-websocket-key']), 'base64').length,
    16,
    'a key of 16 random bytes',
  );
  t.equal(handshake['x-forwarded-proto'], 'https');
  t.match(handshake['x-request-id'], /^[0-9a-f-]{36}$/);
  // More than both sides' queues (256 KiB each) and the stream's window hold: only backpressure
  // in both directions gets it all through intact.
  const bytes = patternedBytes(8 * 1024 * 1024, 7);
  const echoed = readBytes(stream, bytes.length);
  stream.write(bytes);
  t.ok((await echoed).subarray(0, bytes.length).equals(bytes), '8 MiB echoed intact');
  const ended = new Promise<void>((resolve) => stream.once('end', resolve));
  stream.resume();
  stream.end();
  await ended;
  t.pass("the client's END_STREAM reached the backend as a FIN, and its FIN came back as END_STREAM");
  await waitFor(() => rawSockets.size === 0, 'the backend connection to close');
  t.match(
    await lineFor('/echo'),
    { method: 'GET', protocol: 'h2', status: 101, request_id: handshake['x-request-id'] },
    'logged as its 101, as over HTTP/1.1',
  );
});

t.test(
  'with --backend-protocol h2c a WebSocket still reaches the backend as its HTTP/1.1 handshake',
  async (t) => {
    const fx = await startProxy(
      { kind: 'tcp', host: '127.0.0.1', port: (raw.address() as net.AddressInfo).port },
      { pair, backendProtocol: 'h2c' },
    );
    t.teardown(() => fx.proxy.close());
    const session = await settledSession(t, fx.port);
    const before = upgrades.length;
    const { stream, headers } = await extendedConnect(session, '/echo');
    t.equal(headers[':status'], 200);
    t.equal(upgrades[before]?.[':line'], 'GET /echo HTTP/1.1');
    const keys = new Set(upgrades.map((headers) => headers['sec-websocket-key']));
    t.equal(keys.size, upgrades.length, 'each handshake has a key of its own');
    const echoed = readBytes(stream, 5);
    stream.write('hello');
    t.equal(String(await echoed), 'hello');
    stream.close(http2.constants.NGHTTP2_CANCEL);
  },
);

t.test("a client's reset closes the backend connection", async (t) => {
  const session = await settledSession(t, rawFx.port);
  const { stream } = await extendedConnect(session, '/echo');
  await waitFor(() => rawSockets.size === 1, 'the backend connection');
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await waitFor(() => rawSockets.size === 0, 'the backend connection to close after the client reset');
  t.pass();
});

t.test("a backend's failure resets the stream (CONNECT_ERROR), not a clean end", async (t) => {
  const session = await settledSession(t, rawFx.port);
  const { stream } = await extendedConnect(session, '/stall');
  stream.on('error', () => {});
  stream.resume();
  await waitFor(() => stalled !== undefined, 'the backend to take the WebSocket');
  const backend = stalled!;
  // The backend reads nothing more: what the client sends piles up unread in its kernel
  // buffer, and closing it then makes the kernel send a reset rather than a FIN.
  stream.write(Buffer.alloc(1024 * 1024, 1));
  await waitFor(() => unreadBytes(backend) > 0, "bytes unread in the backend's kernel buffer");
  // (After a clean end instead, END_STREAM, the stream would stay half open: no close, and the
  // test fails by its timeout. A reset also ends the readable side first: 'end' tells nothing.)
  const closed = new Promise<number>((resolve) => stream.once('close', () => resolve(stream.rstCode ?? -1)));
  backend.destroy();
  t.equal(await closed, http2.constants.NGHTTP2_CONNECT_ERROR);
});

t.test('a wrong accept key is a 502; a refused handshake is passed on', async (t) => {
  const session = await settledSession(t, rawFx.port);
  const bad = await extendedConnect(session, '/bad-accept');
  t.equal(bad.headers[':status'], 502);
  bad.stream.resume();
  await waitFor(() => rawSockets.size === 0, 'the backend connection to close');

  const appSession = await settledSession(t, appFx.port);
  const refused = await extendedConnect(appSession, '/refuse');
  t.equal(refused.headers[':status'], 403, "the backend's refusal reaches the client");
  t.equal(String(await readBytes(refused.stream, 9)), 'not here\n');
  t.match(await lineFor('/bad-accept'), { status: 502, reason: /Sec-WebSocket-Accept/ });
  t.match(await lineFor('/refuse'), { status: 403, protocol: 'h2' });
});

t.test('extended CONNECT for another protocol is 501, a plain CONNECT 400', async (t) => {
  const session = await settledSession(t, appFx.port);
  const other = await extendedConnect(session, '/', 'webtransport');
  t.equal(other.headers[':status'], 501);
  other.stream.resume();
  const plain = session.request({ ':method': 'CONNECT', ':authority': 'localhost:443' });
  const status = await new Promise((resolve) => plain.once('response', (h) => resolve(h[':status'])));
  t.equal(status, 400);
  plain.resume();
});

const CHROMIUM = ['chromium', 'chromium-browser']
  .map((name) => spawnSync('which', [name], { encoding: 'utf8' }).stdout.trim())
  .find(Boolean);

t.test(
  'Chromium opens its WebSocket on the HTTP/2 connection it has',
  { skip: !CHROMIUM && 'no chromium' },
  async (t) => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    t.teardown(() => browser.close());
    // The certificate is the test's own: the browser is told to take it.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`https://localhost:${appFx.port}/app.html`);
    const got = await page.evaluate(
      (url) =>
        new Promise<{ first: string; echo: string; size: number; same: boolean; code: number }>(
          (resolve, reject) => {
            const ws = new WebSocket(url);
            ws.binaryType = 'arraybuffer';
            const big = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
            const messages: (string | ArrayBuffer)[] = [];
            ws.onerror = () => reject(new Error('the WebSocket failed'));
            ws.onmessage = (event) => {
              messages.push(event.data);
              if (messages.length === 1) {
                ws.send('ping');
                ws.send(big);
              }
              if (messages.length === 3) ws.close(4001, 'bye');
            };
            ws.onclose = (event) => {
              const echoed = new Uint8Array(messages[2] as ArrayBuffer);
              resolve({
                first: messages[0] as string,
                echo: messages[1] as string,
                size: echoed.length,
                same: echoed.every((byte, i) => byte === big[i]),
                code: event.code,
              });
            };
          },
        ),
      `wss://localhost:${appFx.port}/chat`,
    );
    t.same(got, { first: 'hello https', echo: 'ping', size: 1024 * 1024, same: true, code: 4001 });
    t.match(await lineFor('/chat'), { protocol: 'h2', status: 101 }, 'the WebSocket went over HTTP/2');
    t.match(await lineFor('/app.html'), { protocol: 'h2', status: 200 }, 'as the page did');
  },
);
