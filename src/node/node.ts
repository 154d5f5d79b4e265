// HarborNode: the services of one node, their ports and instances, the state
// file behind them, and the lifecycle (start restores state, drain stops).
// The HTTP API (api.ts) calls these methods; nothing here speaks HTTP.
import { randomUUID } from 'node:crypto';
import { protocolLabel } from '../config/protocol.js';
import { udpCheckPayload } from '../config/udp-check.js';
import { HarborError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { DEFAULT_DOWN_MS, type Instance, type InstanceSpec } from './balancer.js';
import { type InstanceCheck, tcpConnectCheck, type UdpInstanceCheck, udpProbeCheck } from './health.js';
import { bindProbe, PortAllocator, type PortProbe, type PortRange } from './ports.js';
import { NodeService } from './service.js';
import type { InstanceRecord, NodeState, ServiceRecord, StateFile } from './state.js';

export interface HarborNodeOptions {
  readonly range: PortRange;
  /** Address the service ports listen on; undefined: all. */
  readonly listenHost?: string | undefined;
  readonly nodeId: string;
  readonly hostname: string;
  readonly host: string;
  readonly extHostname?: string | undefined;
  readonly extHost?: string | undefined;
  /** Without a state file the node keeps its services in memory only. */
  readonly stateFile?: StateFile | undefined;
  readonly udpIdleTimeoutMs: number;
  /** Forwarded TCP connections idle this long either way are closed; 0: never. */
  readonly tcpIdleTimeoutMs?: number | undefined;
  readonly logger: Logger;
  readonly probe?: PortProbe | undefined;
  readonly check?: InstanceCheck | undefined;
  /** The opt-in UDP check (instances registered with udp_check). */
  readonly udpCheck?: UdpInstanceCheck | undefined;
  /** How often a port held by another process, and an instance failing its check, are retried. */
  readonly retryMs?: number | undefined;
  /** How long an instance that refused stays down. */
  readonly downMs?: number | undefined;
}

/** The credentials in the seed's shape and key order. */
export interface Credentials {
  hostname: string;
  host: string;
  port: number;
  name: string;
  node_id: string;
  int_port: number;
  ext_hostname?: string;
  ext_host?: string;
}

export interface ServiceView {
  readonly service: string;
  readonly protocol: string;
  readonly listening: boolean;
  readonly conflict: string | null;
  readonly created_at: string;
  readonly credentials: Credentials;
  readonly instances: ReturnType<NodeService['instanceViews']>;
  readonly counters: ReturnType<NodeService['counters']>;
}

const FIRST_INT_PORT = 4100;
/** Tries to get a port and listen before a POST gives up (another process may grab a probed port). */
const LISTEN_ATTEMPTS = 5;

export class HarborNode {
  readonly #options: HarborNodeOptions;
  readonly #logger: Logger;
  readonly #allocator: PortAllocator;
  readonly #check: InstanceCheck;
  readonly #udpCheck: UdpInstanceCheck;
  readonly #retryMs: number;
  readonly #services = new Map<string, NodeService>();
  /** Instances restored from the state file that have not passed their check yet. */
  readonly #unchecked = new Set<Instance>();
  /** int_ports chosen by creates still under way. */
  readonly #intPortsPending = new Set<number>();
  #retryTimer: NodeJS.Timeout | undefined;
  #retrying = false;
  #reloading: Promise<void> = Promise.resolve();
  #draining = false;
  #lifecycle: 'created' | 'starting' | 'listening' | 'draining' | 'stopped' = 'created';

  constructor(options: HarborNodeOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#allocator = new PortAllocator({
      range: options.range,
      probe: options.probe ?? bindProbe(options.listenHost),
    });
    this.#check = options.check ?? tcpConnectCheck();
    this.#udpCheck = options.udpCheck ?? udpProbeCheck();
    this.#retryMs = options.retryMs ?? 3000;
  }

  get services(): IterableIterator<NodeService> {
    return this.#services.values();
  }

  /** created, starting, listening, draining, stopped. */
  get lifecycle(): string {
    return this.#lifecycle;
  }

  /** Restores the state file (E_STATE_CORRUPT stops here), listens on every port, checks restored instances. */
  async start(): Promise<void> {
    this.#lifecycle = 'starting';
    const leftovers = await this.#options.stateFile?.prepare();
    if (leftovers && leftovers.length > 0) {
      this.#logger.info({ removed: leftovers }, 'removed temporary state files a stopped node left');
    }
    const state = await this.#options.stateFile?.load();
    for (const record of state?.services ?? []) {
      this.#allocator.reserve(record.port, record.name);
      const service = this.#newService(record);
      for (const inst of record.instances) this.#restore(service, inst);
      this.#services.set(service.id, service);
      const { first, last } = this.#options.range;
      if (record.port < first || record.port > last) {
        this.#logger.warn(
          { service: record.name, port: record.port },
          'restored port lies outside the range; kept',
        );
      }
    }
    await Promise.all([...this.#services.values()].map((s) => this.#listen(s, true)));
    if (this.#services.size > 0) {
      this.#logger.info(
        { services: this.#services.size, state: this.#options.stateFile?.path },
        'state restored',
      );
    }
    void this.#checkInstances();
    this.#retryTimer = setInterval(() => void this.#retry(), this.#retryMs);
    this.#retryTimer.unref();
    this.#lifecycle = 'listening';
  }

  /** Provisions a service: a free port, listeners, persisted. Throws E_PORT_RANGE_EXHAUSTED (503). */
  async createService(name: string, intPort?: number): Promise<Credentials> {
    // Chosen and held before the first await: creates that overlap each get their own
    // (issue 9, item 11: they all got 4100).
    const chosenIntPort = intPort ?? this.#lowestFreeIntPort();
    const held = !this.#intPortsPending.has(chosenIntPort);
    if (held) this.#intPortsPending.add(chosenIntPort);
    try {
      return await this.#provision(name, chosenIntPort);
    } finally {
      if (held) this.#intPortsPending.delete(chosenIntPort);
    }
  }

  async #provision(name: string, chosenIntPort: number): Promise<Credentials> {
    for (let attempt = 1; ; attempt++) {
      const port = await this.#allocator.acquire();
      const service = this.#newService({
        id: randomUUID(),
        name,
        port,
        intPort: chosenIntPort,
        createdAt: new Date().toISOString(),
      });
      const failures = await service.listen();
      if (failures.length > 0) {
        // Someone bound the port between the probe and the listen: give it back and try another.
        await service.close();
        this.#allocator.release(port);
        if (attempt < LISTEN_ATTEMPTS && failures.every((f) => f.code === 'E_PORT_IN_USE')) continue;
        throw failures[0]!;
      }
      this.#services.set(service.id, service);
      try {
        await this.#persist();
      } catch (error) {
        this.#services.delete(service.id);
        await service.close();
        this.#allocator.release(port);
        throw error;
      }
      this.#logger.info(
        { service: name, id: service.id, port, protocol: this.#protocol(service) },
        'service provisioned',
      );
      return this.credentials(service);
    }
  }

  async deleteService(id: string): Promise<void> {
    const service = this.#require(id);
    // Written first: if the state file cannot be written, the service stays as it was.
    this.#services.delete(id);
    try {
      await this.#persist();
    } catch (error) {
      this.#services.set(id, service);
      throw error;
    }
    for (const instance of service.instances) this.#unchecked.delete(instance);
    await service.close();
    this.#allocator.release(service.port);
    this.#logger.info({ service: service.name, id, port: service.port }, 'service removed');
  }

  /**
   * Registers or refreshes an instance; returns true when it is new. Refreshes
   * that change nothing are not written; a change the state file refuses is
   * undone (E_STATE_WRITE).
   */
  async putInstance(serviceId: string, instanceId: string, spec: InstanceSpec): Promise<boolean> {
    const service = this.#require(serviceId);
    const before = service.instance(instanceId);
    const wasUnchecked = before !== undefined && this.#unchecked.delete(before);
    // Kept apart: a refresh changes the instance object in place.
    const previous = before?.spec();
    const changed = previous?.ttl !== spec.ttl || previous?.udpCheck !== spec.udpCheck;
    const result = service.upsert(instanceId, spec);
    // A sidecar refreshing its registration vouches for an instance restored from state.
    if (result === 'refreshed' && wasUnchecked) before.health.tcp.markUp();
    if (changed || result !== 'refreshed') {
      try {
        await this.#persist();
      } catch (error) {
        if (previous === undefined) service.remove(instanceId);
        else service.upsert(instanceId, previous);
        throw error;
      }
    }
    if (result !== 'refreshed') {
      this.#logger.info(
        { service: service.name, instance: instanceId, address: `${spec.host}:${spec.port}`, ttl: spec.ttl },
        result === 'created' ? 'instance registered' : 'instance address changed',
      );
    }
    return result === 'created';
  }

  async deleteInstance(serviceId: string, instanceId: string): Promise<void> {
    const service = this.#require(serviceId);
    const instance = service.instance(instanceId);
    if (!instance || !service.remove(instanceId)) {
      throw new HarborError('E_API_NOT_FOUND', `service ${serviceId} has no instance ${instanceId}`);
    }
    try {
      await this.#persist();
    } catch (error) {
      service.upsert(instanceId, instance.spec());
      throw error;
    }
    this.#unchecked.delete(instance);
    this.#logger.info({ service: service.name, instance: instanceId }, 'instance removed');
  }

  view(id: string): ServiceView {
    return this.#view(this.#require(id));
  }

  list(): ServiceView[] {
    return [...this.#services.values()].map((s) => this.#view(s));
  }

  credentials(service: NodeService): Credentials {
    const o = this.#options;
    const credentials: Credentials = {
      hostname: o.hostname,
      host: o.host,
      port: service.port,
      name: service.id,
      node_id: o.nodeId,
      int_port: service.intPort,
    };
    // Seed: "If Harbor is set up to allow public port access, the following two settings will also be displayed".
    if (o.extHostname || o.extHost) {
      credentials.ext_hostname = o.extHostname ?? '';
      credentials.ext_host = o.extHost ?? '';
    }
    return credentials;
  }

  /**
   * SIGHUP: re-reads the state file and applies what differs, by service id (services
   * added or removed by hand, instances added, removed or moved), then retries port
   * conflicts and instance checks. A state file that cannot be read changes nothing.
   * Serialised; ignored while draining. Returns a one-line summary for the log.
   */
  reload(trigger: string): Promise<string> {
    const run = this.#reloading.then(() => this.#reload(trigger));
    this.#reloading = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #reload(trigger: string): Promise<string> {
    if (this.#draining) return `${trigger} ignored while draining`;
    const file = this.#options.stateFile;
    let summary = 'no state file to re-read';
    if (file) {
      let state: NodeState | undefined;
      try {
        state = await file.load();
      } catch (error) {
        this.#logger.error({ err: error, trigger }, 'state file not reloaded; everything stays as it was');
        return `state file not reloaded: ${(error as Error).message}`;
      }
      summary = await this.#apply(state?.services ?? []);
    }
    await this.#retry();
    this.#logger.info({ trigger }, `reloaded: ${summary}; port conflicts and instance checks retried`);
    return summary;
  }

  /** Makes the running services what `records` say, by id; the file already says it, so nothing is written. */
  async #apply(records: readonly ServiceRecord[]): Promise<string> {
    const wanted = new Map(records.map((r) => [r.id, r]));
    let added = 0;
    let removed = 0;
    let instances = 0;
    for (const [id, service] of this.#services) {
      if (wanted.has(id)) continue;
      this.#services.delete(id);
      for (const instance of service.instances) this.#unchecked.delete(instance);
      await service.close();
      this.#allocator.release(service.port);
      removed++;
    }
    for (const record of records) {
      let service = this.#services.get(record.id);
      if (service === undefined) {
        this.#allocator.reserve(record.port, record.name);
        service = this.#newService(record);
        this.#services.set(service.id, service);
        await this.#listen(service, true);
        added++;
      }
      const kept = new Set(record.instances.map((i) => i.id));
      for (const instance of [...service.instances]) {
        if (kept.has(instance.id)) continue;
        this.#unchecked.delete(instance);
        service.remove(instance.id);
        instances++;
      }
      for (const inst of record.instances) {
        const before = service.instance(inst.id);
        if (before && before.host === inst.host && before.port === inst.port) {
          service.upsert(inst.id, inst); // the same address: its TTL as the file says, re-armed
          continue;
        }
        if (before) this.#unchecked.delete(before);
        this.#restore(service, inst);
        instances++;
      }
    }
    return `${added} service(s) added, ${removed} removed, ${instances} instance change(s)`;
  }

  /**
   * An instance from the state file (at start, or added by hand before a SIGHUP): its TCP side
   * is checked (a connect) before it gets connections; its UDP side cannot be checked that way
   * (an app may answer UDP only), so it is up at once, and a UDP failure marks it down like any
   * other (issue 9, item 7).
   */
  #restore(service: NodeService, record: InstanceRecord): void {
    service.upsert(record.id, record, { tcp: 'checking', udp: 'up' });
    if (service.protocols.includes('tcp')) this.#unchecked.add(service.instance(record.id)!);
  }

  /** Stops accepting everywhere; open TCP connections get until the deadline. State stays as it is on disk. */
  async drain(deadlineMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    this.#lifecycle = 'draining';
    clearInterval(this.#retryTimer);
    this.#unchecked.clear();
    await Promise.all([...this.#services.values()].map((s) => s.close(deadlineMs)));
    this.#lifecycle = 'stopped';
  }

  #newService(record: Omit<ServiceRecord, 'instances'>): NodeService {
    return new NodeService({
      record,
      listenHost: this.#options.listenHost,
      logger: this.#logger,
      udpIdleTimeoutMs: this.#options.udpIdleTimeoutMs,
      tcpIdleTimeoutMs: this.#options.tcpIdleTimeoutMs,
      downMs: this.#options.downMs ?? DEFAULT_DOWN_MS,
      onExpire: (service, instance) => {
        this.#unchecked.delete(instance);
        this.#logger.info(
          { service: service.name, instance: instance.id, ttl: instance.ttl },
          'instance expired',
        );
        this.#persist().catch((error: unknown) => this.#logger.error({ err: error }, 'state not saved'));
      },
    });
  }

  /** Listens; a port held by another process is logged as a conflict (first time) and left to #retry. */
  async #listen(service: NodeService, first: boolean): Promise<void> {
    const wasConflict = service.conflict !== undefined;
    const failures = await service.listen();
    for (const failure of failures) {
      const conflict = failure.code === 'E_PORT_IN_USE';
      if (first || !wasConflict) {
        this.#logger.error(
          {
            code: conflict ? 'E_PORT_TAKEN' : failure.code,
            service: service.name,
            id: service.id,
            port: service.port,
          },
          `port conflict: ${failure.message}; retrying every ${Math.round(this.#retryMs / 1000)} s`,
        );
      }
    }
    if (failures.length === 0 && wasConflict) {
      this.#logger.info({ service: service.name, port: service.port }, 'port conflict resolved; listening');
    }
  }

  async #retry(): Promise<void> {
    if (this.#retrying || this.#draining) return;
    this.#retrying = true;
    try {
      for (const service of this.#services.values()) {
        if (!service.listening) await this.#listen(service, false);
      }
      await this.#checkInstances();
    } finally {
      this.#retrying = false;
    }
  }

  /**
   * Checks (a TCP connect) the restored instances not yet checked, and every instance whose
   * TCP side is down: one that answers is up at once; one that still does not stays down
   * (its down time starts over), so a blackholed instance costs one client its connect
   * timeout, not one client every down time (issue 9: HAProxy's and Envoy's active checks).
   */
  async #checkInstances(): Promise<void> {
    const down: Instance[] = [];
    const udpChecked: Instance[] = [];
    for (const service of this.#services.values()) {
      const tcp = service.protocols.includes('tcp');
      const udp = service.protocols.includes('udp');
      for (const instance of service.instances) {
        if (tcp && instance.health.tcp.state === 'down' && !this.#unchecked.has(instance))
          down.push(instance);
        if (udp && instance.udpCheck !== undefined) udpChecked.push(instance);
      }
    }
    const downMs = this.#options.downMs ?? DEFAULT_DOWN_MS;
    await Promise.all([
      ...[...this.#unchecked].map(async (instance) => {
        const ok = await this.#check(instance.host, instance.port);
        if (ok && this.#unchecked.delete(instance)) {
          instance.health.tcp.markUp();
          this.#logger.info(
            { instance: instance.id, address: `${instance.host}:${instance.port}` },
            'instance passed its check',
          );
        }
      }),
      ...udpChecked.map((instance) => this.#checkUdp(instance, downMs)),
      ...down.map(async (instance) => {
        const ok = await this.#check(instance.host, instance.port);
        if (instance.health.tcp.state !== 'down') return;
        if (ok) {
          instance.health.tcp.markUp();
          this.#logger.info(
            { instance: instance.id, address: `${instance.host}:${instance.port}` },
            'instance answers again; back in rotation',
          );
        } else {
          instance.health.tcp.markDown(downMs);
        }
      }),
    ]);
  }

  /**
   * The opt-in UDP check, of every instance that has one, up or down: a blackholed UDP
   * instance sends no ICMP, so only an unanswered check takes it out of rotation.
   */
  async #checkUdp(instance: Instance, downMs: number): Promise<void> {
    const check = instance.udpCheck;
    if (check === undefined) return;
    const ok = await this.#udpCheck(instance.host, instance.port, udpCheckPayload(check));
    const health = instance.health.udp;
    const address = `${instance.host}:${instance.port}`;
    if (ok && health.state !== 'up') {
      health.markUp();
      this.#logger.info({ instance: instance.id, address }, 'udp check answered; back in rotation');
    } else if (!ok) {
      if (health.state === 'up') {
        this.#logger.warn({ instance: instance.id, address }, 'udp check unanswered; out of rotation');
      }
      health.markDown(downMs);
    }
  }

  #require(id: string): NodeService {
    const service = this.#services.get(id);
    if (!service) throw new HarborError('E_API_NOT_FOUND', `no service with id ${id}`);
    return service;
  }

  #lowestFreeIntPort(): number {
    const used = new Set(
      [...this.#services.values()].map((s) => s.intPort).concat([...this.#intPortsPending]),
    );
    let port = FIRST_INT_PORT;
    while (used.has(port)) port++;
    return port;
  }

  #protocol(service: NodeService): string {
    // On the node an https service is plain TCP: TLS ends in the container.
    return protocolLabel({ transport: service.transport, https: false });
  }

  #view(service: NodeService): ServiceView {
    return {
      service: service.name,
      protocol: this.#protocol(service),
      listening: service.listening,
      conflict: service.conflict ?? null,
      created_at: service.createdAt,
      credentials: this.credentials(service),
      instances: service.instanceViews(),
      counters: service.counters(),
    };
  }

  #snapshot(): NodeState {
    return { services: [...this.#services.values()].map((s) => s.record()) };
  }

  async #persist(): Promise<void> {
    const file = this.#options.stateFile;
    if (file) await file.save(this.#snapshot());
  }
}
