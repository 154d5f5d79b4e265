// Small TLS probes run from the bench process itself (never under load): one
// GET, the served certificate's fingerprint, whether a session resumes, and
// the full-handshake load run in its own process.
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { runCommand, sleep } from './proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** One HTTPS GET on a fresh connection; resolves { status, bytes }. */
export function httpsGet(port, path, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false, timeout: timeoutMs },
      (res) => {
        let bytes = 0;
        res.on('data', (chunk) => {
          bytes += chunk.length;
        });
        res.on('end', () => resolve({ status: res.statusCode, bytes }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/** One HTTP/2 GET on a fresh session (ALPN h2); resolves { status, bytes }. */
export function h2Get(port, path, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const timer = setTimeout(() => session.destroy(new Error(`GET ${path} timed out`)), timeoutMs);
    const done = (error, result) => {
      clearTimeout(timer);
      session.close();
      if (error) reject(error);
      else resolve(result);
    };
    session.on('error', (error) => done(error));
    const stream = session.request({ ':path': path });
    let status = 0;
    let bytes = 0;
    stream.on('response', (headers) => {
      status = headers[':status'];
    });
    stream.on('data', (chunk) => {
      bytes += chunk.length;
    });
    stream.on('end', () => done(null, { status, bytes }));
    stream.on('error', (error) => done(error));
  });
}

/**
 * Retries a GET until it answers 200 (bounded): the target is up and its backend reachable.
 * `h2`: over HTTP/2, for a target whose backend only HTTP/2 clients reach.
 */
export async function waitForOk(port, path, { timeoutMs = 10_000, h2 = false } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const { status } = await (h2 ? h2Get : httpsGet)(port, path);
      if (status === 200) return;
      last = `status ${status}`;
    } catch (error) {
      last = error.message;
    }
    await sleep(100);
  }
  throw new Error(`GET https://127.0.0.1:${port}${path} not 200 after ${timeoutMs} ms (${last})`);
}

/** The SHA-256 fingerprint of the certificate served on a new, non-resumed connection. */
export async function servedFingerprint(port, { timeoutMs = 2000 } = {}) {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
  const timer = setTimeout(() => socket.destroy(new Error('handshake timed out')), timeoutMs);
  try {
    await once(socket, 'secureConnect');
    return socket.getPeerCertificate().fingerprint256;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * Polls (every pollMs, at most timeoutMs) until the served fingerprint is
 * `expected`; returns milliseconds since `since` (a performance.now() value),
 * or null if it never appeared.
 */
export async function waitForFingerprint(port, expected, since, { pollMs = 20, timeoutMs = 10_000 } = {}) {
  const deadline = since + timeoutMs;
  while (performance.now() < deadline) {
    try {
      if ((await servedFingerprint(port)) === expected) return performance.now() - since;
    } catch {
      // a refused or broken handshake during the swap is also "not yet"
    }
    await sleep(pollMs);
  }
  return null;
}

/** Whether the server lets a client resume its session (TLS 1.3 ticket or 1.2 id/ticket). */
export async function resumes(port) {
  const first = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
  let session = null;
  first.on('session', (s) => {
    session = s;
  });
  await once(first, 'secureConnect');
  // TLS 1.3 tickets arrive after the handshake: give them a moment.
  first.write('GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  first.resume();
  await Promise.race([once(first, 'close'), sleep(2000)]);
  first.destroy();
  if (!session) return false;
  const second = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    rejectUnauthorized: false,
    session,
  });
  await once(second, 'secureConnect');
  const reused = second.isSessionReused();
  second.destroy();
  return reused;
}

/** Runs the handshake client (full, or resume: true; request: true for one request per connection) in its own process; resolves its JSON report. */
export async function runHandshakes(
  port,
  { seconds = 5, concurrency = 16, maxCount = 50_000, resume = false, request = false } = {},
) {
  const args = [
    join(here, 'handshake-client.mjs'),
    JSON.stringify({ port, seconds, concurrency, maxCount, resume, request }),
  ];
  const { code, stdout, stderr } = await runCommand(process.execPath, args, {
    timeoutMs: (seconds + 20) * 1000,
  });
  if (code !== 0) throw new Error(`handshake client failed (exit ${code}): ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').pop());
}
