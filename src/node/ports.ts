// The port allocator: hands out a random port of the node's range that no
// service holds and no other process is listening on (checked by binding it,
// TCP and UDP, on the node's listen address). Named errors: the range is
// exhausted (the API's 503), a wanted port is taken.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { HarborError } from '../errors/index.js';

export interface PortRange {
  readonly first: number;
  readonly last: number;
}

/** Answers whether a port can be bound right now. A collaborator so tests can hold ports however they like. */
export type PortProbe = (port: number) => Promise<boolean>;

export interface PortAllocatorOptions {
  readonly range: PortRange;
  readonly probe: PortProbe;
  /** Random source in [0, 1); tests may fix it. */
  readonly random?: () => number;
}

export class PortAllocator {
  readonly #range: PortRange;
  readonly #probe: PortProbe;
  readonly #random: () => number;
  readonly #held = new Set<number>();

  constructor(options: PortAllocatorOptions) {
    this.#range = options.range;
    this.#probe = options.probe;
    this.#random = options.random ?? Math.random;
  }

  get range(): PortRange {
    return this.#range;
  }

  get held(): ReadonlySet<number> {
    return this.#held;
  }

  /**
   * A random free port of the range, now held. Walks the range from a random
   * start so consecutive services do not get neighbouring ports. Throws
   * E_PORT_RANGE_EXHAUSTED when every port is held or bound by someone else.
   */
  async acquire(): Promise<number> {
    const { first, last } = this.#range;
    const count = last - first + 1;
    const start = Math.floor(this.#random() * count);
    for (let i = 0; i < count; i++) {
      const port = first + ((start + i) % count);
      if (this.#held.has(port)) continue;
      // Hold it while probing so a concurrent acquire cannot pick it too.
      this.#held.add(port);
      if (await this.#probe(port)) return port;
      this.#held.delete(port);
    }
    throw new HarborError(
      'E_PORT_RANGE_EXHAUSTED',
      `no free port in ${first}-${last}: ${this.#held.size} held by services, the rest in use by other processes`,
    );
  }

  /** Holds a known port (restoring state). Throws E_PORT_TAKEN when a service already holds it. */
  reserve(port: number, service: string): void {
    if (this.#held.has(port)) {
      throw new HarborError('E_PORT_TAKEN', `${service}: port ${port} is already held by another service`);
    }
    this.#held.add(port);
  }

  release(port: number): void {
    this.#held.delete(port);
  }
}

/** Parses `first-last` (or one port). Returns a reason on error, for the CLI to name the setting. */
export function parsePortRange(text: string): PortRange | string {
  const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  if (!match) return `must be a port range such as 35000-40000, not "${text}"`;
  const first = Number(match[1]);
  const last = Number(match[2] ?? match[1]);
  if (first < 1 || last > 65535 || first > last) {
    return `must be a range of ports within 1-65535, first <= last, not "${text}"`;
  }
  return { first, last };
}

function canBindTcp(port: number, host: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function canBindUdp(port: number, host: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const ipv6 = host === undefined || net.isIPv6(host);
    const socket = dgram.createSocket(ipv6 ? 'udp6' : 'udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ port, address: host ?? '::', exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/** The real probe: the port binds for TCP and for UDP on the listen address (both, whatever the service, so any later service kind fits). */
export function bindProbe(host: string | undefined): PortProbe {
  return async (port) => (await canBindTcp(port, host)) && (await canBindUdp(port, host));
}

/** "a-b,c" (Linux's ip_local_reserved_ports) as ranges; an empty or unreadable list is none. */
export function parsePortList(text: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const part of text.trim().split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match) ranges.push({ first: Number(match[1]), last: Number(match[2] ?? match[1]) });
  }
  return ranges;
}

/**
 * How many ports of `range` lie in the kernel's ephemeral range and are not reserved:
 * ports outgoing connections may take at any time, so a service can lose its port to
 * one (on a restart, or when its port is probed). Issue 9, item 13.
 */
export function ephemeralOverlap(
  range: PortRange,
  ephemeral: PortRange,
  reserved: readonly PortRange[],
): number {
  let count = 0;
  const first = Math.max(range.first, ephemeral.first);
  const last = Math.min(range.last, ephemeral.last);
  for (let port = first; port <= last; port++) {
    if (!reserved.some((r) => port >= r.first && port <= r.last)) count++;
  }
  return count;
}
