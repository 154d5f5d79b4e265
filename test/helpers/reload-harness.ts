// Shared by test/e2e/reload-*.test.ts: the real CLI spawned with its JSON log
// lines parsed as they come, a backend that answers HTTP (optionally slowly)
// and echoes WebSocket messages, leaf pairs signed by one test CA made by
// `openssl` (so clients can verify every certificate served across swaps),
// and a probe that waits for a fingerprint to be served.
import { type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';
import type { LogLine } from '../fixtures/certs-helpers.js';
import { exited, startSidecar } from './cli.js';
import { freePort, servedFingerprint } from './net.js';

const execFileAsync = promisify(execFile);

export interface RunningSidecar {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every JSON log line so far, in order. */
  readonly lines: LogLine[];
  /** Output that was not a JSON log line (stderr, pretty text): shown when something fails. */
  readonly other: string[];
  /** Lines at level error or above. */
  errors(): LogLine[];
  /** Resolves with the first line from index `from` on that matches; rejects after `limitMs`. */
  waitForLog(
    match: (line: LogLine) => boolean,
    what: string,
    from?: number,
    limitMs?: number,
  ): Promise<LogLine>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  readonly service: string;
  readonly certsDir: string;
  readonly backendPort: number;
  readonly logLevel?: 'debug' | 'info';
  readonly extraArgs?: readonly string[];
}

/** `harbor-sidecar run` for one service on a free loopback port, admin off. Killed at teardown by the caller. */
export async function spawnSidecar(options: SpawnOptions): Promise<RunningSidecar> {
  const port = await freePort();
  const child = startSidecar([
    'run',
    '--listen',
    '127.0.0.1',
    '--service',
    options.service,
    '--int-port',
    String(port),
    '--backend',
    `127.0.0.1:${options.backendPort}`,
    '--certs-dir',
    options.certsDir,
    '--admin',
    'off',
    '--log-level',
    options.logLevel ?? 'info',
    ...(options.extraArgs ?? []),
  ]);
  const lines: LogLine[] = [];
  const other: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const text of parts) {
      if (text === '') continue;
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        other.push(text);
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => other.push(chunk));
  const exit = exited(child);
  const waitForLog = (match: (line: LogLine) => boolean, what: string, from = 0, limitMs = 10_000) =>
    new Promise<LogLine>((resolve, reject) => {
      let checked = from;
      const check = () => {
        for (; checked < lines.length; checked++) {
          const line = lines[checked]!;
          if (match(line)) {
            done();
            resolve(line);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line ${what} within ${limitMs} ms; stderr: ${other.join('')}`));
      }, limitMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      void exit.then(() => {
        if (!waiters.has(check)) return;
        check();
        if (!waiters.has(check)) return;
        done();
        reject(new Error(`sidecar exited before a log line ${what}; stderr: ${other.join('')}`));
      });
      check();
    });
  return {
    child,
    port,
    lines,
    other,
    errors: () => lines.filter((l) => l.level >= 50),
    waitForLog,
    exit,
  };
}

export interface EchoBackend {
  readonly port: number;
  /** Requests to /slow that have arrived (they answer after `slowMs`). */
  readonly slowArrived: number;
  close(): Promise<void>;
}

/**
 * Plain HTTP answering `backend:<method> <url>` (after `slowMs` for paths under /slow), with a WebSocket echo
 * server on the same port: the framework behind the sidecar, as an app with a chat endpoint would be.
 */
export async function echoBackendWithWs(slowMs = 1500): Promise<EchoBackend> {
  let slowArrived = 0;
  const server: Server = createServer((req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`backend:${req.method} ${req.url}`);
    };
    if (req.url?.startsWith('/slow')) {
      slowArrived++;
      setTimeout(answer, slowMs);
    } else answer();
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get slowArrived() {
      return slowArrived;
    },
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Leaf {
  readonly cert: string;
  readonly key: string;
  readonly fingerprint: string;
}

/** A test CA (made by openssl) that signs EC P-256 leaves for localhost and 127.0.0.1. */
export class TestCa {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly pem: string;
  #count = 0;

  constructor(parent: string) {
    this.dir = mkdtempSync(join(parent, 'ca-'));
    this.certFile = join(this.dir, 'ca.crt');
    this.keyFile = join(this.dir, 'ca.key');
    execFileSync('openssl', [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...[
        '-keyout',
        this.keyFile,
        '-out',
        this.certFile,
        '-subj',
        '/CN=Harbor reload test CA',
        '-days',
        '365',
      ],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
    ]);
    this.pem = readFileSync(this.certFile, 'utf8');
  }

  /** `count` fresh leaves (each its own key), made two at a time: one openssl process per leaf. */
  async leaves(count: number): Promise<Leaf[]> {
    const out: Leaf[] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        out.push(await this.#leaf());
      }
    };
    await Promise.all([worker(), worker()]);
    return out;
  }

  async #leaf(): Promise<Leaf> {
    const n = ++this.#count;
    const keyFile = join(this.dir, `${n}.key`);
    const certFile = join(this.dir, `${n}.crt`);
    await execFileAsync('openssl', [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', keyFile, '-out', certFile, '-subj', `/CN=localhost/OU=leaf ${n}`, '-days', '90'],
      ...['-CA', this.certFile, '-CAkey', this.keyFile],
      ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-addext', 'basicConstraints=CA:FALSE'],
    ]);
    const cert = readFileSync(certFile, 'utf8');
    return {
      cert,
      key: readFileSync(keyFile, 'utf8'),
      fingerprint: new X509Certificate(cert).fingerprint256,
    };
  }
}

/**
 * Probes with fresh TLS connections until `expected` is served; resolves with the milliseconds it took from
 * `since`, or -1 when it was not served within `limitMs`. Probe errors (a refused connection) count as not yet.
 */
export async function servedWithin(
  port: number,
  expected: string,
  since: number,
  limitMs = 5000,
): Promise<{ ms: number; last: string }> {
  let last = '';
  for (;;) {
    last = await servedFingerprint(port).catch((error: Error) => `error: ${error.message}`);
    const ms = performance.now() - since;
    if (last === expected) return { ms, last };
    if (ms > limitMs) return { ms: -1, last };
    await sleep(20);
  }
}
