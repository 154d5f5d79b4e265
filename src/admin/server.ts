// The admin endpoint: GET /healthz, /readyz, /metrics and /status, served by
// its own small HTTP server (harbor-sidecar) or mounted on another server's
// request handler (harbor-node's API). The endpoint is an aid, never a reason
// to stop serving: an address that cannot be had is a warning and the proxy
// runs on without it.
import { existsSync } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Address } from '../config/types.js';
import { formatAddress } from '../config/types.js';
import type { Logger } from '../log/index.js';
import { heldBy } from '../sockets/port-owner.js';
import { type ConnectionGuard, type ConnectionGuardOptions, guardConnections } from './connection-guard.js';
import type { createMetricsRegistry } from './metrics.js';
import type { MetricsSource, ReadinessReport } from './types.js';

export const DEFAULT_ADMIN_ADDRESS: Address = { kind: 'tcp', host: '127.0.0.1', port: 9701 };
export const ADMIN_PATHS = ['/healthz', '/readyz', '/metrics', '/status'] as const;

export interface AdminHandlerOptions {
  /** Reasons the process is not ready to take traffic; an empty list means ready. */
  readonly readiness: () => Promise<readonly string[]>;
  /** The /status document (a StatusReport); must be JSON-able. */
  readonly status: () => unknown;
  readonly metrics: MetricsSource;
  readonly logger: Logger;
  /** A readiness check that takes longer than this is answered 503. Default 5000 ms. */
  readonly readinessTimeoutMs?: number;
  /** Milliseconds since the epoch, for certificate expiry in /metrics. */
  readonly now?: () => number;
  /** Add process_* and nodejs_* metrics. Default true. */
  readonly processMetrics?: boolean;
}

/** Answers the admin paths; returns false (and leaves `res` alone) for any other path. */
export type AdminRequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function adminHandler(options: AdminHandlerOptions): AdminRequestHandler {
  // prom-client (about 12 MB resident) is loaded at the first scrape, not at start: a sidecar nobody scrapes
  // stays as small as the proxy itself.
  let registry: Promise<ReturnType<typeof createMetricsRegistry>> | undefined;
  const getRegistry = () =>
    (registry ??= import('./metrics.js').then((m) =>
      m.createMetricsRegistry({
        source: options.metrics,
        now: options.now,
        processMetrics: options.processMetrics,
      }),
    ));
  const { logger } = options;
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 5000;

  const readinessReasons = async (): Promise<readonly string[]> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<readonly string[]>((resolve) => {
      timer = setTimeout(resolve, readinessTimeoutMs, [
        `readiness check did not answer within ${readinessTimeoutMs} ms`,
      ]);
    });
    try {
      return await Promise.race([options.readiness(), timeout]);
    } catch (error) {
      return [`readiness check failed: ${(error as Error)?.message ?? String(error)}`];
    } finally {
      clearTimeout(timer);
    }
  };

  const readyz = async (req: IncomingMessage, res: ServerResponse, query: string) => {
    const reasons = await readinessReasons();
    const ready = reasons.length === 0;
    const wantsJson =
      /(^|&)format=json(&|$)/.test(query) || /application\/json/.test(req.headers.accept ?? '');
    if (wantsJson) {
      const report: ReadinessReport = { ready, reasons };
      send(res, ready ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
    } else {
      const text = ready ? 'ready\n' : `not ready\n${reasons.map((r) => `${r}\n`).join('')}`;
      send(res, ready ? 200 : 503, 'text/plain; charset=utf-8', text);
    }
  };

  const status = (res: ServerResponse) => {
    let body: string;
    try {
      body = `${JSON.stringify(options.status(), null, 2)}\n`;
    } catch (error) {
      logger.error({ err: error }, 'admin /status could not be built');
      send(res, 500, 'application/json', `${JSON.stringify({ error: (error as Error).message })}\n`);
      return;
    }
    send(res, 200, 'application/json', body);
  };

  const metrics = async (res: ServerResponse) => {
    const metricsRegistry = await getRegistry();
    const text = await metricsRegistry.metrics();
    send(res, 200, metricsRegistry.contentType, text);
  };

  const fail = (res: ServerResponse, path: string) => (error: unknown) => {
    logger.error({ err: error, path }, `admin ${path} failed`);
    if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
    else res.destroy();
  };

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = requestPath(url);
    const query = q === -1 ? '' : url.slice(q + 1);
    if (!(ADMIN_PATHS as readonly string[]).includes(path)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', `${req.method} not allowed on ${path}; use GET\n`);
      return true;
    }
    switch (path) {
      case '/healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        break;
      case '/readyz':
        readyz(req, res, query).catch(fail(res, path));
        break;
      case '/metrics':
        metrics(res).catch(fail(res, path));
        break;
      default:
        status(res);
    }
    return true;
  };
}

