// What every store of the node's services holds and how it is changed. The
// node (node.ts) speaks only this interface: a change goes to the store first
// and reaches the node's cache once the store took it; other nodes see it
// through the revision (level-triggered: compared on every sync, never
// carried by a notification).
import type { InstanceRecord, ServiceRecord } from '../state.js';

/** An instance as a store returns it: with the time left of its TTL on the store's clock. */
export interface StoredInstance extends InstanceRecord {
  /** Milliseconds until its TTL runs out (store clock); undefined without a TTL. */
  readonly remainingMs?: number | undefined;
}

export interface StoredService extends ServiceRecord {
  /** In registration order: the order every node gives its UDP primary and failover queue. */
  readonly instances: readonly StoredInstance[];
}

export interface StoreSnapshot {
  /** Changes whenever anything but a plain refresh changes. */
  readonly revision: string;
  readonly services: readonly StoredService[];
}

export interface SyncResult {
  /** The store's revision now; undefined when the store holds nothing (a Redis that came back empty). */
  readonly revision: string | undefined;
  /** The revision the node knew is not in the store's history: writes it saw were lost (a failover). */
  readonly diverged: boolean;
  /** How many revisions the node's one is behind (0 when unknown or current). */
  readonly lag: number;
}

export type UpsertResult = 'created' | 'refreshed' | 'replaced';

export interface ExpireResult {
  /** True when the store removed it now (its TTL ran out on the store's clock). */
  readonly expired: boolean;
  /** When not expired: how long it still has (a refresh through another node moved it), or undefined if it has no TTL or is gone. */
  readonly remainingMs: number | undefined;
  readonly revision: string | undefined;
}

export type StoreKind = 'file' | 'memory' | 'redis';

/**
 * What one node observes of the services, which is its own: whether it listens on each
 * port (another process may hold it on that machine) and which instances it finds down.
 * Nodes of a cluster publish theirs to the store for the others to show.
 */
export interface MemberView {
  /** The node's name in the cluster (--member). */
  readonly member: string;
  /**
   * The process that published it (machine, pid and a random tag): two nodes given one member
   * name overwrite each other's view, and this tells them apart. Absent from older nodes' views.
   */
  readonly publisher?: string;
  readonly lifecycle: string;
  /** By service id; instances listed only when not up (id -> state). */
  readonly services: Readonly<Record<string, MemberServiceView>>;
}

export interface MemberServiceView {
  readonly listening: boolean;
  readonly conflict: string | null;
  readonly instances: Readonly<Record<string, string>>;
}

/** A member's view as read back, with how long ago it was published (store clock). */
export interface MemberReport extends MemberView {
  readonly age_ms: number;
}

export interface NodeStore {
  readonly kind: StoreKind;
  /** Where it is, for logs and /status: never a password. */
  readonly description: string;
  /** Several nodes share it (they must agree on ports, order and expiry through it). */
  readonly shared: boolean;
  /** Whether the last command reached it. */
  readonly connected: boolean;
  /**
   * Opens it (creates the state folder, connects) and reads everything. A shared store that
   * cannot be reached yet answers undefined (the node syncs once it can); a file that
   * cannot be read or a folder that cannot be written throws (E_STATE_*).
   */
  open(): Promise<StoreSnapshot | undefined>;
  /** Everything now; `reread`: a file store reads its file again (SIGHUP). */
  snapshot(reread?: boolean): Promise<StoreSnapshot>;
  /** The cheap check behind convergence: the revision now, compared with the one the node knows. */
  sync(known: string | undefined): Promise<SyncResult>;
  /** Which of these revisions the store no longer has in its history (its writes were lost). */
  lostRevisions(revisions: readonly string[]): Promise<Set<string>>;
  /** Claims the record's port and id; E_PORT_TAKEN when a service of the store holds the port. Returns the new revision. */
  createService(record: ServiceRecord): Promise<string>;
  /** E_API_NOT_FOUND when it is not there. */
  deleteService(id: string): Promise<string>;
  /** Registers or refreshes (the TTL starts over on the store's clock). E_API_NOT_FOUND for an unknown service. */
  putInstance(
    serviceId: string,
    instance: InstanceRecord,
  ): Promise<{ result: UpsertResult; revision: string | undefined }>;
  /** E_API_NOT_FOUND when it is not there. */
  deleteInstance(serviceId: string, instanceId: string): Promise<string>;
  /** Removes the instance if its TTL ran out on the store's clock; else says how long it has. */
  expireInstance(serviceId: string, instanceId: string): Promise<ExpireResult>;
  /**
   * Publishes this node's own view for `ttlMs` (it vanishes if the node stops refreshing it);
   * resolves with the view of that name it replaced, if one was still there.
   */
  putMember(view: MemberView, ttlMs: number): Promise<MemberView | undefined>;
  /** Withdraws a member's view (a node that drains). */
  deleteMember(member: string): Promise<void>;
  /** The views of the members that published within their TTL, by name. */
  members(): Promise<MemberReport[]>;
  close(): Promise<void>;
}
