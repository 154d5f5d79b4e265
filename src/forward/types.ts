// The shapes every forwarder shares: where it listens, how it picks a target,
// what it counts, and the small lifecycle (start, close) the node and the
// sidecar drive.
import type { Logger } from '../log/index.js';
import type { ServiceStats } from '../stats/index.js';

/** A host and port a forwarder dials. The node's instances are Targets with more fields. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/**
 * Chooses where the next connection or datagram goes. The sidecar's picker
 * always answers its one target; the node's balancers implement it over the
 * live instances of a service.
 */
export interface Picker<T extends Target = Target> {
  /** The target to use now, or undefined when none is live. Called per connection and per datagram: keep it O(1)-ish. */
  pick(): T | undefined;
  /** The target refused or failed: the picker may skip it for a while. */
  fail(target: T): void;
  /** How many targets a new connection may try before giving up (the number of instances). */
  readonly size: number;
}

/** Where a forwarder listens. Without host: every address (IPv6 and IPv4 where the machine has both). */
export interface ListenOptions {
  readonly host?: string | undefined;
  readonly port: number;
}

/** Counters a forwarder bumps; plain numbers, read when someone asks. */
export interface ForwardStats {
  connectionsOpen: number;
  connectionsTotal: number;
  /** Connections closed without a target: none live, or every try refused. */
  connectionsFailed: number;
  /** Bytes from clients toward targets (TCP and UDP). */
  bytesIn: number;
  /** Bytes from targets back to clients (TCP and UDP). */
  bytesOut: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Datagrams dropped: no live target, the session table full, or a send failed. */
  datagramsDropped: number;
  sessionsOpen: number;
  sessionsTotal: number;
  /** UDP sessions closed to keep one client address within its share. */
  sessionsEvicted: number;
  /** Targets that refused or errored (each try counts). */
  upstreamErrors: number;
  /** Connects and sends that failed for lack of a local resource (EMFILE, ENOBUFS...): no target blamed. */
  localFailures: number;
}

export function createForwardStats(): ForwardStats {
  return {
    connectionsOpen: 0,
    connectionsTotal: 0,
    connectionsFailed: 0,
    bytesIn: 0,
    bytesOut: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    datagramsDropped: 0,
    sessionsOpen: 0,
    sessionsTotal: 0,
    sessionsEvicted: 0,
    upstreamErrors: 0,
    localFailures: 0,
  };
}

/** The one interface of every forwarder kind. */
export interface Forwarder {
  /** Binds and starts accepting. Rejects with E_PORT_IN_USE (address taken) or E_LISTEN. */
  start(): Promise<void>;
  /**
   * Stops accepting at once; open TCP connections may finish within
   * `deadlineMs` (0: cut now), then are destroyed. UDP sessions close at once.
   */
  close(deadlineMs?: number): Promise<void>;
  readonly stats: ForwardStats;
  /** The bound port (useful when listening on port 0), or undefined before start. */
  readonly port: number | undefined;
}

export type ProxyProtocolVersion = 1 | 2;

/** What every forwarder kind is built from. */
export interface ForwarderOptions {
  readonly listen: ListenOptions;
  readonly picker: Picker;
  readonly logger: Logger;
  /** Label for log lines: the service name. */
  readonly name: string;
  /** Optional shared counters (the admin endpoint's), bumped besides `stats`. */
  readonly serviceStats?: ServiceStats | undefined;
  /** TCP only: send a PROXY protocol header of this version to the target first. */
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  /** TCP only: a connection with no data either way for this long is closed (both sides). 0 or absent: never. */
  readonly tcpIdleTimeoutMs?: number | undefined;
  /** UDP only: a client's session closes after this long without traffic either way. Default 60 s. */
  readonly udpIdleTimeoutMs?: number | undefined;
  /** UDP only: at most this many client sessions at once. Default 4096. */
  readonly udpMaxSessions?: number | undefined;
  /** UDP: sessions one client address may hold; its oldest makes room for its newest (default 256). */
  readonly udpMaxSessionsPerSource?: number | undefined;
}
