// One provisioned Harbor service on the node: its port, its instances with
// their TTLs, a balancer per forwarder kind over the same instances, and the
// forwarders listening on the port (TCP, UDP or both by the name's protocol).
// A kind whose port is held by another process stays down and is retried by
// the node; the other kinds serve meanwhile.
import { ruleForName } from '../config/protocol.js';
import type { Transport } from '../config/types.js';
import { MAX_TIMER_MS } from '../config/values.js';
import type { HarborError } from '../errors/index.js';
import {
  createForwarder,
  type Forwarder,
  type ForwarderKind,
  type ForwardStats,
  KINDS_BY_TRANSPORT,
  type ProxyProtocolVersion,
} from '../forward/index.js';
import type { Logger } from '../log/index.js';
import { createServiceStats, type ServiceStats } from '../stats/index.js';
import {
  BALANCER_FOR_FORWARDER,
  type Balancer,
  createBalancer,
  eligible,
  type HealthState,
  Instance,
  type InstanceSpec,
  type InstanceState,
  type Protocol,
} from './balancer.js';
import type { FixedCredentials, InstanceRecord, ServiceRecord } from './state.js';

export interface NodeServiceOptions {
  readonly record: Omit<ServiceRecord, 'instances'>;
  readonly listenHost: string | undefined;
  readonly logger: Logger;
  readonly udpIdleTimeoutMs: number;
  /** Forwarded TCP connections idle this long either way are closed; 0: never. */
  readonly tcpIdleTimeoutMs?: number | undefined;
  /** PROXY protocol toward instances on TCP (the client's address); undefined: none. */
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  /** UDP sessions one client address may hold (the forwarder's default when undefined). */
  readonly udpSessionsPerSource?: number | undefined;
  readonly downMs: number;
  /** Called when where new connections go may have changed: an instance came, went, moved or changed health. */
  readonly onChange?: ((service: NodeService) => void) | undefined;
  /** Called when an instance's TTL timer fires: the node asks its store whether it expired (a refresh through another node may have moved it). */
  readonly onTtl: (service: NodeService, instance: Instance) => void;
}

interface Listener {
  readonly kind: ForwarderKind;
  readonly forwarder: Forwarder;
  listening: boolean;
}

export type UpsertResult = 'created' | 'refreshed' | 'replaced';

export interface InstanceView {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly ttl: number | null;
  /** Its health; for a service on TCP and UDP, `degraded` when the two differ. */
  readonly state: InstanceState;
  /** On a service that carries UDP: the primary gets every datagram; the others queue behind it in this order. */
  readonly udp_role?: 'primary' | 'queued';
  /** The opt-in UDP check, when the instance has one. */
  readonly udp_check?: string;
  /** Per protocol, only for a service on both TCP and UDP. */
  readonly health?: Readonly<Partial<Record<Protocol, HealthState>>>;
}

export class NodeService {
  readonly id: string;
  readonly name: string;
  readonly port: number;
  readonly intPort: number;
  readonly createdAt: string;
  /** Fixed at creation; undefined for a service from an older state file (the node's settings give them). */
  readonly credentials: FixedCredentials | undefined;
  readonly transport: Transport;
  /** The last listen failure of a kind still down (a port conflict), for status. */
  conflict: string | undefined;
  /** Counters of all its forwarders together, as the admin endpoint's /metrics reads them. */
  readonly stats: ServiceStats = createServiceStats();
  readonly #options: NodeServiceOptions;
  readonly #instances = new Map<string, Instance>();
  readonly #ttlTimers = new Map<string, NodeJS.Timeout>();
  readonly #balancers: readonly Balancer[];
  readonly #listeners: readonly Listener[];

