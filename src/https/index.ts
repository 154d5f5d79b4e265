// The HTTPS container proxy: terminates TLS on a service's int_port (IPv4 and
// IPv6) with the app's certificate and forwards HTTP/1.1 and HTTP/2 requests
// to the framework's plain HTTP server over a keep-alive pool. Owns the
// listeners (listeners.ts opens them), the TLS settings, the header rules
// (docs/headers.md), the certificate swap without dropping connections, and
// draining on shutdown.
// A connection's first bytes (PROXY header, TLS or plain HTTP) are intake.ts's.
// Certificate loading and watching live in src/certs; wiring in src/cli.
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { SIDECAR_DEFAULTS } from '../config/defaults.js';
import type { Address, HarborService } from '../config/types.js';
import type { Logger } from '../log/index.js';
import { InactivitySweep } from '../sockets/inactivity.js';
import { LiveSet, SLOT } from '../sockets/live-set.js';
import { countHandshakeError, type ServiceStats } from '../stats/index.js';
import type { AccessLog } from './access-log.js';
import {
  type ClientConnection,
  DEFAULT_LIMITS,
  type Limits,
  type ProxyCore,
  reportSocketError,
} from './core.js';
import { formatSubject, peerOf } from './forwarding.js';
import { GrpcWebOrigins } from './grpc-web.js';
import { H2cBackend } from './h2c-backend.js';
import { Http1Connection } from './http1.js';
import { Http2Front } from './http2.js';
import { ConnectionIntake } from './intake.js';
import { addressesOf, type ListenAddress, openListeners } from './listeners.js';
import { BackendPool } from './pool.js';
import { SessionCache } from './session-cache.js';
import { ALPN_PROTOCOLS } from './tls.js';

export { DEFAULT_LIMITS, type Limits } from './core.js';
export type { ListenAddress } from './listeners.js';
export {
  ALPN_PROTOCOLS,
  CIPHERS,
  type PemPair,
  SECURE_CONTEXT_OPTIONS,
  serverTlsOptions,
} from './tls.js';

export interface HttpsProxyOptions {
  readonly service: HarborService;
  /** Port (0 picks a free one, shared by every host) and hosts; hosts default to 0.0.0.0 and ::. */
  readonly listen: { readonly port: number; readonly hosts?: readonly string[] };
  readonly backend: Address;
  /** The pair and TLS settings: from serverTlsOptions (SECURE_CONTEXT_OPTIONS and the PEMs), with `ca` when clientAuth is on. */
  readonly tls: tls.SecureContextOptions;
  /** Refuse clients without a certificate that verifies against the context's CA; pass the subject on. */
  readonly clientAuth?: boolean;
  readonly stats: ServiceStats;
  readonly logger: Logger;
  readonly limits?: Partial<Limits>;
  /** How long drain() waits for requests in flight when not given a deadline. */
  readonly drainTimeoutMs?: number;
  /** Addresses allowed to send a PROXY header (v1 or v2) naming the real client; anyone else's is refused. */
  readonly trustProxy?: net.BlockList | undefined;
  /** The Strict-Transport-Security value added to answers that lack one (--hsts). */
  readonly hsts?: string | undefined;
  /** Keep a client's well-formed X-Request-Id instead of making a new one (--trust-request-id). */
  readonly trustRequestId?: boolean | undefined;
  /** One line per request when given (--access-log). */
  readonly accessLog?: AccessLog | undefined;
  /** The OCSP answer to staple to a handshake that asks, when there is one (never waited for). */
  readonly ocspResponse?: (() => Buffer | undefined) | undefined;
  /**
   * How HTTP/2 clients' streams reach the backend: as HTTP/1.1 requests (the default), or as
   * streams of an HTTP/2 session in clear text (h2c), which gRPC servers need. HTTP/1.1
   * clients are forwarded as HTTP/1.1 either way.
   */
  readonly backendProtocol?: BackendProtocol | undefined;
  /**
   * Origins of pages on other sites allowed to make gRPC-Web calls (with an h2c backend): their
   * CORS preflights are answered by the proxy, and the answers marked for them.
   */
  readonly grpcWebOrigins?: readonly string[] | undefined;
}

export type BackendProtocol = 'http1' | 'h2c';

export type ProxyState = 'created' | 'starting' | 'listening' | 'draining' | 'stopped';

