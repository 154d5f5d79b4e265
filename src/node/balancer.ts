// Balancers over a service's instances. Both keep instances in arrival order,
// skip any that is not up, and implement the forwarders' Picker:
//   round-robin (TCP): each pick is the next live instance after the last one;
//   primary (UDP): the first live instance in arrival order gets everything,
//   later ones queue behind it (seed: "Multiple Application Instances").
// Each balancer reads and marks one protocol's health of an instance, so a
// UDP failure never stops TCP and the reverse (issue 9). An instance that fails
// is down on that protocol for `downMs`, then eligible again; when none is up,
// both still answer one (panic) rather than refuse. A balancer never reads a
// clock in pick().
import type { Picker } from '../forward/index.js';

/** What an instance's health is for one protocol. */
export type HealthState = 'up' | 'down' | 'checking';
/** An instance as status shows it: its one health, or across TCP and UDP, `degraded` when they differ. */
export type InstanceState = HealthState | 'degraded';
/** The transports an instance is balanced on; each has its own health (issue 9: one ICMP error must not stop TCP). */
export type Protocol = 'tcp' | 'udp';

export const DEFAULT_DOWN_MS = 10_000;
/**
 * The longest an instance is kept out before it is tried again. An instance that fails again
 * as soon as its down time has run out (nothing vouched for it meanwhile: no check passed) is
 * kept out twice as long as the last time, up to this (Envoy's outlier ejection does the same).
 * Without it, a dead UDP primary with no `udp_check`, whose sidecar still refreshes it, took
 * the service's datagrams back every 10 s and lost one per client session each time.
 */
export const MAX_DOWN_MS = 5 * 60_000;

export interface InstanceSpec {
  readonly host: string;
  readonly port: number;
  /** Seconds without a refresh before the instance is dropped; undefined: stays until removed. */
  readonly ttl?: number | undefined;
  /** Opt-in UDP check: the datagram (text, or `hex:`...) the app answers. */
  readonly udpCheck?: string | undefined;
}

/** An instance's health on one protocol: up, down for a while after a failure, or being checked. */
export class Health {
  state: HealthState;
  /** When it was last marked down (epoch ms), for status. */
  downSince: number | undefined;
  /** While down: when it will be tried again (epoch ms), unless a check finds it back first. */
  downUntil: number | undefined;
  #downTimer: NodeJS.Timeout | undefined;
  /** How many times in a row it failed again as soon as its down time ran out (the down time doubles each). */
  #strikes = 0;
  /** When its last down time ran out (epoch ms); 0 when it came back on evidence, or was never down. */
  #returnedAt = 0;
  /** Told when the state changes (the kernel data plane follows it). */
  readonly #onChange: (() => void) | undefined;

  constructor(state: HealthState, onChange?: () => void) {
    this.state = state;
    this.#onChange = onChange;
  }

  /**
   * Marks it down; after `downMs` it is up again (and will be tried). Failing again within
   * `downMs` of that return, it is out for twice as long as the last time (up to MAX_DOWN_MS).
   * Marked down again while down (an active check that failed), the time starts over at the
   * same length; `downSince` stays.
   */
  markDown(downMs: number): void {
    const now = Date.now();
    const changed = this.state !== 'down';
    if (changed) {
      this.downSince = now;
      const failedOnReturn = this.#returnedAt !== 0 && now - this.#returnedAt < downMs;
      this.#strikes = failedOnReturn ? this.#strikes + 1 : 0;
      this.#returnedAt = 0;
    }
    this.state = 'down';
    const ms = Math.min(downMs * 2 ** Math.min(this.#strikes, 30), Math.max(downMs, MAX_DOWN_MS));
    this.downUntil = now + ms;
    clearTimeout(this.#downTimer);
    this.#downTimer = setTimeout(() => {
      this.#downTimer = undefined;
      if (this.state !== 'down') return;
      // Back on trust, not on evidence: a failure soon after this counts as a strike.
      this.#returnedAt = Date.now();
      this.#setUp();
    }, ms);
    this.#downTimer.unref();
    if (changed) this.#onChange?.();
  }

  /** It answered (a check passed, a sidecar vouched for it): up, and its past strikes forgotten. */
  markUp(): void {
    this.#strikes = 0;
    this.#returnedAt = 0;
    this.#setUp();
  }

  #setUp(): void {
    clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
    const changed = this.state !== 'up';
    this.state = 'up';
    this.downSince = undefined;
    this.downUntil = undefined;
    if (changed) this.#onChange?.();
  }

  dispose(): void {
    clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
  }
}

/** One app instance (a sidecar's int_port), shared by a service's TCP and UDP balancers. */
export class Instance {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  ttl: number | undefined;
  /** Opt-in UDP check payload (InstanceSpec.udpCheck). */
  udpCheck: string | undefined;
  /** The protocols its service carries: what `state` sums up. */
  readonly protocols: readonly Protocol[];
  readonly health: Readonly<Record<Protocol, Health>>;

