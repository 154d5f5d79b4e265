// A keep-alive pool of plain connections to the backend (TCP or a unix
// socket). Each backend connection routes its events to whoever holds it (an
// HTTP/1 client connection or an HTTP/2 stream); its listeners are set once
// when it is dialled, so lending it out costs no closure. The pool also knows
// whether the backend has ever answered (503 before, 502 after) and keeps
// backend failures to one log line per burst.
import * as net from 'node:net';
import { type Address, formatAddress } from '../config/types.js';
import type { Logger } from '../log/index.js';
import type { InactivitySweep, Watch } from '../sockets/inactivity.js';
import { LiveSet, SLOT } from '../sockets/live-set.js';
import type { ServiceStats } from '../stats/index.js';

/**
 * Every backend socket reads into this one buffer (net.connect's `onread`): no Buffer and no
 * stream bookkeeping per read. A read's bytes hold only until its onBackendData returns (the
 * next read overwrites them): whoever relays them writes them at once or copies them
 * (writeBorrowed), and the response reader copies what it keeps.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Writes bytes of a backend read to a client socket. A TLS socket encrypts what it is given at
 * once, unless earlier writes are still queued (or it is corked): the Writable then keeps the
 * Buffer itself, and gets a copy.
 */
export function writeBorrowed(socket: net.Socket, bytes: Buffer): boolean {
  return socket.write(socket.writableLength > 0 || socket.writableCorked > 0 ? Buffer.from(bytes) : bytes);
}

/** Whoever holds a backend connection gets its events. */
export interface BackendOwner {
  onBackendConnect(conn: BackendConn): void;
  onBackendData(conn: BackendConn, chunk: Buffer): void;
  /** The backend closed or failed; `error` is null for a clean end. */
  onBackendGone(conn: BackendConn, error: Error | null): void;
  onBackendDrain(conn: BackendConn): void;
  onBackendTimeout(conn: BackendConn): void;
}

export class BackendConn {
  [SLOT] = -1;
  readonly socket: net.Socket;
  readonly #pool: BackendPool;
  /** Its inactivity timeout: the backend timeout when lent; an idle pooled connection is closed when it fires. */
  readonly #watch: Watch;
  owner: BackendOwner | null;
  connected = false;
  /** True once the connection has carried a whole exchange: a failure before any byte may be a stale keep-alive. */
  reused = false;
  /** When it went back to the pool (0 while lent). */
  idleSince = 0;
  #gone = false;

  constructor(pool: BackendPool, options: net.NetConnectOpts, owner: BackendOwner, timeoutMs: number) {
    this.#pool = pool;
    this.owner = owner;
    const socket = net.connect({ ...options, onread: { buffer: READ_BUFFER, callback: this.#onRead } });
    this.socket = socket;
    socket.on('connect', this.#onConnect);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    // Set once: each read and write starts it again, so a lent connection gets the whole
    // timeout and an idle pooled one is closed when it runs out.
    this.#watch = pool.sweep.watch(socket, this.#onTimeout);
    this.#watch.set(timeoutMs);
  }

  get gone(): boolean {
    return this.#gone;
  }

  #onConnect = (): void => {
    this.connected = true;
    this.#pool.markAnswered();
    this.owner?.onBackendConnect(this);
  };

  /** A read into READ_BUFFER; always true: reading goes on unless the owner paused the socket. */
  #onRead = (bytes: number): boolean => {
    const owner = this.owner;
    if (owner === null) {
      // An idle backend connection must not talk: drop it.
      this.socket.destroy();
      return true;
    }
    owner.onBackendData(this, READ_BUFFER.subarray(0, bytes));
    return true;
  };

  #onEnd = (): void => {
    if (this.owner === null && this.idleSince > 0) this.#pool.closedWhileIdle(this);
    this.#finish(null);
    this.socket.destroy();
  };

  #onError = (error: Error): void => {
    this.#finish(error);
  };

