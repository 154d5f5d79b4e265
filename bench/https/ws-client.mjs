// A WebSocket load client for bench/https/websocket.mjs. Each session is what
// a page's WebSocket does at the least: open (the handshake), send one 32-byte
// text message, read its echo, close (close frame both ways), end.
//   mode h1: each session on a TLS connection of its own (HTTP/1.1 Upgrade),
//            full handshakes only (no session offered), as a browser's first
//            WebSocket to a host without HTTP/2 is.
//   mode h2: every session a stream of one HTTP/2 connection (RFC 8441
//            extended CONNECT), as a browser's WebSockets are to a server that
//            allows it; the connection is opened before the clock starts.
// Runs as its own process so that its CPU is not the bench's; bounded in count
// and in time. Usage: node ws-client.mjs '{"port":N,"mode":"h1"|"h2",...}'
// Prints one JSON line: { completed, errors, seconds, rate, lastError }.
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import tls from 'node:tls';

const options = JSON.parse(process.argv[2] ?? '{}');
const port = Number(options.port);
const mode = options.mode ?? 'h1';
const concurrency = options.concurrency ?? 16;
const maxCount = options.maxCount ?? 20_000;
const seconds = options.seconds ?? 5;
const timeoutMs = 5000;

const MESSAGE = Buffer.alloc(32, 'x');
/** A masked client frame (RFC 6455 section 5.3): `opcode` with `payload` (under 126 bytes). */
function clientFrame(opcode, payload) {
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
  return frame;
}
const TEXT = () => clientFrame(0x1, MESSAGE);
const CLOSE = () => clientFrame(0x8, Buffer.from([0x03, 0xe8]));
/** What the server sends back: the echo (2 + 32 bytes) and its close frame (2 + 2). */
const EXPECTED = 2 + MESSAGE.length + 2 + 2;

let started = 0;
let completed = 0;
let errors = 0;
let lastError = '';

/** Runs one session over `duplex` once it is open; resolves when the server's frames all came and it ended. */
function converse(duplex, resolve, fail) {
  let got = 0;
  let closing = false;
  duplex.on('data', (chunk) => {
    got += chunk.length;
    if (!closing && got >= 2 + MESSAGE.length) {
      closing = true;
      duplex.write(CLOSE());
    }
    if (got >= EXPECTED) duplex.end();
  });
  duplex.once('close', () => (got >= EXPECTED ? resolve() : fail(new Error(`closed after ${got} bytes`))));
  duplex.write(TEXT());
}

function h1Session() {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', reject);
    socket.once('secureConnect', () => {
      const key = randomBytes(16).toString('base64');
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      let head = '';
      const onHead = (chunk) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onHead);
        if (!head.startsWith('HTTP/1.1 101')) {
          reject(new Error(head.split('\r\n')[0]));
          socket.destroy();
          return;
        }
        // Bytes after the head are frames already: counted by converse() from here.
        converse(socket, resolve, reject);
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length > 0) socket.emit('data', rest);
      };
      socket.on('data', onHead);
    });
  });
}

function h2Session(session) {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':path': '/ws',
      ':scheme': 'https',
      ':authority': `localhost:${port}`,
      'sec-websocket-version': '13',
    });
    stream.on('error', reject);
    stream.once('response', (headers) => {
      if (headers[':status'] !== 200) {
        reject(new Error(`status ${headers[':status']}`));
        stream.close();
        return;
      }
      converse(stream, resolve, reject);
    });
  });
}

async function openH2() {
  const session = http2.connect(`https://localhost:${port}`, { rejectUnauthorized: false });
  session.on('error', (error) => {
    lastError = error.message;
  });
  await new Promise((resolve, reject) => {
    session.once('remoteSettings', resolve);
    session.once('error', reject);
  });
  if (!session.remoteSettings.enableConnectProtocol)
    throw new Error('the server does not allow extended CONNECT');
  return session;
}

const session = mode === 'h2' ? await openH2() : null;
const begin = performance.now();
const deadline = begin + seconds * 1000;

async function worker() {
  while (started < maxCount && performance.now() < deadline) {
    started++;
    let timer;
    try {
      await Promise.race([
        session === null ? h1Session() : h2Session(session),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
        }),
      ]);
      completed++;
    } catch (error) {
      errors++;
      lastError = error.message;
    } finally {
      clearTimeout(timer);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - begin) / 1000;
session?.close();
process.stdout.write(
  `${JSON.stringify({ completed, errors, seconds: elapsed, rate: completed / elapsed, lastError })}\n`,
);
process.exit(0);