export interface HttpsProxy {
  readonly state: ProxyState;
  /** Listens on every host; rejects with E_PORT_IN_USE or E_LISTEN. */
  start(): Promise<void>;
  /** New handshakes get this pair (Node's own tls.Server.setSecureContext); open connections keep theirs. */
  setTls(options: tls.SecureContextOptions): void;
  /**
   * Turns client-certificate authentication on or off for new handshakes (a
   * CA bundle appeared or went away). Give the matching pair first (setTls):
   * with it on, its options must hold the CA.
   */
  setClientAuth(on: boolean): void;
  /** Stops accepting, closes idle connections, waits up to `deadlineMs` for the rest, then closes them. */
  drain(deadlineMs?: number): Promise<void>;
  /** Closes everything now. */
  close(): Promise<void>;
  address(): ListenAddress[];
  /** Open client connections (HTTP/1 connections and HTTP/2 sessions). */
  readonly openConnections: number;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = SIDECAR_DEFAULTS.drainTimeoutMs;

class HarborHttpsProxy implements HttpsProxy {
  readonly #options: HttpsProxyOptions;
  readonly #core: ProxyCore;
  readonly #tls: tls.Server;
  #h2: Http2Front | null = null;
  /** Session-ticket keys shared by every pair this proxy serves: a ticket issued before a swap resumes after it. */
  readonly #ticketKeys = randomBytes(48);
  /** TLS 1.2 sessions of clients that take no tickets, resumed by id (the same 300 s as tickets). */
  readonly #sessions: SessionCache;
  readonly #listeners: net.Server[] = [];
  /** Every accepted connection until it closes. */
  readonly #raw = new LiveSet<Accepted>();
  /** A connection's first bytes: a PROXY header, then TLS or plain HTTP. */
  readonly #intake: ConnectionIntake;
  #state: ProxyState = 'created';
  #clientAuth: boolean;
  #drained: Promise<void> | null = null;
  #onAllClosed: (() => void) | null = null;

