// A TLS client that makes only FULL handshakes (it never offers a previous
// session), or with {"resume": true} RESUMED ones: each worker makes one full
// handshake with a request (servers send TLS 1.3 tickets when they first
// write), keeps the ticket and offers it on every later connection (tickets
// are stateless and reusable in OpenSSL, Node and nginx; a server that
// refuses shows as a low resumed fraction). wrk resumes only some of its
// reconnects (with TLS 1.3 it saves the session before the ticket arrives),
// so this client is what counts handshakes of one kind exactly.
// With {"request": true}, each full handshake carries one request as most
// clients' first connection does (GET with Connection: close, no session
// offered) and counts once its response has ended: handshake, request,
// forwarding, response and close, what a client pays for.
// Runs as its own process so that its CPU is not the bench's; bounded in
// count and in time. Usage: node handshake-client.mjs '{"port":N,...}'
// Prints one JSON line: { completed, reused, errors, seconds, rate, protocol }.
import tls from 'node:tls';

const options = JSON.parse(process.argv[2] ?? '{}');
const host = options.host ?? '127.0.0.1';
const port = Number(options.port);
const concurrency = options.concurrency ?? 16;
const maxCount = options.maxCount ?? 20_000;
const deadline = performance.now() + (options.seconds ?? 5) * 1000;
const connectTimeoutMs = 5000;
const resume = options.resume === true;
const withRequest = options.request === true;
// How long a resuming worker waits for its first TLS 1.3 ticket.
const ticketWaitMs = 1000;

let started = 0;
let completed = 0;
let reused = 0;
let errors = 0;
let protocol = '';
let lastError = '';
const begin = performance.now();

function one(slot) {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      servername: options.servername ?? 'localhost',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      session: resume ? slot.session : undefined,
    });
    const timer = setTimeout(() => {
      errors++;
      lastError = 'timeout';
      socket.destroy();
    }, connectTimeoutMs);
    let done = false;
    const needTicket = resume && slot.session === undefined;
    if (needTicket) {
      socket.on('session', (session) => {
        slot.session = session;
        if (done) socket.end();
      });
    }
    if (withRequest) {
      // Counted when the whole response came and the server closed: a 200 status line seen.
      let head = '';
      socket.on('data', (chunk) => {
        if (head.length < 16) head += chunk.toString('latin1', 0, Math.min(chunk.length, 16));
      });
      socket.once('secureConnect', () => {
        done = true;
        if (protocol === '') {
          protocol =
            `${socket.getProtocol()} ${socket.getCipher()?.name} ${socket.getEphemeralKeyInfo()?.name ?? ''}`.trim();
        }
        socket.write('GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      socket.once('end', () => {
        if (head.startsWith('HTTP/1.1 200')) {
          completed++;
          if (socket.isSessionReused()) reused++;
        } else {
          errors++;
          lastError = `answer: ${JSON.stringify(head)}`;
        }
        socket.end();
      });
      socket.on('error', (error) => {
        errors++;
        lastError = error.code ?? error.message;
      });
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      return;
    }
    socket.once('secureConnect', () => {
      done = true;
      completed++;
      if (socket.isSessionReused()) reused++;
      if (protocol === '') {
        // What was negotiated, once: every target must be compared on the same suite and group.
        protocol =
          `${socket.getProtocol()} ${socket.getCipher()?.name} ${socket.getEphemeralKeyInfo()?.name ?? ''}`.trim();
      }
      if (needTicket && slot.session === undefined) {
        socket.write('GET /small HTTP/1.1\r\nHost: localhost\r\n\r\n');
        socket.resume();
        setTimeout(() => socket.end(), ticketWaitMs).unref();
      } else {
        socket.end();
      }
    });
    socket.on('error', (error) => {
      if (!done) {
        errors++;
        lastError = error.code ?? error.message;
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function worker() {
  const slot = { session: undefined };
  while (started < maxCount && performance.now() < deadline) {
    started++;
    await one(slot);
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - begin) / 1000;
process.stdout.write(
  `${JSON.stringify({ completed, reused, errors, lastError, seconds, rate: completed / seconds, protocol })}\n`,
);