function send(res: ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

export interface AdminServerOptions extends AdminHandlerOptions {
  /** Where to listen: a TCP host:port or a unix socket path; 'off' disables the endpoint. */
  readonly address: Address | 'off';
}

export interface AdminServer {
  /** Listens; resolves in every case (an address that cannot be had is logged as a warning). */
  start(): Promise<void>;
  /** Closes idle and half-open connections at once, requests in flight within `deadlineMs` (default: now). */
  close(deadlineMs?: number): Promise<void>;
  /** Where it listens (the real port when 0 was asked), or undefined when it is off or could not listen. */
  address(): Address | undefined;
}

/**
 * A request's path as sent, without its query: never through `new URL`, which reads a target
 * such as `//host%0D%0A/x` as a protocol-relative URL and throws on its host (a 500).
 */
export function requestPath(url: string | undefined): string {
  const target = url ?? '/';
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/** The admin endpoint's and harbor-node API's connection limits (src/admin/connection-guard.ts). */
export const ADMIN_CONNECTIONS: ConnectionGuardOptions = {
  maxConnections: 64,
  firstByteMs: 5_000,
  headersTimeoutMs: 10_000,
};

export function createAdminServer(options: AdminServerOptions): AdminServer {
  return new HttpAdminServer(options);
}

class HttpAdminServer implements AdminServer {
  readonly #options: AdminServerOptions;
  readonly #logger: Logger;
  #server: Server | undefined;
  #guard: ConnectionGuard | undefined;
  #bound: Address | undefined;

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
  }

  async start(): Promise<void> {
    const { address } = this.#options;
    if (address === 'off') {
      this.#logger.info('admin endpoint off');
      return;
    }
    if (this.#server) return;
    const handle = adminHandler(this.#options);
    // Head timeouts are checked every second, not Node's default 30 s.
    const server = createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
      if (!handle(req, res)) {
        send(res, 404, 'text/plain; charset=utf-8', `not found; try ${ADMIN_PATHS.join(', ')}\n`);
      }
    });
    // A slow or idle client must not hold the endpoint (or shutdown) open, and idle ones
    // make room for a probe. Probes and a scraper need a handful; a runaway client must
    // not take file descriptors from the proxy.
    server.requestTimeout = 30_000;
    const guard = guardConnections(server, ADMIN_CONNECTIONS);
    let error = await listen(server, address);
    if (error?.code === 'EADDRINUSE' && address.kind === 'unix' && (await removeStaleSocket(address.path))) {
      error = await listen(server, address);
    }
    const where = formatAddress(address);
    if (error) {
      const why =
        error.code === 'EADDRINUSE'
          ? `address in use${address.kind === 'tcp' ? heldBy(address.port) : ''}`
          : // libuv reports a socket path whose folder does not exist as EACCES.
            error.code === 'EACCES' && address.kind === 'unix' && !existsSync(dirname(address.path))
            ? `its folder ${dirname(address.path)} does not exist`
            : (error.code ?? error.message);
      this.#logger.warn(
        { code: 'W_ADMIN_UNAVAILABLE', admin: where, reason: why },
        `admin endpoint ${where} not started (${why}); serving goes on without /healthz, /readyz, /metrics, /status`,
      );
      server.close();
      return;
    }
    // Errors while listening are reported once above; later ones (rare) are logged here.
    server.on('error', (error) => this.#logger.warn({ err: error }, 'admin endpoint error'));
    this.#server = server;
    this.#guard = guard;
    this.#bound = boundAddress(server, address);
    this.#logger.info(
      { admin: formatAddress(this.#bound) },
      `admin endpoint on ${formatAddress(this.#bound)}`,
    );
  }

  /** Closes idle and half-open connections at once, requests in flight within `deadlineMs` (default: now). */
  async close(deadlineMs = 0): Promise<void> {
    const server = this.#server;
    const guard = this.#guard;
    if (!server || !guard) return;
    this.#server = undefined;
    this.#guard = undefined;
    this.#bound = undefined;
    await guard.shutdown(deadlineMs);
  }

  address(): Address | undefined {
    return this.#bound;
  }
}

function listen(server: Server, address: Address): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const onError = (error: NodeJS.ErrnoException) => resolve(error);
    server.once('error', onError);
    const onListening = () => {
      server.off('error', onError);
      resolve(undefined);
    };
    if (address.kind === 'unix') server.listen(address.path, onListening);
    else server.listen({ host: address.host, port: address.port }, onListening);
  });
}

function boundAddress(server: Server, asked: Address): Address {
  const info = server.address();
  if (asked.kind === 'unix' || info === null || typeof info === 'string') return asked;
  return { kind: 'tcp', host: asked.host, port: info.port };
}

/**
 * A socket file left by a process that died holds the path although nobody
 * listens: remove it when a connect is refused. A live listener, or a path
 * that is not a socket, is left alone.
 */
async function removeStaleSocket(path: string): Promise<boolean> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat?.isSocket()) return false;
  const alive = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (alive) return false;
  await unlink(path).catch(() => undefined);
  return true;
}
