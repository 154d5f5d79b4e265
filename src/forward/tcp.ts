// The TCP relay: accept, pick a target (trying the next one when a target
// refuses), then pipe both ways. Half-close passes through (allowHalfOpen on
// both sockets, pipe ends only the write side), backpressure is pipe's, and a
// peer that hangs up is counted, not shouted about.
import * as net from 'node:net';
import { HarborError } from '../errors/index.js';
import { isRoutineSocketError, type Logger } from '../log/index.js';
import { InactivitySweep } from '../sockets/inactivity.js';
import { LiveSet, SLOT } from '../sockets/live-set.js';
import { heldBy } from '../sockets/port-owner.js';
import type { ServiceStats } from '../stats/index.js';
import { isLocalResourceError, ThrottledWarning, warnLocalFailure } from './failures.js';
import { proxyHeader } from './proxy-protocol.js';
import { adoptReadBuffer, ReadBuffers } from './read-buffer.js';
import {
  createForwardStats,
  type Forwarder,
  type ForwarderOptions,
  type ForwardStats,
  type Picker,
  type ProxyProtocolVersion,
  type Target,
} from './types.js';

/** Errors that mean "this target is not there", so the next one is tried. */
const TRY_NEXT = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** How long a connect may take before the target counts as down. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Bytes read at a time in each direction. Each connection reuses one buffer
 * of this size per direction (see read-buffer.ts): 64 KiB per connection,
 * what a default read would allocate afresh every time.
 */
const READ_BYTES = 32 * 1024;
/**
 * The read buffers of ended connections, for the next ones (read-buffer.ts): up to 256 of them
 * (8 MiB) wait, shared by every TCP forwarder of the process.
 */
export const relayReadBuffers = new ReadBuffers(READ_BYTES, 256);

/** One relayed connection: the client, the upstream being tried or used, and how many tries are left. */
class Relay {
  [SLOT] = -1;
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
  target: Target | undefined;
  triesLeft: number;
  /** What the target sends is read into this; what the client sends, into clientBuffer. */
  readonly upstreamBuffer = relayReadBuffers.take();
  clientBuffer: Buffer | undefined;
  /**
   * Sockets of this relay not closed yet (the client, and every upstream dialled): while one is
   * open, it may still read into a buffer or write from one, so they go back to the pool only
   * when this reaches 0.
   */
  #open = 1;

  constructor(client: net.Socket, tries: number) {
    this.client = client;
    this.triesLeft = tries;
  }

  /** A socket that uses this relay's buffers: counted until its 'close'. */
  uses(socket: net.Socket): void {
    this.#open++;
    socket.once('close', this.socketClosed);
  }

  /** One of the relay's sockets has closed: the last one gives the buffers back. */
  readonly socketClosed = (): void => {
    if (--this.#open > 0) return;
    relayReadBuffers.give(this.upstreamBuffer);
    if (this.clientBuffer !== undefined) relayReadBuffers.give(this.clientBuffer);
  };

  /** A chunk from the target, in the reused buffer. */
  readonly onUpstreamRead = (nread: number, buffer: Buffer): boolean => {
    const client = this.client;
    if (client.destroyed) return false;
    client.write(buffer.subarray(0, nread), this.onClientWritten);
    // Written at once (the usual case): the buffer is free for the next read. Otherwise the
    // pending write still points into it, so reading stops until the write completes.
    return client.writableLength === 0;
  };

  readonly onClientWritten = (): void => {
    const upstream = this.upstream;
    if (upstream !== undefined && !upstream.destroyed) upstream.resume();
  };

  /** A chunk from the client, in the reused buffer (when adoptReadBuffer worked). */
  readonly onClientRead = (nread: number, buffer: Buffer): boolean => {
    const upstream = this.upstream;
    if (upstream === undefined || upstream.destroyed) return false;
    upstream.write(buffer.subarray(0, nread), this.onUpstreamWritten);
    return upstream.writableLength === 0;
  };

  readonly onUpstreamWritten = (): void => {
    if (!this.client.destroyed) this.client.resume();
  };
}

export class TcpForwarder implements Forwarder {
  readonly stats: ForwardStats = createForwardStats();
  readonly #options: ForwarderOptions;
  readonly #picker: Picker;
  readonly #logger: Logger;
  readonly #localFailures: ThrottledWarning;
  readonly #serviceStats: ServiceStats | undefined;
  readonly #proxyProtocol: ProxyProtocolVersion | undefined;
  readonly #relays = new LiveSet<Relay>();
  /** The relays' idle timeout (--tcp-idle-timeout, 0: none), and the sweep that keeps it. */
  readonly #idleMs: number;
  readonly #sweep: InactivitySweep | undefined;
  #server: net.Server | undefined;
  /** Set while close() waits for open connections to end. */
  #drained: (() => void) | undefined;
  #port: number | undefined;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.#picker = options.picker;
    this.#logger = options.logger;
    this.#localFailures = new ThrottledWarning(options.logger);
    this.#serviceStats = options.serviceStats;
    this.#proxyProtocol = options.proxyProtocol;
    this.#idleMs = options.tcpIdleTimeoutMs ?? 0;
    this.#sweep = this.#idleMs > 0 ? new InactivitySweep(this.#idleMs) : undefined;
  }