  #onClose = (): void => {
    this.#finish(null);
  };

  #onDrain = (): void => {
    this.owner?.onBackendDrain(this);
  };

  #onTimeout = (): void => {
    const owner = this.owner;
    if (owner === null) this.socket.destroy();
    else owner.onBackendTimeout(this);
  };

  #finish(error: Error | null): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#pool.sweep.unwatch(this.#watch);
    this.#pool.forget(this);
    const owner = this.owner;
    this.owner = null;
    owner?.onBackendGone(this, error);
  }
}

export interface BackendPoolOptions {
  readonly address: Address;
  readonly service: string;
  readonly logger: Logger;
  readonly stats: ServiceStats;
  /** Keeps each connection's inactivity timeout. */
  readonly sweep: InactivitySweep;
  /** Inactivity timeout of each backend connection: the backend timeout when lent, the idle timeout when pooled. */
  readonly timeoutMs: number;
  /** Most idle connections kept. */
  readonly maxIdle?: number;
  /** Clock for the once-per-burst log; Date.now by default. */
  readonly now?: () => number;
}

/** A quiet period after which a new backend failure is logged again. */
const BURST_MS = 10_000;
/** A pooled connection closed this soon after its response means the backend does not keep connections. */
const QUICK_CLOSE_MS = 1000;
/** How long pooling stays off before it is tried again (the backend may have been restarted or reconfigured). */
const RELEARN_MS = 60_000;
/**
 * The longest a pooled connection may have been idle and still carry a request whose body goes
 * out as it arrives: shorter than any backend's keep-alive timeout in common use (gunicorn's is
 * 2 s), so such a request does not meet a backend closing the connection as it is sent.
 */
const BODY_REUSE_IDLE_MS = 1000;

export class BackendPool {
  readonly #options: BackendPoolOptions;
  readonly #idle: BackendConn[] = [];
  /** A backend that closes after each response makes one per request. */
  readonly #all = new LiveSet<BackendConn>();
  readonly #connectOptions: net.NetConnectOpts;
  readonly #maxIdle: number;
  readonly #now: () => number;
  #answered = false;
  #lastLogAt = -Infinity;
  #suppressed = 0;
  #failing = false;
  #keepAlive = true;
  #keepAliveOffSince = 0;
  /** A connection has carried a second exchange: the backend keeps connections (see acquire). */
  #keptOne = false;

