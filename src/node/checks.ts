// Active checks of a node's instances (issue 9): a TCP connect for instances
// restored from the store (not yet checked) and for every instance whose TCP
// side is down, so a blackholed instance costs one client its connect timeout,
// not one client every down time (HAProxy's and Envoy's active checks); and the
// opt-in UDP check of every instance that has one, up or down, since a
// blackholed UDP instance sends no ICMP. With the kernel data plane every
// instance's TCP side is checked, since the kernel does not skip a refusing
// one. Run by the node on its retry timer.
import { udpCheckPayload } from '../config/udp-check.js';
import type { Logger } from '../log/index.js';
import type { Instance } from './balancer.js';
import { type InstanceCheck, tcpConnectCheck, type UdpInstanceCheck, udpProbeCheck } from './health.js';
import type { NodeService } from './service.js';

export interface InstanceChecksOptions {
  readonly logger: Logger;
  readonly check?: InstanceCheck | undefined;
  readonly udpCheck?: UdpInstanceCheck | undefined;
  readonly downMs: number;
  /** Check instances that are up too (the kernel data plane: nothing else sees a refusal). */
  readonly all?: boolean | undefined;
}

export class InstanceChecks {
  readonly #logger: Logger;
  readonly #check: InstanceCheck;
  readonly #udpCheck: UdpInstanceCheck;
  readonly #downMs: number;
  readonly #all: boolean;
  /** Instances restored from the store that have not passed their check yet. */
  readonly #unchecked = new Set<Instance>();

  constructor(options: InstanceChecksOptions) {
    this.#logger = options.logger;
    this.#check = options.check ?? tcpConnectCheck();
    this.#udpCheck = options.udpCheck ?? udpProbeCheck();
    this.#downMs = options.downMs;
    this.#all = options.all ?? false;
  }

  /** A restored instance: checked before its TCP side gets connections. */
  restored(instance: Instance): void {
    this.#unchecked.add(instance);
  }

  /** A sidecar refreshed the instance: it vouches for it. True when it was still waiting for its check. */
  vouch(instance: Instance): boolean {
    return this.#unchecked.delete(instance);
  }

  forget(instance: Instance): void {
    this.#unchecked.delete(instance);
  }

  clear(): void {
    this.#unchecked.clear();
  }

  async run(services: Iterable<NodeService>): Promise<void> {
    const down: Instance[] = [];
    const up: Instance[] = [];
    const udpChecked: Instance[] = [];
    for (const service of services) {
      const tcp = service.protocols.includes('tcp');
      const udp = service.protocols.includes('udp');
      for (const instance of service.instances) {
        if (tcp && !this.#unchecked.has(instance)) {
          if (instance.health.tcp.state === 'down') down.push(instance);
          else if (this.#all && instance.health.tcp.state === 'up') up.push(instance);
        }
        if (udp && instance.udpCheck !== undefined) udpChecked.push(instance);
      }
    }
    await Promise.all([
      ...[...this.#unchecked].map((instance) => this.#checkRestored(instance)),
      ...udpChecked.map((instance) => this.#checkUdp(instance)),
      ...down.map((instance) => this.#checkDown(instance)),
      ...up.map((instance) => this.#checkUp(instance)),
    ]);
  }

  /** An instance in rotation: one refused or unanswered connect takes it out until a check passes. */
  async #checkUp(instance: Instance): Promise<void> {
    const ok = await this.#check(instance.host, instance.port);
    if (instance.health.tcp.state !== 'up') return;
    if (ok) {
      // It answered: a failure later is a new one, not a strike (balancer.ts, MAX_DOWN_MS).
      instance.health.tcp.markUp();
      return;
    }
    instance.health.tcp.markDown(this.#downMs);
    this.#logger.warn(
      { instance: instance.id, address: `${instance.host}:${instance.port}` },
      'instance failed its check; out of rotation',
    );
  }

  async #checkRestored(instance: Instance): Promise<void> {
    const ok = await this.#check(instance.host, instance.port);
    if (ok && this.#unchecked.delete(instance)) {
      instance.health.tcp.markUp();
      this.#logger.info(
        { instance: instance.id, address: `${instance.host}:${instance.port}` },
        'instance passed its check',
      );
    }
  }

  async #checkDown(instance: Instance): Promise<void> {
    const ok = await this.#check(instance.host, instance.port);
    if (instance.health.tcp.state !== 'down') return;
    if (ok) {
      instance.health.tcp.markUp();
      this.#logger.info(
        { instance: instance.id, address: `${instance.host}:${instance.port}` },
        'instance answers again; back in rotation',
      );
    } else {
      instance.health.tcp.markDown(this.#downMs);
    }
  }

  async #checkUdp(instance: Instance): Promise<void> {
    const check = instance.udpCheck;
    if (check === undefined) return;
    const ok = await this.#udpCheck(instance.host, instance.port, udpCheckPayload(check));
    const health = instance.health.udp;
    const address = `${instance.host}:${instance.port}`;
    if (ok) {
      const wasOut = health.state !== 'up';
      // Up already or not, it answered: its past strikes are forgotten (balancer.ts, MAX_DOWN_MS).
      health.markUp();
      if (wasOut)
        this.#logger.info({ instance: instance.id, address }, 'udp check answered; back in rotation');
    } else {
      if (health.state === 'up') {
        this.#logger.warn({ instance: instance.id, address }, 'udp check unanswered; out of rotation');
      }
      health.markDown(this.#downMs);
    }
  }
}