  get port(): number | undefined {
    return this.#port;
  }

  start(): Promise<void> {
    const { host, port } = this.#options.listen;
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, this.#onConnection);
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        this.#server = undefined;
        reject(listenError(error, this.#options.name, 'tcp', host, port));
      };
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        server.on('error', (error: Error) =>
          this.#logger.error({ err: error, service: this.#options.name }, 'tcp listener error'),
        );
        const address = server.address();
        this.#port = typeof address === 'object' && address ? address.port : port;
        resolve();
      });
    });
  }

  async close(deadlineMs = 0): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    // server.close() stops accepting now; its callback waits for every open connection.
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    if (this.#relays.size > 0 && deadlineMs > 0) {
      this.#drained = undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#drained = resolve;
        }),
        new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref()),
      ]);
      this.#drained = undefined;
    }
    for (const relay of this.#relays.toArray()) {
      relay.client.destroy();
      relay.upstream?.destroy();
    }
    await closed;
  }

  /** Open relays (for drain decisions). */
  get openConnections(): number {
    return this.#relays.size;
  }

  readonly #onConnection = (client: net.Socket): void => {
    this.stats.connectionsTotal++;
    this.stats.connectionsOpen++;
    if (this.#serviceStats) {
      this.#serviceStats.connectionsTotal++;
      this.#serviceStats.connectionsOpen++;
    }
    const relay = new Relay(client, Math.max(1, this.#picker.size));
    this.#relays.add(relay);
    client.setNoDelay(true);
    client.on('error', this.#onSocketError);
    client.on('close', () => {
      this.#finish(relay);
      relay.socketClosed();
    });
    this.#dial(relay);
  };

  #dial(relay: Relay): void {
    const target = this.#picker.pick();
    if (target === undefined || relay.client.destroyed) {
      this.#giveUp(relay);
      return;
    }
    relay.target = target;
    relay.triesLeft--;
    const upstream = net.connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      timeout: CONNECT_TIMEOUT_MS,
      onread: { buffer: relay.upstreamBuffer, callback: relay.onUpstreamRead },
    });
    relay.upstream = upstream;
    relay.uses(upstream);
    upstream.once('connect', () => this.#onUpstreamConnect(relay, upstream));
    upstream.once('timeout', () =>
      upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    );
    upstream.once('error', (error: NodeJS.ErrnoException) => this.#onUpstreamError(relay, upstream, error));
  }

  #onUpstreamConnect(relay: Relay, upstream: net.Socket): void {
    upstream.setTimeout(0);
    upstream.removeAllListeners('timeout');
    upstream.removeAllListeners('error');
    upstream.on('error', this.#onSocketError);
    const client = relay.client;
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    const sweep = this.#sweep;
    if (sweep !== undefined) {
      // Data either way passes through the client's socket, so its reads and writes are the
      // relay's activity: a target that accepted and went silent no longer holds its client.
      const watch = sweep.watch(client, () => {
        client.destroy();
        upstream.destroy();
      });
      watch.set(this.#idleMs);
      client.once('close', () => sweep.unwatch(watch));
    }
    // Either side closing abruptly takes the other down, a reset (a side that failed) as a reset;
    // a clean end is passed by pipe as a half-close.
    upstream.on('close', () => {
      if (client.destroyed) return;
      if (upstream.errored) abort(client);
      else if (!client.writableEnded) client.destroy();
    });
    client.on('close', () => {
      if (upstream.destroyed) return;
      if (client.errored) abort(upstream);
      else if (!upstream.writableEnded) upstream.destroy();
    });
    if (this.#proxyProtocol !== undefined) {
      upstream.write(
        proxyHeader(this.#proxyProtocol, {
          sourceAddress: client.remoteAddress,
          sourcePort: client.remotePort,
          destinationAddress: client.localAddress,
          destinationPort: client.localPort,
        }),
      );
    }
    // Each direction reads into its reused buffer and pauses while a write is pending
    // (backpressure); an end is passed on as a half-close. Where Node does not let the
    // client side adopt a buffer, that direction is a plain pipe().
    upstream.on('end', () => client.end());
    const clientBuffer = relayReadBuffers.take();
    if (adoptReadBuffer(client, clientBuffer, relay.onClientRead)) {
      relay.clientBuffer = clientBuffer;
      client.on('end', () => upstream.end());
    } else {
      relayReadBuffers.give(clientBuffer);
      client.pipe(upstream);
    }
    upstream.resume();
    client.resume();
  }

  #onUpstreamError(relay: Relay, upstream: net.Socket, error: NodeJS.ErrnoException): void {
    upstream.destroy();
    relay.upstream = undefined;
    if (isLocalResourceError(error)) {
      // This process or host is out of something: not the target's fault, and no other
      // target would fare better now.
      this.stats.localFailures++;
      warnLocalFailure(this.#localFailures, this.#options.name, error, 'a connection to an instance');
      this.#giveUp(relay);
      return;
    }
    this.stats.upstreamErrors++;
    if (this.#serviceStats) this.#serviceStats.backendErrors++;
    const target = relay.target;
    if (target !== undefined) this.#picker.fail(target);
    if (this.#logger.isLevelEnabled('debug')) {
      this.#logger.debug(
        { service: this.#options.name, target: `${target?.host}:${target?.port}`, code: error.code },
        'target failed',
      );
    }
    if (relay.triesLeft > 0 && TRY_NEXT.has(error.code ?? '')) {
      this.#dial(relay);
      return;
    }
    this.#giveUp(relay);
  }

  #giveUp(relay: Relay): void {
    this.stats.connectionsFailed++;
    relay.client.destroy();
  }

  #finish(relay: Relay): void {
    if (!this.#relays.delete(relay)) return;
    if (this.#relays.size === 0) this.#drained?.();
    const client = relay.client;
    this.stats.connectionsOpen--;
    this.stats.bytesIn += client.bytesRead;
    this.stats.bytesOut += client.bytesWritten;
    if (this.#serviceStats) {
      this.#serviceStats.connectionsOpen--;
      this.#serviceStats.bytesIn += client.bytesRead;
      this.#serviceStats.bytesOut += client.bytesWritten;
    }
  }

  readonly #onSocketError = (error: Error): void => {
    if (isRoutineSocketError(error)) {
      if (this.#logger.isLevelEnabled('debug')) {
        this.#logger.debug(
          { service: this.#options.name, code: (error as NodeJS.ErrnoException).code },
          'peer gone',
        );
      }
      return;
    }
    this.#logger.warn({ service: this.#options.name, err: error }, 'connection error');
  };
}

/** A listen failure as a HarborError naming the service, transport and address. */
export function listenError(
  error: NodeJS.ErrnoException,
  name: string,
  transport: 'tcp' | 'udp',
  host: string | undefined,
  port: number,
): HarborError {
  const where = `${host ?? '*'}:${port}/${transport}`;
  if (error.code === 'EADDRINUSE') {
    const by = heldBy(port, transport) || ' by another process';
    return new HarborError('E_PORT_IN_USE', `${name}: ${where} is already in use${by}`, {
      cause: error,
    });
  }
  return new HarborError('E_LISTEN', `${name}: cannot listen on ${where}: ${error.code ?? error.message}`, {
    cause: error,
  });
}

/**
 * Closes `socket` with a TCP reset, as the kernel data plane passes one on: a side that failed
 * (a reset, a timeout) passed on as a FIN would tell the other a clean end, and a client reading
 * to the close would take a cut answer for a whole one. A Unix socket has no reset: closed.
 */
function abort(socket: net.Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    // ERR_INVALID_HANDLE_TYPE: not a TCP socket.
    socket.destroy();
  }
}
