// HarborNode: the services of one node, their ports and instances, and the
// lifecycle (start restores them, drain stops). Where they are kept is the
// store's business (store/): a change goes to the store first and reaches
// this node's listeners once the store took it; changes made through other
// nodes arrive by a level-triggered sync (`sync()`: the store's revision
// compared on a timer). The HTTP API (api.ts) calls these methods; nothing
// here speaks HTTP.
import { randomUUID } from 'node:crypto';
import { NODE_DEFAULTS } from '../config/defaults.js';
import { protocolLabel } from '../config/protocol.js';
import { HarborError, isHarborError } from '../errors/index.js';
import type { ProxyProtocolVersion } from '../forward/types.js';
import type { Logger } from '../log/index.js';
import { DEFAULT_DOWN_MS, type Instance, type InstanceSpec } from './balancer.js';
import { InstanceChecks } from './checks.js';
import { type DataplaneStatus, type KernelCounters, NftablesDataplane } from './dataplane/index.js';
import { preflight, warnConntrackHeadroom } from './dataplane/preflight.js';
import type { InstanceCheck, UdpInstanceCheck } from './health.js';
import { Journal, type JournalChange } from './journal.js';
import { MemberBoard } from './members.js';
import { bindProbe, PortAllocator, type PortProbe, type PortRange } from './ports.js';
import { NodeService } from './service.js';
import type { FixedCredentials, ServiceRecord, StateFile } from './state.js';
import { nameTaken } from './store/errors.js';
import {
  FileStore,
  type MemberReport,
  type MemberServiceView,
  type MemberView,
  MemoryStore,
  type NodeStore,
  type StoredInstance,
  type StoredService,
} from './store/index.js';

export interface HarborNodeOptions {
  readonly range: PortRange;
  /** Address the service ports listen on; undefined: all. */
  readonly listenHost?: string | undefined;
  readonly nodeId: string;
  readonly hostname: string;
  readonly host: string;
  readonly extHostname?: string | undefined;
  readonly extHost?: string | undefined;
  /** Where services are kept; default: the state file when given, else memory. */
  readonly store?: NodeStore | undefined;
  /** Short form of a file store. */
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
  /** How often the store's revision is compared with this node's (a shared store: changes by other nodes). */
  readonly syncMs?: number | undefined;
  /** This node's name among the members of a cluster (--member). */
  readonly member?: string | undefined;
  /** A PROXY protocol header (v1 or v2) first on every TCP connection to an instance: the client's address. */
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  /** UDP sessions one client address may hold per service (--udp-sessions-per-source). */
  readonly udpSessionsPerSource?: number | undefined;
  /** Who forwards new flows: this process (userspace, the default) or the kernel, programmed through nftables. */
  readonly dataplane?: 'userspace' | 'nftables' | undefined;
  /** How often the kernel data plane reads its counters. */
  readonly dataplanePollMs?: number | undefined;
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
  /** The kernel's counters (--dataplane nftables): flows it forwarded, their bytes, ICMP errors of UDP flows. */
  readonly kernel?: KernelCounters;
  /** Each member's own observation of this service (one entry per node of a cluster; this node alone otherwise). */
  readonly nodes: readonly MemberServiceReport[];
}

/** One member's observation of one service; `known: false` when that node has not synced it yet. */
export interface MemberServiceReport extends MemberServiceView {
  readonly member: string;
  readonly age_ms: number;
  readonly known: boolean;
}

/** What applying a snapshot did; `complete` is false when a service could not be taken yet (its port held by a create in flight). */
interface Applied {
  readonly summary: string;
  readonly complete: boolean;
}

/** The store as this node sees it, for /status, /metrics and the API's reads. */
export interface StoreStatus {
  readonly store: string;
  readonly kind: string;
  readonly connected: boolean;
  readonly revision: string | null;
  /** When this node last compared its revision with the store's (ISO time), null before the first. */
  readonly synced_at: string | null;
  /** Milliseconds since then: how stale what this node serves may be. */
  readonly stale_ms: number | null;
  /** Revisions this node was behind at its last sync. */
  readonly lag: number;
  /** Snapshots re-read because the revision moved, the store came back empty, or lost writes. */
  readonly resyncs: number;
}