  /** `initial`: one state for every protocol, or per protocol (unnamed ones start up); `onChange`: a health changed. */
  constructor(
    id: string,
    spec: InstanceSpec,
    initial: HealthState | Partial<Record<Protocol, HealthState>> = 'up',
    protocols: readonly Protocol[] = ['tcp', 'udp'],
    onChange?: () => void,
  ) {
    this.id = id;
    this.host = spec.host;
    this.port = spec.port;
    this.ttl = spec.ttl;
    this.udpCheck = spec.udpCheck;
    this.protocols = protocols;
    const start = (p: Protocol): HealthState =>
      typeof initial === 'string' ? initial : (initial[p] ?? 'up');
    this.health = { tcp: new Health(start('tcp'), onChange), udp: new Health(start('udp'), onChange) };
  }

  /** Its health across its protocols: the common state, or `degraded` when they differ. */
  get state(): InstanceState {
    const [first, ...rest] = this.protocols.map((p) => this.health[p].state);
    if (first === undefined) return 'up';
    return rest.every((s) => s === first) ? first : 'degraded';
  }

  /** What it was registered with, as the API and the state file hold it. */
  spec(): InstanceSpec {
    return {
      host: this.host,
      port: this.port,
      ttl: this.ttl,
      ...(this.udpCheck !== undefined && { udpCheck: this.udpCheck }),
    };
  }

  /** Stops its timers; called when the instance is removed. */
  dispose(): void {
    this.health.tcp.dispose();
    this.health.udp.dispose();
  }
}

export interface Balancer extends Picker<Instance> {
  /** The protocol whose health it reads and marks. */
  readonly protocol: Protocol;
  /** Adds at the end of the arrival order. */
  add(instance: Instance): void;
  remove(instance: Instance): void;
  /** Sorts by rank (instances without one keep their place at the end). */
  order(rank: ReadonlyMap<string, number>): void;
  readonly instances: readonly Instance[];
}

abstract class ListBalancer implements Balancer {
  protected readonly list: Instance[] = [];
  /** Which of an instance's healths this balancer reads and marks. */
  readonly protocol: Protocol;
  readonly #downMs: number;

  constructor(downMs = DEFAULT_DOWN_MS, protocol: Protocol = 'tcp') {
    this.#downMs = downMs;
    this.protocol = protocol;
  }

  get size(): number {
    return this.list.length;
  }

  get instances(): readonly Instance[] {
    return this.list;
  }

  add(instance: Instance): void {
    if (!this.list.includes(instance)) this.list.push(instance);
  }

  remove(instance: Instance): void {
    const index = this.list.indexOf(instance);
    if (index >= 0) this.removed(index);
  }

  protected removed(index: number): void {
    this.list.splice(index, 1);
  }

  order(rank: ReadonlyMap<string, number>): void {
    const last = Number.MAX_SAFE_INTEGER;
    // Array.prototype.sort is stable: unranked instances keep their relative order.
    this.list.sort((a, b) => (rank.get(a.id) ?? last) - (rank.get(b.id) ?? last));
  }

  fail(instance: Instance): void {
    instance.health[this.protocol].markDown(this.#downMs);
  }

  protected isUp(instance: Instance): boolean {
    return instance.health[this.protocol].state === 'up';
  }

  abstract pick(): Instance | undefined;
}

/**
 * Round-robin over the instances that are up. When none is up, the next one in
 * turn is tried anyway ("panic", as HAProxy and Envoy do): a health verdict
 * may be stale, and trying costs a client less than a certain refusal.
 */
/** The instances a new connection may go to now: those up, or every one when none is (panic). */
export function eligible(balancer: Balancer): readonly Instance[] {
  const up = balancer.instances.filter((i) => i.health[balancer.protocol].state === 'up');
  return up.length > 0 ? up : balancer.instances;
}

export class RoundRobinBalancer extends ListBalancer {
  #cursor = 0;

  pick(): Instance | undefined {
    const list = this.list;
    const n = list.length;
    if (n === 0) return undefined;
    for (let k = 0; k < n; k++) {
      const index = (this.#cursor + k) % n;
      const instance = list[index]!;
      if (this.isUp(instance)) {
        this.#cursor = (index + 1) % n;
        return instance;
      }
    }
    const panic = list[this.#cursor % n]!;
    this.#cursor = (this.#cursor + 1) % n;
    return panic;
  }

  protected override removed(index: number): void {
    super.removed(index);
    // Keep pointing at the instance that was next.
    if (index < this.#cursor) this.#cursor--;
    if (this.#cursor >= this.list.length) this.#cursor = 0;
  }
}

/** The first instance in arrival order that is up; when none is, the first one (panic, as above). */
export class PrimaryBalancer extends ListBalancer {
  pick(): Instance | undefined {
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const instance = list[i]!;
      if (this.isUp(instance)) return instance;
    }
    return list[0];
  }
}

export type BalancerKind = 'round-robin' | 'primary';

export const BALANCER_FOR_FORWARDER: Readonly<Record<'tcp' | 'udp', BalancerKind>> = {
  tcp: 'round-robin',
  udp: 'primary',
};

export function createBalancer(kind: BalancerKind, protocol: Protocol, downMs?: number): Balancer {
  return kind === 'round-robin'
    ? new RoundRobinBalancer(downMs, protocol)
    : new PrimaryBalancer(downMs, protocol);
}
