// Balancers over a service's instances. Both keep instances in arrival order,
// skip any that is not up, and implement the forwarders' Picker:
//   round-robin (TCP): each pick is the next live instance after the last one;
//   primary (UDP): the first live instance in arrival order gets everything,
//   later ones queue behind it (seed: "Multiple Application Instances").
// An instance that fails is down for `downMs`, then eligible again; a
// balancer never reads a clock in pick().
import type { Picker } from '../forward/index.js';

export type InstanceState = 'up' | 'down' | 'checking';

export const DEFAULT_DOWN_MS = 10_000;

export interface InstanceSpec {
  readonly host: string;
  readonly port: number;
  /** Seconds without a refresh before the instance is dropped; undefined: stays until removed. */
  readonly ttl?: number | undefined;
}

/** One app instance (a sidecar's int_port). Shared by a service's TCP and UDP balancers. */
export class Instance {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  ttl: number | undefined;
  state: InstanceState;
  /** When the instance was last marked down (epoch ms), for status. */
  downSince: number | undefined;
  #downTimer: NodeJS.Timeout | undefined;

  constructor(id: string, spec: InstanceSpec, state: InstanceState = 'up') {
    this.id = id;
    this.host = spec.host;
    this.port = spec.port;
    this.ttl = spec.ttl;
    this.state = state;
  }

  /** Marks the instance down; after `downMs` it is up again (and will be tried). */
  markDown(downMs: number): void {
    if (this.state === 'down' && this.#downTimer) return;
    this.state = 'down';
    this.downSince = Date.now();
    clearTimeout(this.#downTimer);
    this.#downTimer = setTimeout(() => {
      this.#downTimer = undefined;
      if (this.state === 'down') this.markUp();
    }, downMs);
    this.#downTimer.unref();
  }

  markUp(): void {
    clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
    this.state = 'up';
    this.downSince = undefined;
  }

  /** Stops its timer; called when the instance is removed. */
  dispose(): void {
    clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
  }
}

export interface Balancer extends Picker<Instance> {
  /** Adds at the end of the arrival order. */
  add(instance: Instance): void;
  remove(instance: Instance): void;
  readonly instances: readonly Instance[];
}

abstract class ListBalancer implements Balancer {
  protected readonly list: Instance[] = [];
  readonly #downMs: number;

  constructor(downMs = DEFAULT_DOWN_MS) {
    this.#downMs = downMs;
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

  fail(instance: Instance): void {
    instance.markDown(this.#downMs);
  }

  abstract pick(): Instance | undefined;
}

export class RoundRobinBalancer extends ListBalancer {
  #cursor = 0;

  pick(): Instance | undefined {
    const list = this.list;
    const n = list.length;
    for (let k = 0; k < n; k++) {
      const index = (this.#cursor + k) % n;
      const instance = list[index]!;
      if (instance.state === 'up') {
        this.#cursor = (index + 1) % n;
        return instance;
      }
    }
    return undefined;
  }

  protected override removed(index: number): void {
    super.removed(index);
    // Keep pointing at the instance that was next.
    if (index < this.#cursor) this.#cursor--;
    if (this.#cursor >= this.list.length) this.#cursor = 0;
  }
}

export class PrimaryBalancer extends ListBalancer {
  pick(): Instance | undefined {
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const instance = list[i]!;
      if (instance.state === 'up') return instance;
    }
    return undefined;
  }
}

export type BalancerKind = 'round-robin' | 'primary';

export const BALANCER_FOR_FORWARDER: Readonly<Record<'tcp' | 'udp', BalancerKind>> = {
  tcp: 'round-robin',
  udp: 'primary',
};

export function createBalancer(kind: BalancerKind, downMs?: number): Balancer {
  return kind === 'round-robin' ? new RoundRobinBalancer(downMs) : new PrimaryBalancer(downMs);
}