const FIRST_INT_PORT = 4100;
/** Tries to get a port, claim it in the store and listen before a POST gives up. */
const CREATE_ATTEMPTS = 10;
/** A TTL the store could not be asked about (it is away) is asked again this soon: nothing expires meanwhile. */
const TTL_RETRY_MS = 1_000;
const DEFAULT_SYNC_MS = { shared: 250, local: 1_000 };
const DEFAULT_MEMBER = 'harbor-node';

export class HarborNode {
  readonly #options: HarborNodeOptions;
  readonly #logger: Logger;
  readonly #store: NodeStore;
  readonly #allocator: PortAllocator;
  readonly #checks: InstanceChecks;
  readonly #retryMs: number;
  readonly #syncMs: number;
  readonly #services = new Map<string, NodeService>();
  readonly #journal = new Journal();
  readonly #members: MemberBoard;
  /** The kernel data plane (--dataplane nftables); undefined: this process forwards everything. */
  readonly #dataplane: NftablesDataplane | undefined;
  /** int_ports chosen by creates still under way. */
  readonly #intPortsPending = new Set<number>();
  #retryTimer: NodeJS.Timeout | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #retrying = false;
  /** Changes to the services, store first then here, one at a time (API writes, syncs, expiries, reloads). */
  #serial: Promise<unknown> = Promise.resolve();
  #draining = false;
  #lifecycle: 'created' | 'starting' | 'listening' | 'draining' | 'stopped' = 'created';
  #revision: string | undefined;
  #syncedAt: number | undefined;
  #lag = 0;
  #resyncs = 0;
  #storeDownSince: number | undefined;

