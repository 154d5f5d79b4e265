// New TCP connections per second through a proxy: each connection sends one
// byte, waits for it to come back from the echo backend and for the close.
// Its own process, bounded in count and time.
// Usage: node connect-client.mjs '{"port":N,"seconds":5,"concurrency":32,"maxCount":30000}'
// Prints one JSON line: { completed, errors, lastError, seconds, rate }.
import net from 'node:net';

const options = JSON.parse(process.argv[2] ?? '{}');
const port = Number(options.port);
const concurrency = options.concurrency ?? 32;
const maxCount = options.maxCount ?? 30_000;
const deadline = performance.now() + (options.seconds ?? 5) * 1000;
const timeoutMs = 5000;
const payload = Buffer.from('x');

let started = 0;
let completed = 0;
let errors = 0;
let lastError = '';
const begin = performance.now();

function one() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let echoed = false;
    const timer = setTimeout(() => {
      lastError = 'timeout';
      socket.destroy();
    }, timeoutMs);
    socket.once('connect', () => socket.write(payload));
    socket.on('data', () => {
      echoed = true;
    });
    socket.on('error', (error) => {
      lastError = error.code ?? error.message;
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (echoed) completed++;
      else {
        errors++;
        if (!lastError) lastError = 'closed without an answer';
      }
      resolve();
    });
  });
}

async function worker() {
  while (started < maxCount && performance.now() < deadline) {
    started++;
    await one();
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - begin) / 1000;
process.stdout.write(
  `${JSON.stringify({ completed, errors, lastError, seconds, rate: completed / seconds })}\n`,
);