  constructor(options: BackendPoolOptions) {
    this.#options = options;
    this.#maxIdle = options.maxIdle ?? 256;
    this.#now = options.now ?? Date.now;
    const a = options.address;
    this.#connectOptions =
      a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port, noDelay: true, keepAlive: true };
  }

  get sweep(): InactivitySweep {
    return this.#options.sweep;
  }

  /** True once the backend has accepted a connection since start. */
  get answered(): boolean {
    return this.#answered;
  }

  /**
   * Lends a connection: an idle one (connected at once) or a new one (`onBackendConnect`
   * follows). `sendsBody`: the request's body goes out as it arrives and cannot be sent twice,
   * so a pooled connection the backend may be closing (the retry-once rule cannot help) is not
   * lent for it: only a recently used one of a backend seen to keep its connections.
   */
  acquire(owner: BackendOwner, sendsBody: boolean): BackendConn {
    const idle = this.#idle;
    if (sendsBody && !this.#keptOne) return this.dial(owner);
    const now = sendsBody ? this.#now() : 0;
    while (idle.length > 0) {
      const conn = idle.pop() as BackendConn;
      if (conn.gone || conn.socket.destroyed) continue;
      if (sendsBody && now - conn.idleSince > BODY_REUSE_IDLE_MS) {
        // The most recently used left is too old; those under it are older still.
        idle.push(conn);
        break;
      }
      conn.owner = owner;
      conn.idleSince = 0;
      return conn;
    }
    return this.dial(owner);
  }

  /** A new connection, never a pooled one (a retry after a stale keep-alive). */
  dial(owner: BackendOwner): BackendConn {
    const conn = new BackendConn(this, this.#connectOptions, owner, this.#options.timeoutMs);
    this.#all.add(conn);
    return conn;
  }

  /** Takes a connection back after a complete exchange, or closes it when the pool is full. */
  release(conn: BackendConn): void {
    conn.owner = null;
    if (conn.reused) this.#keptOne = true;
    conn.reused = true;
    const socket = conn.socket;
    if (!this.#keepAlive && this.#now() - this.#keepAliveOffSince > RELEARN_MS) this.#keepAlive = true;
    if (
      !this.#keepAlive ||
      conn.gone ||
      socket.destroyed ||
      this.#idle.length >= this.#maxIdle ||
      socket.isPaused()
    ) {
      socket.destroy();
      return;
    }
    conn.idleSince = this.#now();
    this.#idle.push(conn);
  }

  /**
   * The backend closed a pooled connection. Right after its response, that is
   * a backend that does not keep connections (uWSGI's --http-socket, say)
   * while saying nothing: stop pooling for a while, so that no request is sent
   * down a connection the backend is closing (a request with a body could not
   * be retried).
   */
  closedWhileIdle(conn: BackendConn): void {
    if (this.#now() - conn.idleSince > QUICK_CLOSE_MS || !this.#keepAlive) return;
    this.#keepAlive = false;
    this.#keepAliveOffSince = this.#now();
    this.#options.logger.debug(
      { service: this.#options.service, backend: formatAddress(this.#options.address) },
      'backend closes connections after each response; not pooling them',
    );
  }

  markAnswered(): void {
    if (this.#failing) {
      this.#failing = false;
      this.#options.logger.info(
        {
          service: this.#options.service,
          backend: formatAddress(this.#options.address),
          failures: this.#suppressed,
        },
        'backend answers again',
      );
      this.#suppressed = 0;
    } else if (!this.#answered) {
      this.#options.logger.debug(
        { service: this.#options.service, backend: formatAddress(this.#options.address) },
        'backend answered for the first time',
      );
    }
    this.#answered = true;
  }

  /**
   * Counts a failed exchange and logs the first of a burst, with what the client got: `status`,
   * the proxy's own answer, or 0 when a response under way was cut.
   */
  failure(reason: string, error: Error | null, status: number): void {
    this.#options.stats.backendErrors++;
    const now = this.#now();
    if (now - this.#lastLogAt < BURST_MS) {
      this.#suppressed++;
      return;
    }
    this.#lastLogAt = now;
    this.#failing = true;
    const code = (error as { code?: string } | null)?.code;
    const fields = {
      service: this.#options.service,
      backend: formatAddress(this.#options.address),
      reason,
      ...(code === undefined ? {} : { code }),
      ...(this.#suppressed > 0 ? { failuresSinceLastLine: this.#suppressed } : {}),
    };
    this.#suppressed = 0;
    const outcome = status === 0 ? 'the response under way is cut' : `answering ${status}`;
    if (this.#answered) this.#options.logger.warn(fields, `backend failed; ${outcome}`);
    else this.#options.logger.info(fields, `backend not answering yet; ${outcome}`);
  }

  forget(conn: BackendConn): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Closes the idle connections (draining). */
  closeIdle(): void {
    for (const conn of this.#idle.splice(0)) conn.socket.destroy();
  }

  /** Closes every connection. */
  destroy(): void {
    this.closeIdle();
    for (const conn of this.#all.toArray()) {
      this.#all.delete(conn);
      conn.socket.destroy();
    }
  }

  /** False while the pool has learnt that the backend closes connections after each response. */
  get pooling(): boolean {
    return this.#keepAlive;
  }

  get size(): { idle: number; total: number } {
    return { idle: this.#idle.length, total: this.#all.size };
  }
}
