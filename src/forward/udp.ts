// The UDP relay. One listening socket; per client address one upstream socket
// connected to the target, so replies come back on it and go to the right
// client, and the kernel filters strangers. Sessions end after an idle
// timeout; the table is bounded.
//
// Hot path (per datagram): two Map lookups keyed by the address string and
// port number dgram already gives us (no key string built), one pick(), one
// send on a connected socket. Idle time is measured with a coarse clock the
// sweep timer advances, so no clock is read per datagram. The only allocation
// is the Buffer and rinfo dgram itself hands to 'message'.
import * as dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { FORWARD_DEFAULTS } from '../config/defaults.js';
import { isRoutineSocketError, type Logger } from '../log/index.js';
import { SweepClock } from '../sockets/sweep-clock.js';
import type { ServiceStats } from '../stats/index.js';
import { isLocalResourceError, ThrottledWarning, warnLocalFailure } from './failures.js';
import { listenError } from './tcp.js';
import {
  createForwardStats,
  type Forwarder,
  type ForwarderOptions,
  type ForwardStats,
  type Picker,
  type Target,
} from './types.js';

export const DEFAULT_UDP_IDLE_TIMEOUT_MS = FORWARD_DEFAULTS.udpIdleTimeoutMs;
export const DEFAULT_UDP_MAX_SESSIONS = FORWARD_DEFAULTS.udpMaxSessions;
/** Sessions one client address may hold (issue 9, item 6): past this, its own least recent makes room. */
export const DEFAULT_UDP_MAX_SESSIONS_PER_SOURCE = FORWARD_DEFAULTS.udpSessionsPerSource;
/** Datagrams held for a session while its upstream socket connects (one event-loop turn for an IP). */
const MAX_PENDING = 64;
/** Bigger kernel buffers ride out bursts; best effort (the kernel caps them at net.core.*mem_max). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

class Session {
  readonly address: string;
  readonly port: number;
  upstream: dgram.Socket | undefined;
  target: Target | undefined;
  connected = false;
  pending: Buffer[] = [];
  lastSeen: number;
  readonly onReply: (message: Buffer) => void;
  readonly onError: (error: NodeJS.ErrnoException) => void;
  readonly onConnect: (error?: Error) => void;

  constructor(forwarder: UdpForwarder, address: string, port: number, now: number) {
    this.address = address;
    this.port = port;
    this.lastSeen = now;
    // Built once per session, not per datagram.
    this.onReply = (message) => forwarder.reply(this, message);
    this.onError = (error) => forwarder.upstreamError(this, error);
    this.onConnect = (error) => forwarder.upstreamConnected(this, error);
  }
}

export class UdpForwarder implements Forwarder {
  readonly stats: ForwardStats = createForwardStats();
  readonly #options: ForwarderOptions;
  readonly #picker: Picker;
  readonly #logger: Logger;
  readonly #localFailures: ThrottledWarning;
  readonly #targetErrors: ThrottledWarning;
  readonly #serviceStats: ServiceStats | undefined;
  readonly #idleMs: number;
  readonly #maxSessions: number;
  readonly #maxPerSource: number;
  readonly #sweepMs: number;
  /** client address -> client port -> session */
  readonly #sessions = new Map<string, Map<number, Session>>();
  #sessionCount = 0;
  #socket: dgram.Socket | undefined;
  #port: number | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  /** The sweep's clock: time the process did not run is no client's quiet. */
  readonly #clock: SweepClock;
  /** Coarse time on #clock (ms), advanced by the sweeper and when a session opens. */
  #now: number;
  #lastFullSweep = 0;
  #warnedFull = false;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.#picker = options.picker;
    this.#logger = options.logger;
    this.#localFailures = new ThrottledWarning(options.logger);
    this.#targetErrors = new ThrottledWarning(options.logger);
    this.#serviceStats = options.serviceStats;
    this.#idleMs = options.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    this.#maxSessions = options.udpMaxSessions ?? DEFAULT_UDP_MAX_SESSIONS;
    this.#maxPerSource = Math.min(
      this.#maxSessions,
      options.udpMaxSessionsPerSource ?? DEFAULT_UDP_MAX_SESSIONS_PER_SOURCE,
    );
    this.#sweepMs = Math.max(20, Math.min(1000, Math.floor(this.#idleMs / 4)));
    const started = Date.now();
    this.#clock = new SweepClock(2 * this.#sweepMs, started);
    this.#now = this.#clock.at(started);
  }

  get port(): number | undefined {
    return this.#port;
  }

  get sessionCount(): number {
    return this.#sessionCount;
  }

  async start(): Promise<void> {
    const { host, port } = this.#options.listen;
    const type = host === undefined || isIPv6(host) ? 'udp6' : 'udp4';
    try {
      await this.#bind(type, host ?? '::', port);
    } catch (error) {
      // A machine without IPv6 listens on IPv4 only.
      const code = (error as NodeJS.ErrnoException).code;
      if (host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw error;
      await this.#bind('udp4', '0.0.0.0', port);
    }
    this.#sweeper = setInterval(this.#sweep, this.#sweepMs);
    this.#sweeper.unref();
  }

  #bind(type: 'udp4' | 'udp6', address: string, port: number): Promise<void> {
    const socket = dgram.createSocket({
      type,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
      lookup: literalLookup,
    });
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        socket.close();
        reject(listenError(error, this.#options.name, 'udp', this.#options.listen.host, port));
      };
      socket.once('error', onError);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off('error', onError);
        socket.on('error', this.#onListenerError);
        socket.on('message', this.#onMessage);
        this.#socket = socket;
        this.#port = socket.address().port;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const byPort of this.#sessions.values()) {
      for (const session of byPort.values()) this.#closeUpstream(session);
    }
    this.stats.sessionsOpen -= this.#sessionCount;
    this.#sessions.clear();
    this.#sessionCount = 0;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  readonly #onMessage = (message: Buffer, rinfo: dgram.RemoteInfo): void => {
    const stats = this.stats;
    stats.datagramsIn++;
    stats.bytesIn += message.length;
    // The admin endpoint's counters for the service (/metrics), when the owner passes them.
    if (this.#serviceStats) this.#serviceStats.bytesIn += message.length;
    const byPort = this.#sessions.get(rinfo.address);
    let session = byPort?.get(rinfo.port);
    if (session === undefined) {
      session = this.#openSession(rinfo.address, rinfo.port, byPort);
      if (session === undefined) {
        stats.datagramsDropped++;
        return;
      }
    }
    session.lastSeen = this.#now;
    const target = this.#picker.pick();
    if (target === undefined) {
      stats.datagramsDropped++;
      return;
    }
    if (target !== session.target) this.#connect(session, target);
    if (session.connected) {
      session.upstream!.send(message);
    } else if (session.pending.length < MAX_PENDING) {
      session.pending.push(message);
    } else {
      stats.datagramsDropped++;
    }
  };

  #openSession(address: string, port: number, byPort: Map<number, Session> | undefined): Session | undefined {
    if (byPort !== undefined && byPort.size >= this.#maxPerSource) this.#evictOldest(byPort);
    if (this.#sessionCount >= this.#maxSessions) {
      // Expired sessions may not have been swept yet; sweep now, but at most once per sweep period.
      const now = Date.now();
      if (now - this.#lastFullSweep >= this.#sweepMs) {
        this.#lastFullSweep = now;
        this.#sweep();
      }
      if (this.#sessionCount >= this.#maxSessions) {
        if (!this.#warnedFull) {
          this.#warnedFull = true;
          this.#logger.warn(
            { service: this.#options.name, sessions: this.#sessionCount },
            'udp session table full; datagrams from new clients are dropped until sessions expire',
          );
        }
        return undefined;
      }
    }
    this.#now = this.#clock.at(Date.now());
    const session = new Session(this, address, port, this.#now);
    let map = byPort;
    if (map === undefined) {
      map = new Map();
      this.#sessions.set(address, map);
    }
    map.set(port, session);
    this.#sessionCount++;
    this.stats.sessionsOpen++;
    this.stats.sessionsTotal++;
    return session;
  }

  /** Closes the least recently seen session of one client address (it is at its share). */
  #evictOldest(byPort: Map<number, Session>): void {
    let oldest: Session | undefined;
    for (const session of byPort.values()) {
      if (oldest === undefined || session.lastSeen < oldest.lastSeen) oldest = session;
    }
    if (oldest === undefined) return;
    this.#closeUpstream(oldest);
    byPort.delete(oldest.port);
    this.#sessionCount--;
    this.stats.sessionsOpen--;
    this.stats.sessionsEvicted++;
  }

  #connect(session: Session, target: Target): void {
    this.#closeUpstream(session);
    session.target = target;
    const upstream = dgram.createSocket(isIPv6(target.host) ? 'udp6' : 'udp4');
    session.upstream = upstream;
    upstream.on('message', session.onReply);
    upstream.on('error', session.onError);
    upstream.connect(target.port, target.host, session.onConnect);
  }

  /**
   * @internal called by a session's upstream socket once its connect ends. A connect
   * can fail (a host name that does not resolve, an address the kernel refuses such as
   * 255.255.255.255): then the session has no upstream and its datagrams are dropped,
   * never sent on an unconnected socket (issue 9, item 1: that threw and ended the node).
   */
  upstreamConnected(session: Session, error: Error | undefined): void {
    if (error !== undefined) {
      const dropped = session.pending.length;
      this.stats.datagramsDropped += dropped;
      this.upstreamError(session, error as NodeJS.ErrnoException);
      return;
    }
    session.connected = true;
    const upstream = session.upstream!;
    const pending = session.pending;
    for (let i = 0; i < pending.length; i++) upstream.send(pending[i]!);
    pending.length = 0;
  }

  /** @internal a datagram from the target: back to the session's client through the listening socket. */
  reply(session: Session, message: Buffer): void {
    const socket = this.#socket;
    if (socket === undefined) return;
    session.lastSeen = this.#now;
    this.stats.datagramsOut++;
    this.stats.bytesOut += message.length;
    if (this.#serviceStats) this.#serviceStats.bytesOut += message.length;
    socket.send(message, session.port, session.address);
  }

  /** @internal the target refused (ICMP port unreachable), could not be connected to, or the socket failed. */
  upstreamError(session: Session, error: NodeJS.ErrnoException): void {
    const target = session.target;
    this.#closeUpstream(session);
    if (isLocalResourceError(error)) {
      this.stats.localFailures++;
      warnLocalFailure(this.#localFailures, this.#options.name, error, 'a datagram toward an instance');
      return;
    }
    this.stats.upstreamErrors++;
    if (this.#serviceStats) this.#serviceStats.backendErrors++;
    // The target is not listening or cannot be reached: the picker moves on; the next
    // datagram of the session connects to whoever is next.
    if (target !== undefined) this.#picker.fail(target);
    if (error.code !== 'ECONNREFUSED' && !isRoutineSocketError(error)) {
      this.#targetErrors.warn(
        { service: this.#options.name, target: target && `${target.host}:${target.port}`, err: error },
        'udp instance unreachable',
      );
    }
  }

  #closeUpstream(session: Session): void {
    const upstream = session.upstream;
    session.upstream = undefined;
    session.target = undefined;
    session.connected = false;
    session.pending.length = 0;
    if (upstream === undefined) return;
    upstream.removeAllListeners('message');
    upstream.off('error', session.onError);
    // Errors after close (a late ICMP) must not become unhandled 'error' events.
    upstream.on('error', ignore);
    try {
      upstream.close();
    } catch {
      // Already closed.
    }
  }

  readonly #sweep = (): void => {
    const now = this.#clock.tick(Date.now());
    this.#now = now;
    const oldest = now - this.#idleMs;
    for (const [address, byPort] of this.#sessions) {
      for (const [port, session] of byPort) {
        if (session.lastSeen <= oldest) {
          this.#closeUpstream(session);
          byPort.delete(port);
          this.#sessionCount--;
          this.stats.sessionsOpen--;
        }
      }
      if (byPort.size === 0) this.#sessions.delete(address);
    }
    if (this.#sessionCount < this.#maxSessions) this.#warnedFull = false;
  };

  readonly #onListenerError = (error: Error): void => {
    this.#logger.warn({ service: this.#options.name, err: error }, 'udp listener error');
  };
}

function ignore(): void {}

/**
 * Replies go to the address dgram reported for the client, always an IP
 * literal; answering the "lookup" synchronously saves a DNS call and an event
 * loop turn per reply datagram.
 */
function literalLookup(
  address: string,
  family: unknown,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, typeof family === 'number' ? family : isIPv6(address) ? 6 : 4);
}