  constructor(options: HttpsProxyOptions) {
    this.#options = options;
    const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
    const service = options.service;
    const externalPort = service.port ?? service.intPort;
    this.#clientAuth = options.clientAuth === true;
    const sweep = new InactivitySweep(limits.headerTimeoutMs, limits.idleTimeoutMs, limits.backendTimeoutMs);
    const pool = new BackendPool({
      sweep,
      address: options.backend,
      service: service.name,
      logger: options.logger,
      stats: options.stats,
      timeoutMs: limits.backendTimeoutMs,
    });
    this.#core = {
      service: service.name,
      pool,
      settings: {
        port: String(externalPort),
        defaultHost: `localhost:${externalPort}`,
        hsts: options.hsts,
        trustRequestId: options.trustRequestId,
      },
      stats: options.stats,
      logger: options.logger,
      limits,
      connections: new LiveSet<ClientConnection>(),
      sweep,
      draining: false,
      accessLog: options.accessLog,
      h2c:
        options.backendProtocol === 'h2c'
          ? new H2cBackend(options.backend, () => pool.markAnswered())
          : undefined,
      grpcWebOrigins:
        options.backendProtocol === 'h2c' && (options.grpcWebOrigins?.length ?? 0) > 0
          ? new GrpcWebOrigins(options.grpcWebOrigins ?? [])
          : undefined,
    };
    this.#sessions = new SessionCache({ lifetimeSeconds: options.tls.sessionTimeout ?? 300 });
    this.#tls = tls.createServer({
      ...options.tls,
      ticketKeys: this.#ticketKeys,
      ALPNProtocols: ALPN_PROTOCOLS,
      requestCert: options.clientAuth === true,
      rejectUnauthorized: true,
      handshakeTimeout: limits.headerTimeoutMs,
    });
    this.#sessions.serve(this.#tls);
    this.#tls.on('secureConnection', this.#onSecure);
    const ocsp = options.ocspResponse;
    if (ocsp !== undefined) {
      // Only clients that ask (status_request) cost this call; the answer is at hand or absent.
      this.#tls.on(
        'OCSPRequest',
        (_cert: Buffer, _issuer: Buffer, done: (e: Error | null, r?: Buffer | null) => void) =>
          done(null, ocsp() ?? null),
      );
    }
    this.#tls.on('tlsClientError', this.#onTlsError);
    this.#intake = new ConnectionIntake({
      core: this.#core,
      tls: this.#tls,
      trustProxy: options.trustProxy,
      externalPort,
    });
  }

  get state(): ProxyState {
    return this.#state;
  }

  get openConnections(): number {
    return this.#core.connections.size;
  }

  setClientAuth(on: boolean): void {
    this.#clientAuth = on;
    // tls.Server reads this field (set from its requestCert option) at each new connection.
    (this.#tls as unknown as { requestCert: boolean }).requestCert = on;
  }

  setTls(options: tls.SecureContextOptions): void {
    // Node's public API builds the context from these options: a cost at each swap, none per
    // handshake. The server keeps the ticket keys it was created with for every new context.
    this.#tls.setSecureContext(options);
  }

  async start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`start() called in state ${this.#state}`);
    this.#state = 'starting';
    try {
      this.#listeners.push(
        ...(await openListeners({
          hosts: this.#options.listen.hosts,
          port: this.#options.listen.port,
          service: this.#core.service,
          logger: this.#options.logger,
          onConnection: this.#onConnection,
        })),
      );
    } catch (error) {
      this.#state = 'stopped';
      throw error;
    }
    this.#state = 'listening';
    this.#options.logger.info(
      { service: this.#core.service, listen: this.address(), backend: this.#options.backend },
      'https proxy listening',
    );
  }

  address(): ListenAddress[] {
    return addressesOf(this.#listeners);
  }

  #onConnection = (socket: net.Socket): void => {
    const core = this.#core;
    if (this.#state !== 'listening' || this.#raw.size >= core.limits.maxConnections) {
      socket.destroy();
      return;
    }
    const stats = core.stats;
    stats.connectionsOpen++;
    stats.connectionsTotal++;
    const accepted = new Accepted(socket);
    this.#raw.add(accepted);
    socket.on('error', (error: Error) => reportSocketError(core, error, 'accept'));
    socket.once('close', () => {
      stats.connectionsOpen--;
      this.#raw.delete(accepted);
      this.#intake.forget(socket);
      if (this.#raw.size === 0) this.#onAllClosed?.();
    });
    socket.setTimeout(core.limits.headerTimeoutMs, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      accepted.silent = false;
      this.#intake.read(socket, chunk);
    });
  };

  #onSecure = (socket: tls.TLSSocket): void => {
    if (this.#core.draining) {
      socket.destroy();
      return;
    }
    this.#sessions.keep(socket);
    // Only a connection that was asked for a certificate (and so verified it) passes a subject on.
    const subject =
      this.#clientAuth && socket.authorized
        ? formatSubject(socket.getPeerX509Certificate()?.subject)
        : undefined;
    // The client a trusted PROXY header named (harbor-node in front), else the peer itself.
    const peer = peerOf(
      this.#intake.takeClient(socket) ?? socket.remoteAddress,
      subject,
      // Read once per connection, and only for the access log: it outlives the socket's end.
      this.#core.accessLog === undefined ? '' : (socket.getProtocol() ?? ''),
    );
    try {
      if (socket.alpnProtocol === 'h2') {
        this.#h2 ??= new Http2Front(this.#core);
        this.#h2.accept(socket, peer);
      } else new Http1Connection(this.#core, socket, peer);
    } catch (error) {
      // A connection that cannot be set up (node:http2 refusing a session's settings, say) is
      // refused alone: an exception here would otherwise end the process and every connection.
      this.#core.logger.error(
        { service: this.#core.service, error: (error as Error).message },
        'connection setup failed; that connection is closed',
      );
      socket.destroy();
    }
  };

  #onTlsError = (error: Error, socket: tls.TLSSocket): void => {
    const code = (error as { code?: string }).code;
    const reason = socket.authorizationError
      ? String(socket.authorizationError)
      : code === 'ECONNRESET'
        ? 'reset'
        : code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
          ? 'timeout'
          : (code ?? 'unknown');
    countHandshakeError(this.#core.stats, reason);
    const logger = this.#core.logger;
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        { service: this.#core.service, reason, peer: socket.remoteAddress },
        'TLS handshake failed',
      );
    }
    socket.destroy();
  };

  drain(deadlineMs = this.#options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS): Promise<void> {
    if (this.#drained !== null) return this.#drained;
    this.#state = 'draining';
    const core = this.#core;
    core.draining = true;
    for (const server of this.#listeners) server.close();
    core.pool.closeIdle();
    core.h2c?.close();
    for (const accepted of this.#raw.toArray()) if (accepted.silent) accepted.socket.destroy();
    for (const conn of core.connections.toArray()) conn.drain();
    this.#drained = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.#onAllClosed = null;
        this.#destroyAll();
        this.#state = 'stopped';
        resolve();
      };
      if (this.#raw.size === 0) return done();
      this.#onAllClosed = done;
      timer = setTimeout(() => {
        this.#options.logger.warn(
          { service: core.service, open: this.#raw.size },
          'drain deadline reached; closing the connections still open',
        );
        done();
      }, deadlineMs);
    });
    return this.#drained;
  }

  async close(): Promise<void> {
    this.#core.draining = true;
    for (const server of this.#listeners) server.close();
    this.#destroyAll();
    this.#state = 'stopped';
    this.#drained ??= Promise.resolve();
  }

  #destroyAll(): void {
    for (const conn of this.#core.connections.toArray()) conn.destroy();
    for (const accepted of this.#raw.toArray()) accepted.socket.destroy();
    this.#core.pool.destroy();
    this.#core.h2c?.destroy();
  }
}

/** An accepted connection, from accept to close. */
class Accepted {
  [SLOT] = -1;
  readonly socket: net.Socket;
  /** No byte received yet: idle, so draining closes it at once. */
  silent = true;

  constructor(socket: net.Socket) {
    this.socket = socket;
  }
}

export function createHttpsProxy(options: HttpsProxyOptions): HttpsProxy {
  return new HarborHttpsProxy(options);
}