  constructor(options: NodeServiceOptions) {
    const { record } = options;
    this.#options = options;
    this.id = record.id;
    this.name = record.name;
    this.port = record.port;
    this.intPort = record.intPort;
    this.createdAt = record.createdAt;
    this.credentials = record.credentials;
    this.transport = ruleForName(record.name).transport;
    const balancers: Balancer[] = [];
    this.#listeners = KINDS_BY_TRANSPORT[this.transport].map((kind) => {
      const balancer = createBalancer(BALANCER_FOR_FORWARDER[kind], kind, options.downMs);
      balancers.push(balancer);
      const forwarder = createForwarder(kind, {
        listen: { host: options.listenHost, port: record.port },
        picker: balancer,
        logger: options.logger,
        name: record.name,
        udpIdleTimeoutMs: options.udpIdleTimeoutMs,
        tcpIdleTimeoutMs: options.tcpIdleTimeoutMs,
        ...(kind === 'tcp' && { proxyProtocol: options.proxyProtocol }),
        ...(kind === 'udp' && { udpMaxSessionsPerSource: options.udpSessionsPerSource }),
        serviceStats: this.stats,
      });
      return { kind, forwarder, listening: false };
    });
    this.#balancers = balancers;
  }

  /** The protocols it carries, each with its own instance health. */
  get protocols(): readonly Protocol[] {
    return this.#balancers.map((b) => b.protocol);
  }

  get listening(): boolean {
    return this.#listeners.every((l) => l.listening);
  }

  /** Starts every kind not yet listening; returns the failures (E_PORT_IN_USE, E_LISTEN), empty when all listen. */
  async listen(): Promise<HarborError[]> {
    const failures: HarborError[] = [];
    for (const listener of this.#listeners) {
      if (listener.listening) continue;
      try {
        await listener.forwarder.start();
        listener.listening = true;
      } catch (error) {
        failures.push(error as HarborError);
      }
    }
    this.conflict = failures.length > 0 ? failures.map((f) => f.message).join('; ') : undefined;
    return failures;
  }

  async close(deadlineMs = 0): Promise<void> {
    for (const timer of this.#ttlTimers.values()) clearTimeout(timer);
    this.#ttlTimers.clear();
    await Promise.all(
      this.#listeners.map(async (l) => {
        if (l.listening) await l.forwarder.close(deadlineMs);
        l.listening = false;
      }),
    );
    for (const instance of this.#instances.values()) instance.dispose();
  }

  get instances(): IterableIterator<Instance> {
    return this.#instances.values();
  }

  instance(id: string): Instance | undefined {
    return this.#instances.get(id);
  }

  /**
   * Registers or refreshes an instance. A new address replaces the old
   * instance (it goes to the back of the UDP queue; open connections to the
   * old address run on). `ttlMs`: what is left of its TTL (a store's clock
   * says), else the whole TTL.
   */
  upsert(
    id: string,
    spec: InstanceSpec,
    initial: HealthState | Partial<Record<Protocol, HealthState>> = 'up',
    ttlMs?: number,
  ): UpsertResult {
    const existing = this.#instances.get(id);
    let result: UpsertResult = 'created';
    if (existing && existing.host === spec.host && existing.port === spec.port) {
      existing.ttl = spec.ttl;
      existing.udpCheck = spec.udpCheck;
      this.armTtl(existing, ttlMs);
      return 'refreshed';
    }
    if (existing) {
      this.#drop(existing);
      result = 'replaced';
    }
    const instance = new Instance(id, spec, initial, this.protocols, this.#changed);
    this.#instances.set(id, instance);
    for (const balancer of this.#balancers) balancer.add(instance);
    this.armTtl(instance, ttlMs);
    this.#changed();
    return result;
  }

  #changed = (): void => {
    this.#options.onChange?.(this);
  };

  /** Where the kernel sends new flows: TCP round-robin over these, UDP to the primary (the balancers' own picks). */
  kernelTargets(): { tcp: readonly Instance[] | null; udp: Instance | null | undefined } {
    const tcp = this.#balancers.find((b) => b.protocol === 'tcp');
    const udp = this.#balancers.find((b) => b.protocol === 'udp');
    return {
      tcp: tcp === undefined ? null : eligible(tcp),
      udp: udp === undefined ? undefined : (udp.pick() ?? null),
    };
  }

  /** Marks the UDP primary down when it is `refusing` (the kernel saw an ICMP port unreachable from it); the next instance takes over. */
  failUdpPrimary(refusing: { host: string; port: number }): Instance | undefined {
    const udp = this.#balancers.find((b) => b.protocol === 'udp');
    const primary = udp?.pick();
    if (udp === undefined || primary === undefined || primary.health.udp.state !== 'up') return undefined;
    // Errors of an instance that is no longer the primary are old news: the primary now is not blamed.
    if (primary.host !== refusing.host || primary.port !== refusing.port) return undefined;
    udp.fail(primary);
    return primary;
  }

  /** Puts the instances in this order (a store's registration order), so every node has the same UDP primary and queue. */
  order(ids: readonly string[]): void {
    const rank = new Map(ids.map((id, i) => [id, i]));
    const before = this.#balancers[0]?.instances.map((i) => i.id).join(' ');
    for (const balancer of this.#balancers) balancer.order(rank);
    // Every sync orders every service: only a new order is a change.
    if (this.#balancers[0]?.instances.map((i) => i.id).join(' ') !== before) this.#changed();
  }

  remove(id: string): boolean {
    const instance = this.#instances.get(id);
    if (!instance) return false;
    this.#drop(instance);
    return true;
  }

  #drop(instance: Instance): void {
    this.#instances.delete(instance.id);
    for (const balancer of this.#balancers) balancer.remove(instance);
    clearTimeout(this.#ttlTimers.get(instance.id));
    this.#ttlTimers.delete(instance.id);
    instance.dispose();
    this.#changed();
  }

  /** (Re)arms the instance's TTL timer for `ms` (default: its whole TTL); when it fires, the node asks its store. */
  armTtl(instance: Instance, ms?: number): void {
    const old = this.#ttlTimers.get(instance.id);
    if (old) clearTimeout(old);
    this.#ttlTimers.delete(instance.id);
    if (instance.ttl === undefined) return;
    const deadline = Date.now() + (ms ?? instance.ttl * 1000);
    // A timer holds at most 2^31-1 ms (24.8 days); a longer TTL (a hand-edited state file) would
    // fire at once, so it is waited out in steps (issue 9, item 12).
    const arm = (): void => {
      const timer = setTimeout(
        () => {
          if (this.#instances.get(instance.id) !== instance) return;
          if (Date.now() < deadline) {
            arm();
            return;
          }
          this.#ttlTimers.delete(instance.id);
          this.#options.onTtl(this, instance);
        },
        Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS),
      );
      timer.unref();
      this.#ttlTimers.set(instance.id, timer);
    };
    arm();
  }

  instanceRecords(): InstanceRecord[] {
    return [...this.#instances.values()].map((i) => ({ id: i.id, ...i.spec() }));
  }

  record(): ServiceRecord {
    return {
      id: this.id,
      name: this.name,
      port: this.port,
      intPort: this.intPort,
      createdAt: this.createdAt,
      ...(this.credentials !== undefined && { credentials: this.credentials }),
      instances: this.instanceRecords(),
    };
  }

  /** In arrival order (the UDP queue's order); on a UDP service, which one is the primary now. */
  instanceViews(): InstanceView[] {
    const protocols = this.protocols;
    const udp = this.#balancers.find((b) => b.protocol === 'udp');
    const primary = udp?.pick();
    const ordered = udp?.instances ?? [...this.#instances.values()];
    return ordered.map((i) => ({
      id: i.id,
      host: i.host,
      port: i.port,
      ttl: i.ttl ?? null,
      state: i.state,
      ...(udp && { udp_role: i === primary ? ('primary' as const) : ('queued' as const) }),
      ...(i.udpCheck !== undefined && { udp_check: i.udpCheck }),
      ...(protocols.length > 1 && {
        health: Object.fromEntries(protocols.map((p) => [p, i.health[p].state])),
      }),
    }));
  }

  /** Counters per forwarder kind, and whether each listens. */
  counters(): Record<string, ForwardStats & { listening: boolean }> {
    const out: Record<string, ForwardStats & { listening: boolean }> = {};
    for (const l of this.#listeners) out[l.kind] = { listening: l.listening, ...l.forwarder.stats };
    return out;
  }
}
