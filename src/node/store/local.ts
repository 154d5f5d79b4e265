// The stores of one node alone: `memory` (nothing survives a restart) and
// `file` (the state file of state.ts, written atomically after every change;
// a change the file refuses is undone and refused). TTLs run on this
// process's clock; an instance restored from the file gets its whole TTL.
import { HarborError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { InstanceRecord, NodeState, ServiceRecord, StateFile } from '../state.js';
import { nameTaken } from './errors.js';
import type {
  ExpireResult,
  MemberReport,
  MemberView,
  NodeStore,
  StoredService,
  StoreKind,
  StoreSnapshot,
  SyncResult,
  UpsertResult,
} from './types.js';

interface Entry {
  readonly record: Omit<ServiceRecord, 'instances'>;
  /** In registration order (a replaced instance goes to the back). */
  readonly instances: Map<string, { record: InstanceRecord; deadline: number | undefined }>;
}

/** An undo for a change about to be made to `map`: puts back its entries, in their order. */
function restorer<K, V>(map: Map<K, V>): () => void {
  const entries = [...map];
  return () => {
    map.clear();
    for (const [key, value] of entries) map.set(key, value);
  };
}

const notFound = (message: string): HarborError => new HarborError('E_API_NOT_FOUND', message);

export class MemoryStore implements NodeStore {
  readonly kind: StoreKind = 'memory';
  readonly description: string = 'memory (nothing survives a restart)';
  readonly shared = false;
  readonly connected = true;
  protected readonly entries = new Map<string, Entry>();
  #revision = 0;
  #member: { view: MemberView; at: number } | undefined;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async open(): Promise<StoreSnapshot | undefined> {
    return this.#snapshot();
  }

  async snapshot(_reread?: boolean): Promise<StoreSnapshot> {
    return this.#snapshot();
  }

  async sync(known: string | undefined): Promise<SyncResult> {
    return {
      revision: String(this.#revision),
      diverged: false,
      lag: known === undefined ? 0 : this.#revision - Number(known),
    };
  }

  async lostRevisions(_revisions: readonly string[]): Promise<Set<string>> {
    return new Set(); // one process: nothing it acknowledged can be lost behind its back
  }

  async createService(record: ServiceRecord): Promise<string> {
    if (this.entries.has(record.id))
      throw new HarborError('E_STORE_CONFLICT', `service id ${record.id} exists already`);
    for (const entry of this.entries.values()) {
      if (entry.record.name === record.name) throw nameTaken(record.name, entry.record.id);
    }
    for (const entry of this.entries.values()) {
      if (entry.record.port === record.port) {
        throw new HarborError(
          'E_PORT_TAKEN',
          `${record.name}: port ${record.port} is already held by service ${entry.record.name} (${entry.record.id})`,
        );
      }
    }
    const { instances, ...rest } = record;
    const entry: Entry = { record: rest, instances: new Map() };
    for (const instance of instances)
      entry.instances.set(instance.id, { record: instance, deadline: this.#deadline(instance) });
    this.entries.set(record.id, entry);
    await this.commit(() => this.entries.delete(record.id));
    return this.#bump();
  }

  async deleteService(id: string): Promise<string> {
    const entry = this.entries.get(id);
    if (!entry) throw notFound(`no service with id ${id}`);
    const undo = restorer(this.entries);
    this.entries.delete(id);
    await this.commit(undo);
    return this.#bump();
  }

  async putInstance(
    serviceId: string,
    instance: InstanceRecord,
  ): Promise<{ result: UpsertResult; revision: string | undefined }> {
    const entry = this.#entry(serviceId);
    const before = entry.instances.get(instance.id);
    const undo = restorer(entry.instances);
    const sameAddress = before?.record.host === instance.host && before?.record.port === instance.port;
    const result: UpsertResult = sameAddress ? 'refreshed' : before ? 'replaced' : 'created';
    // A new address goes to the back of the registration order.
    if (!sameAddress) entry.instances.delete(instance.id);
    entry.instances.set(instance.id, { record: instance, deadline: this.#deadline(instance) });
    const changed =
      result !== 'refreshed' ||
      before?.record.ttl !== instance.ttl ||
      before?.record.udpCheck !== instance.udpCheck;
    if (!changed) return { result, revision: undefined };
    await this.commit(undo);
    return { result, revision: this.#bump() };
  }

  async deleteInstance(serviceId: string, instanceId: string): Promise<string> {
    const entry = this.#entry(serviceId);
    const before = entry.instances.get(instanceId);
    if (!before) throw notFound(`service ${serviceId} has no instance ${instanceId}`);
    const undo = restorer(entry.instances);
    entry.instances.delete(instanceId);
    await this.commit(undo);
    return this.#bump();
  }

  async expireInstance(serviceId: string, instanceId: string): Promise<ExpireResult> {
    const instance = this.entries.get(serviceId)?.instances.get(instanceId);
    if (!instance || instance.deadline === undefined)
      return { expired: false, remainingMs: undefined, revision: undefined };
    const remaining = instance.deadline - this.#now();
    if (remaining > 0) return { expired: false, remainingMs: remaining, revision: undefined };
    return {
      expired: true,
      remainingMs: undefined,
      revision: await this.deleteInstance(serviceId, instanceId),
    };
  }

  async putMember(view: MemberView, _ttlMs: number): Promise<MemberView | undefined> {
    const previous = this.#member?.view;
    this.#member = { view, at: this.#now() };
    return previous?.member === view.member ? previous : undefined;
  }

  async deleteMember(member: string): Promise<void> {
    if (this.#member?.view.member === member) this.#member = undefined;
  }

  /** One node alone: its own view, nothing else. */
  async members(): Promise<MemberReport[]> {
    return this.#member ? [{ ...this.#member.view, age_ms: this.#now() - this.#member.at }] : [];
  }

  async close(): Promise<void> {}

  /** Makes a change durable; on failure calls `undo` and throws. Memory: nothing to do. */
  protected async commit(_undo: () => void): Promise<void> {}

  /** Replaces everything with `state` (a file read again), keeping deadlines of instances that did not move. */
  protected replace(state: NodeState | undefined): void {
    const old = new Map(this.entries);
    this.entries.clear();
    for (const service of state?.services ?? []) {
      const { instances, ...rest } = service;
      const entry: Entry = { record: rest, instances: new Map() };
      const previous = old.get(service.id)?.instances;
      for (const instance of instances) {
        const was = previous?.get(instance.id);
        const same =
          was &&
          was.record.host === instance.host &&
          was.record.port === instance.port &&
          was.record.ttl === instance.ttl;
        entry.instances.set(instance.id, {
          record: instance,
          deadline: same ? was.deadline : this.#deadline(instance),
        });
      }
      this.entries.set(service.id, entry);
    }
    this.#bump();
  }

  protected state(): NodeState {
    return {
      services: [...this.entries.values()].map((e) => ({
        ...e.record,
        instances: [...e.instances.values()].map((i) => i.record),
      })),
    };
  }

  #entry(serviceId: string): Entry {
    const entry = this.entries.get(serviceId);
    if (!entry) throw notFound(`no service with id ${serviceId}`);
    return entry;
  }

  #deadline(instance: InstanceRecord): number | undefined {
    return instance.ttl === undefined ? undefined : this.#now() + instance.ttl * 1000;
  }

  #bump(): string {
    this.#revision++;
    return String(this.#revision);
  }

  #snapshot(): StoreSnapshot {
    const now = this.#now();
    const services: StoredService[] = [...this.entries.values()].map((e) => ({
      ...e.record,
      instances: [...e.instances.values()].map((i) => ({
        ...i.record,
        remainingMs: i.deadline === undefined ? undefined : Math.max(0, i.deadline - now),
      })),
    }));
    return { revision: String(this.#revision), services };
  }
}

export class FileStore extends MemoryStore {
  override readonly kind: StoreKind = 'file';
  override readonly description: string;
  readonly file: StateFile;
  readonly #logger: Logger | undefined;

  /** Only read, never written nor locked: a copy's source, which a running node may hold. */
  readonly #readOnly: boolean;

  constructor(file: StateFile, logger?: Logger, { readOnly = false }: { readOnly?: boolean } = {}) {
    super();
    this.file = file;
    this.description = `file ${file.path}`;
    this.#logger = logger;
    this.#readOnly = readOnly;
  }

  override async open(): Promise<StoreSnapshot | undefined> {
    if (!this.#readOnly) {
      const logger = this.#logger;
      const path = this.file.path;
      const leftovers = await this.file.prepare({
        onWait: (lock, waitMs) =>
          logger?.warn(
            { state: path, lock, waitMs },
            `state file ${path} is locked by another harbor-node; waiting up to ${waitMs / 1000} s in case that node has stopped`,
          ),
        onLost: (error) =>
          logger?.error(
            { state: path, err: error.message },
            `state file ${path}: its lock was lost (${error.message}); another harbor-node may use the file now, so every change is refused from here on: stop this node`,
          ),
      });
      if (leftovers.length > 0) {
        logger?.info({ removed: leftovers }, 'removed temporary state files a stopped node left');
      }
    }
    this.replace(await this.file.load(true));
    return this.snapshot();
  }

  override async close(): Promise<void> {
    await this.file.release();
  }

  /** `reread`: the file again (SIGHUP); one that cannot be read changes nothing and throws. */
  override async snapshot(reread = false): Promise<StoreSnapshot> {
    if (reread) this.replace(await this.file.load());
    return super.snapshot();
  }

  protected override async commit(undo: () => void): Promise<void> {
    try {
      if (this.#readOnly)
        throw new HarborError('E_STATE_WRITE', `state file ${this.file.path} is open only to be read`);
      await this.file.save(this.state());
    } catch (error) {
      undo();
      throw error;
    }
  }
}