  constructor(options: HarborNodeOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#store =
      options.store ??
      (options.stateFile ? new FileStore(options.stateFile, options.logger) : new MemoryStore());
    this.#allocator = new PortAllocator({
      range: options.range,
      probe: options.probe ?? bindProbe(options.listenHost),
    });
    const kernel = options.dataplane === 'nftables';
    this.#checks = new InstanceChecks({
      logger: options.logger,
      check: options.check,
      udpCheck: options.udpCheck,
      downMs: options.downMs ?? DEFAULT_DOWN_MS,
      all: kernel,
    });
    this.#dataplane = kernel
      ? new NftablesDataplane({
          logger: options.logger,
          listen: options.listenHost,
          pollMs: options.dataplanePollMs,
          services: () => this.#services.values(),
          onUnreachable: (service, refusing) => this.#udpUnreachable(service, refusing),
        })
      : undefined;
    this.#retryMs = options.retryMs ?? NODE_DEFAULTS.checkIntervalMs;
    this.#syncMs = options.syncMs ?? (this.#store.shared ? DEFAULT_SYNC_MS.shared : DEFAULT_SYNC_MS.local);
    const member = options.member ?? DEFAULT_MEMBER;
    this.#members = new MemberBoard(this.#store, member, (other) =>
      this.#logger.warn(
        { code: 'W_MEMBER_CLASH', member, other },
        `another harbor-node publishes as member ${member} too (${other}); each overwrites the other's view of ports and instances: give every node its own --member`,
      ),
    );
  }

  get services(): IterableIterator<NodeService> {
    return this.#services.values();
  }

  /** created, starting, listening, draining, stopped. */
  get lifecycle(): string {
    return this.#lifecycle;
  }

  get store(): NodeStore {
    return this.#store;
  }

  storeStatus(): StoreStatus {
    const now = Date.now();
    return {
      store: this.#store.description,
      kind: this.#store.kind,
      connected: this.#storeDownSince === undefined && this.#syncedAt !== undefined,
      revision: this.#revision ?? null,
      synced_at: this.#syncedAt === undefined ? null : new Date(this.#syncedAt).toISOString(),
      stale_ms: this.#syncedAt === undefined ? null : now - this.#syncedAt,
      lag: this.#lag,
      resyncs: this.#resyncs,
    };
  }

  /** Opens the store (E_STATE_* stops here), listens on every port, checks restored instances, starts syncing. */
  async start(): Promise<void> {
    this.#lifecycle = 'starting';
    const snapshot = await this.#store.open();
    if (snapshot) {
      await this.#exclusive(async () => {
        this.#synced(snapshot.revision, await this.#apply(snapshot.services, true));
      });
      if (this.#services.size > 0) {
        this.#logger.info(
          { services: this.#services.size, store: this.#store.description },
          'state restored',
        );
      }
    }
    if (this.#dataplane !== undefined) {
      await preflight({ remoteInstances: this.#dataplane.hasRemoteInstances() });
      const started = performance.now();
      await this.#dataplane.start();
      const ms = Math.round(performance.now() - started);
      warnConntrackHeadroom(this.#logger);
      this.#logger.info(
        { dataplane: 'nftables', services: this.#services.size, ms },
        'kernel data plane programmed',
      );
    }
    void this.#checks.run(this.#services.values());
    this.#retryTimer = setInterval(() => void this.#retry(), this.#retryMs);
    this.#retryTimer.unref();
    this.#syncTimer = setInterval(() => void this.sync(), this.#syncMs);
    this.#syncTimer.unref();
    this.#lifecycle = 'listening';
  }

  /** Provisions a service: a free port claimed in the store, listeners. Throws E_PORT_RANGE_EXHAUSTED (503), E_STORE_UNAVAILABLE (503). */
  async createService(name: string, intPort?: number): Promise<Credentials> {
    // The store refuses a taken name atomically; this only answers sooner when the node knows it.
    const existing = [...this.#services.values()].find((s) => s.name === name);
    if (existing) throw nameTaken(name, existing.id);
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
      const record: ServiceRecord = {
        id: randomUUID(),
        name,
        port,
        intPort: chosenIntPort,
        createdAt: new Date().toISOString(),
        credentials: this.#fixedCredentials(),
        instances: [],
      };
      const outcome = await this.#exclusive(async () => {
        try {
          this.#written(await this.#store.createService(record), { op: 'create', record });
        } catch (error) {
          this.#allocator.release(port);
          // Claimed through another node this one has not synced yet: learn it, take another.
          if (isHarborError(error) && error.code === 'E_PORT_TAKEN') return 'retry';
          throw error;
        }
        const service = this.#newService(record);
        const failures = await service.listen();
        if (failures.length === 0) {
          this.#services.set(service.id, service);
          return service;
        }
        // Another process bound the port between the probe and the listen: give it back, try another.
        await service.close();
        this.#allocator.release(port);
        await this.#store.deleteService(record.id).then(
          (revision) => this.#written(revision, { op: 'delete', id: record.id }),
          (error: unknown) =>
            this.#logger.error({ err: error, id: record.id }, 'unused service not removed from the store'),
        );
        if (failures.every((f) => f.code === 'E_PORT_IN_USE')) return 'retry';
        throw failures[0]!;
      });
      if (outcome === 'retry') {
        if (attempt >= CREATE_ATTEMPTS) {
          throw new HarborError(
            'E_PORT_TAKEN',
            `${name}: no port could be claimed and bound in ${CREATE_ATTEMPTS} attempts`,
          );
        }
        await this.sync();
        continue;
      }
      this.#logger.info(
        { service: name, id: outcome.id, port, protocol: this.#protocol(outcome) },
        'service provisioned',
      );
      return this.credentials(outcome);
    }
  }

  async deleteService(id: string): Promise<void> {
    await this.ensureKnown(id);
    const service = await this.#exclusive(async () => {
      const service = this.#require(id);
      // The store first: if it refuses, the service stays as it was.
      this.#written(await this.#store.deleteService(id), { op: 'delete', id });
      this.#services.delete(id);
      return service;
    });
    await this.#remove(service);
    this.#logger.info({ service: service.name, id, port: service.port }, 'service removed');
  }

  /**
   * Registers or refreshes an instance; returns true when it is new (in the store: a
   * cluster answers 201 once, whichever node it reaches). Refreshes that change
   * nothing are not written to a file; a change the store refuses changes nothing here.
   */
  async putInstance(serviceId: string, instanceId: string, spec: InstanceSpec): Promise<boolean> {
    await this.ensureKnown(serviceId);
    const { result, service } = await this.#exclusive(async () => {
      const service = this.#require(serviceId);
      const instance = { id: instanceId, ...spec };
      const { result, revision } = await this.#store.putInstance(serviceId, instance);
      if (revision !== undefined) this.#written(revision, { op: 'put', serviceId, instance });
      const before = service.instance(instanceId);
      const local = service.upsert(instanceId, spec);
      // A sidecar refreshing its registration vouches for an instance restored from state.
      if (local === 'refreshed' && this.#checks.vouch(before!)) before!.health.tcp.markUp();
      if (local === 'replaced' && before) this.#checks.forget(before);
      return { result, service };
    });
    if (result !== 'refreshed') {
      this.#logger.info(
        { service: service.name, instance: instanceId, address: `${spec.host}:${spec.port}`, ttl: spec.ttl },
        result === 'created' ? 'instance registered' : 'instance address changed',
      );
    }
    return result === 'created';
  }

  async deleteInstance(serviceId: string, instanceId: string): Promise<void> {
    await this.ensureKnown(serviceId);
    const service = await this.#exclusive(async () => {
      const service = this.#require(serviceId);
      this.#written(await this.#store.deleteInstance(serviceId, instanceId), {
        op: 'unregister',
        serviceId,
        instanceId,
      });
      const instance = service.instance(instanceId);
      if (instance) this.#checks.forget(instance);
      service.remove(instanceId);
      return service;
    });
    this.#logger.info({ service: service.name, instance: instanceId }, 'instance removed');
  }

  view(id: string): ServiceView {
    return this.#view(this.#require(id), this.members());
  }

  /**
   * A service this node does not know yet may have been created through another node since
   * its last sync (a sidecar registers through any node): it syncs once before a 404.
   */
  async ensureKnown(ref: string): Promise<void> {
    if (this.idOf(ref) === undefined && this.#store.shared) await this.sync();
  }

  /**
   * The id of the service `ref` names: `ref` itself when it is an id, else the id of the
   * service of that name; undefined when neither. A name that two services share (a state
   * file written before names were unique) is E_SERVICE_EXISTS: the id must be given.
   */
  idOf(ref: string): string | undefined {
    if (this.#services.has(ref)) return ref;
    const named = [...this.#services.values()].filter((s) => s.name === ref);
    if (named.length > 1) {
      throw new HarborError(
        'E_SERVICE_EXISTS',
        `${named.length} services are named ${ref} (ids ${named.map((s) => s.id).join(', ')}): give the id`,
      );
    }
    return named[0]?.id;
  }

  list(): ServiceView[] {
    const members = this.members();
    return [...this.#services.values()].map((s) => this.#view(s, members));
  }

  /** Every member's own view (this node's now, the others' as last read from the store). */
  members(): MemberReport[] {
    return this.#members.views(this.#memberView());
  }

  credentials(service: NodeService): Credentials {
    const fixed = service.credentials ?? this.#fixedCredentials();
    const credentials: Credentials = {
      hostname: fixed.hostname,
      host: fixed.host,
      port: service.port,
      name: service.id,
      node_id: fixed.node_id,
      int_port: service.intPort,
    };
    // Seed: "If Harbor is set up to allow public port access, the following two settings will also be displayed".
    if (fixed.ext_hostname !== undefined || fixed.ext_host !== undefined) {
      credentials.ext_hostname = fixed.ext_hostname ?? '';
      credentials.ext_host = fixed.ext_host ?? '';
    }
    return credentials;
  }

  /**
   * SIGHUP: re-reads the store (a file edited by hand) and applies what differs, by service
   * id, then retries port conflicts and instance checks. A file that cannot be read changes
   * nothing. Ignored while draining. Returns a one-line summary for the log.
   */
  async reload(trigger: string): Promise<string> {
    if (this.#draining) return `${trigger} ignored while draining`;
    let summary: string;
    try {
      summary = await this.#exclusive(async () => {
        const snapshot = await this.#store.snapshot(true);
        const applied = await this.#apply(snapshot.services, true);
        this.#synced(snapshot.revision, applied);
        return applied.summary;
      });
    } catch (error) {
      const what = this.#store.kind === 'file' ? 'state file' : 'store';
      this.#logger.error({ err: error, trigger }, `${what} not reloaded; everything stays as it was`);
      return `${what} not reloaded: ${(error as Error).message}`;
    }
    await this.#retry();
    this.#logger.info({ trigger }, `reloaded: ${summary}; port conflicts and instance checks retried`);
    return summary;
  }

  /**
   * Compares the store's revision with this node's and re-reads a snapshot when it moved:
   * on a timer, after a failed claim, never on a notification alone. A store that came back
   * empty gets this node's services back; one that lost writes gets them again (journal.ts).
   */
  async sync(): Promise<void> {
    if (this.#draining) return;
    await this.#syncRevision();
    if (!this.#draining) void this.#members.publish(this.#memberView());
  }

  #syncRevision(): Promise<void> {
    return this.#exclusive(async () => {
      let result: Awaited<ReturnType<NodeStore['sync']>>;
      try {
        result = await this.#store.sync(this.#revision);
      } catch (error) {
        this.#storeUnreachable(error);
        return;
      }
      this.#storeReachable();
      this.#lag = result.lag;
      if (
        result.revision === this.#revision &&
        (result.revision !== undefined || this.#syncedAt !== undefined)
      ) {
        this.#syncedAt = Date.now();
        return;
      }
      try {
        if (result.revision === undefined && this.#revision !== undefined) await this.#reassert();
        else if (result.diverged) await this.#replay();
        const snapshot = await this.#store.snapshot();
        // Never synced before (the store was away at start): what it holds is restored, and checked.
        this.#synced(snapshot.revision, await this.#apply(snapshot.services, this.#syncedAt === undefined));
        this.#resyncs++;
      } catch (error) {
        this.#storeUnreachable(error);
      }
    });
  }

  /** Stops accepting everywhere; open TCP connections get until the deadline. The store keeps everything. */
  async drain(deadlineMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    this.#lifecycle = 'draining';
    clearInterval(this.#retryTimer);
    clearInterval(this.#syncTimer);
    this.#checks.clear();
    // The kernel's table stays: live flows keep their translation (harbor-node dataplane clean removes it).
    await this.#dataplane?.close();
    await Promise.all([...this.#services.values()].map((s) => s.close(deadlineMs)));
    await this.#serial.catch(() => undefined);
    await this.#members.withdraw();
    await this.#store.close();
    this.#lifecycle = 'stopped';
  }

  /** Runs `work` after every change before it: the store and this node's services change in one order. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(work, work);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  /** Notes a change this node made: its revision follows when nothing else changed meanwhile, and a shared store journals it. */
  #written(revision: string, change: JournalChange): void {
    if (this.#store.shared) this.#journal.record(revision, change);
    this.#advance(revision);
  }

  /** Takes a revision this node's own change produced, when nothing else changed meanwhile (else the next sync re-reads). */
  #advance(revision: string): void {
    if (this.#revision !== undefined && sequence(revision) === sequence(this.#revision) + 1) {
      this.#revision = revision;
    }
  }

  /** Takes the store's revision once a snapshot is applied whole; one left partly applied is read again at the next sync. */
  #synced(revision: string, applied: Applied): void {
    this.#revision = revision === '' || !applied.complete ? undefined : revision;
    this.#syncedAt = Date.now();
  }

  #storeUnreachable(error: unknown): void {
    if (this.#storeDownSince !== undefined) return;
    this.#storeDownSince = Date.now();
    this.#logger.warn(
      { code: isHarborError(error) ? error.code : undefined, store: this.#store.description },
      `store unreachable: forwarding goes on with what this node knew; changes answer 503 until it is back (${(error as Error).message})`,
    );
  }

  #storeReachable(): void {
    if (this.#storeDownSince === undefined) return;
    const seconds = ((Date.now() - this.#storeDownSince) / 1000).toFixed(1);
    this.#storeDownSince = undefined;
    this.#logger.info({ store: this.#store.description, down_s: Number(seconds) }, 'store reachable again');
  }

  /** The store holds nothing (a Redis restarted empty): puts back every service and instance this node knows. */
  async #reassert(): Promise<void> {
    let restored = 0;
    for (const service of this.#services.values()) {
      const record = service.record();
      restored += await this.#again({ op: 'create', record: { ...record, instances: [] } });
      for (const instance of record.instances) {
        await this.#again({ op: 'put', serviceId: record.id, instance });
      }
    }
    this.#logger.warn(
      { store: this.#store.description, services: restored },
      'store came back empty: services put back from this node',
    );
  }

  /** The store lost writes this node made (a failover): makes those changes again, oldest first. */
  async #replay(): Promise<void> {
    const lost = await this.#store.lostRevisions(this.#journal.revisions);
    const entries = this.#journal.take(lost);
    for (const entry of entries) await this.#again(entry.change);
    this.#logger.warn(
      { store: this.#store.description, changes: entries.length },
      'store lost changes this node made (a failover?): made again',
    );
  }

  /** One change made again: what already is as it says counts as done; a port now held by another service is E_STORE_CONFLICT (logged, the other keeps it). */
  async #again(change: JournalChange): Promise<number> {
    try {
      let revision: string | undefined;
      if (change.op === 'create') revision = await this.#store.createService(change.record);
      else if (change.op === 'delete') revision = await this.#store.deleteService(change.id);
      else if (change.op === 'put')
        revision = (await this.#store.putInstance(change.serviceId, change.instance)).revision;
      else revision = await this.#store.deleteInstance(change.serviceId, change.instanceId);
      if (revision !== undefined) this.#journal.record(revision, change);
      return 1;
    } catch (error) {
      if (!isHarborError(error)) throw error;
      if (error.code === 'E_STORE_UNAVAILABLE') throw error;
      if (error.code === 'E_PORT_TAKEN' || error.code === 'E_SERVICE_EXISTS') {
        this.#logger.error(
          { code: 'E_STORE_CONFLICT', service: change.op === 'create' ? change.record.name : undefined },
          `a service the store lost cannot be put back: ${error.message}; the service that holds its ${error.code === 'E_PORT_TAKEN' ? 'port' : 'name'} now keeps it`,
        );
      }
      return 0;
    }
  }

  /**
   * Makes the running services what `records` say, by id (the store says it already; nothing
   * is written). `restored`: they come from a store at start or a reload, so their TCP side is
   * checked before it gets connections; otherwise another node registered them and they are up.
   */
  async #apply(records: readonly StoredService[], restored: boolean): Promise<Applied> {
    const wanted = new Map(records.map((r) => [r.id, r]));
    let added = 0;
    let removed = 0;
    let instances = 0;
    let complete = true;
    for (const [id, service] of this.#services) {
      if (wanted.has(id)) continue;
      this.#services.delete(id);
      await this.#remove(service);
      removed++;
    }
    for (const record of records) {
      let service = this.#services.get(record.id);
      if (service === undefined) {
        try {
          this.#allocator.reserve(record.port, record.name);
        } catch (error) {
          // A create of this node holds the port this instant; the next sync sees the store again.
          this.#logger.warn({ service: record.name, port: record.port }, (error as Error).message);
          complete = false;
          continue;
        }
        service = this.#newService(record);
        this.#services.set(service.id, service);
        await this.#listen(service, true);
        this.#warnOutsideRange(record);
        added++;
      }
      instances += this.#applyInstances(service, record.instances, restored);
    }
    return {
      summary: `${added} service(s) added, ${removed} removed, ${instances} instance change(s)`,
      complete,
    };
  }

  #applyInstances(service: NodeService, records: readonly StoredInstance[], restored: boolean): number {
    let changes = 0;
    const kept = new Set(records.map((i) => i.id));
    for (const instance of [...service.instances]) {
      if (kept.has(instance.id)) continue;
      this.#checks.forget(instance);
      service.remove(instance.id);
      changes++;
    }
    for (const record of records) {
      const before = service.instance(record.id);
      const spec = { host: record.host, port: record.port, ttl: record.ttl, udpCheck: record.udpCheck };
      if (before && before.host === record.host && before.port === record.port) {
        service.upsert(record.id, spec, 'up', record.remainingMs); // the same address: its TTL as the store says
        continue;
      }
      if (before) this.#checks.forget(before);
      if (restored) {
        // Its TCP side is checked (a connect) before it gets connections; its UDP side cannot be
        // checked that way (an app may answer UDP only), so it is up at once (issue 9, item 7).
        service.upsert(record.id, spec, { tcp: 'checking', udp: 'up' }, record.remainingMs);
        if (service.protocols.includes('tcp')) this.#checks.restored(service.instance(record.id)!);
      } else {
        service.upsert(record.id, spec, 'up', record.remainingMs);
      }
      changes++;
    }
    service.order(records.map((r) => r.id));
    return changes;
  }

  async #remove(service: NodeService): Promise<void> {
    this.#dataplane?.removed(service);
    for (const instance of service.instances) this.#checks.forget(instance);
    await service.close();
    this.#allocator.release(service.port);
  }

  #warnOutsideRange(record: ServiceRecord): void {
    const { first, last } = this.#options.range;
    if (record.port < first || record.port > last) {
      this.#logger.warn(
        { service: record.name, port: record.port },
        'restored port lies outside the range; kept',
      );
    }
  }

  /** An instance's TTL timer fired: the store decides (on its clock) whether it expired; while it is away, nothing does. */
  #onTtl(service: NodeService, instance: Instance): void {
    void this.#exclusive(async () => {
      if (service.instance(instance.id) !== instance) return;
      let result: Awaited<ReturnType<NodeStore['expireInstance']>>;
      try {
        result = await this.#store.expireInstance(service.id, instance.id);
      } catch (error) {
        this.#storeUnreachable(error);
        service.armTtl(instance, TTL_RETRY_MS);
        return;
      }
      if (result.expired) {
        if (result.revision !== undefined) this.#advance(result.revision);
        this.#checks.forget(instance);
        service.remove(instance.id);
        this.#logger.info(
          { service: service.name, instance: instance.id, ttl: instance.ttl },
          'instance expired',
        );
      } else if (result.remainingMs !== undefined) {
        service.armTtl(instance, result.remainingMs);
      }
      // Neither: the store no longer has it (expired or removed through another node): the next sync removes it here.
    });
  }

  #newService(record: Omit<ServiceRecord, 'instances'>): NodeService {
    return new NodeService({
      record,
      listenHost: this.#options.listenHost,
      logger: this.#logger,
      udpIdleTimeoutMs: this.#options.udpIdleTimeoutMs,
      tcpIdleTimeoutMs: this.#options.tcpIdleTimeoutMs,
      proxyProtocol: this.#options.proxyProtocol,
      udpSessionsPerSource: this.#options.udpSessionsPerSource,
      downMs: this.#options.downMs ?? DEFAULT_DOWN_MS,
      onChange: (service) => this.#dataplane?.changed(service),
      onTtl: (service, instance) => this.#onTtl(service, instance),
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
      await this.#checks.run(this.#services.values());
    } finally {
      this.#retrying = false;
    }
  }

  /** A service's kernel counters (--dataplane nftables); undefined with the userspace data plane. */
  kernelCounters(service: NodeService): KernelCounters | undefined {
    return this.#dataplane?.counters(service);
  }

  /** The kernel data plane's state for /status; undefined with the userspace one. */
  dataplaneStatus(): DataplaneStatus | undefined {
    return this.#dataplane?.status();
  }

  /** The kernel saw the UDP primary it was given refuse (ICMP port unreachable): the next instance takes over. */
  #udpUnreachable(service: NodeService, refusing: { host: string; port: number }): void {
    const failed = service.failUdpPrimary(refusing);
    if (failed === undefined) return;
    this.#logger.warn(
      { service: service.name, instance: failed.id, address: `${failed.host}:${failed.port}` },
      'UDP primary refused datagrams (ICMP port unreachable); the next instance takes over',
    );
  }

  #require(id: string): NodeService {
    const service = this.#services.get(id);
    if (!service) throw new HarborError('E_API_NOT_FOUND', `no service with id or name ${id}`);
    return service;
  }

  #fixedCredentials(): FixedCredentials {
    const o = this.#options;
    return {
      hostname: o.hostname,
      host: o.host,
      node_id: o.nodeId,
      ...((o.extHostname || o.extHost) && { ext_hostname: o.extHostname ?? '', ext_host: o.extHost ?? '' }),
    };
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

  #view(service: NodeService, members: readonly MemberReport[]): ServiceView {
    return {
      service: service.name,
      protocol: this.#protocol(service),
      listening: service.listening,
      conflict: service.conflict ?? null,
      created_at: service.createdAt,
      credentials: this.credentials(service),
      instances: service.instanceViews(),
      counters: service.counters(),
      ...(this.#dataplane !== undefined && { kernel: this.#dataplane.counters(service) }),
      nodes: members.map(({ member, age_ms, services }) => {
        const seen = services[service.id];
        return seen
          ? { member, age_ms, known: true, ...seen }
          : { member, age_ms, known: false, listening: false, conflict: null, instances: {} };
      }),
    };
  }

  /** What this node itself observes: ports it listens on, instances it finds down. */
  #memberView(): MemberView {
    const services: Record<string, MemberServiceView> = {};
    for (const service of this.#services.values()) {
      const instances: Record<string, string> = {};
      for (const i of service.instances) if (i.state !== 'up') instances[i.id] = i.state;
      services[service.id] = { listening: service.listening, conflict: service.conflict ?? null, instances };
    }
    return { member: this.#members.name, lifecycle: this.#lifecycle, services };
  }
}

/** The counter of a revision ("12:ab34..." or "12"). */
function sequence(revision: string): number {
  return Number.parseInt(revision, 10);
}
