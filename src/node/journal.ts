// The changes this node made to a shared store, with the revision each
// produced, kept for a while: if the store loses them (a Sentinel failover
// promotes a replica that never got them, a Redis restored from an older
// snapshot), the node finds which revisions the store no longer knows and
// makes those changes again. A store of one node alone never loses one.
import type { InstanceRecord, ServiceRecord } from './state.js';

export type JournalChange =
  | { readonly op: 'create'; readonly record: ServiceRecord }
  | { readonly op: 'delete'; readonly id: string }
  | { readonly op: 'put'; readonly serviceId: string; readonly instance: InstanceRecord }
  | { readonly op: 'unregister'; readonly serviceId: string; readonly instanceId: string };

export interface JournalEntry {
  readonly revision: string;
  readonly at: number;
  readonly change: JournalChange;
}

/** How long a change is kept: far longer than a failover takes to be noticed. */
const KEEP_MS = 10 * 60_000;
const KEEP_ENTRIES = 5_000;

export class Journal {
  #entries: JournalEntry[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  record(revision: string, change: JournalChange): void {
    const now = this.#now();
    this.#entries.push({ revision, at: now, change });
    const cut = this.#entries.findIndex((e) => now - e.at < KEEP_MS);
    if (cut > 0) this.#entries.splice(0, cut);
    if (this.#entries.length > KEEP_ENTRIES) this.#entries.splice(0, this.#entries.length - KEEP_ENTRIES);
  }

  get revisions(): string[] {
    return this.#entries.map((e) => e.revision);
  }

  /** Takes out the entries whose revision is in `lost`, oldest first (they are replayed and recorded again). */
  take(lost: ReadonlySet<string>): JournalEntry[] {
    const taken = this.#entries.filter((e) => lost.has(e.revision));
    this.#entries = this.#entries.filter((e) => !lost.has(e.revision));
    return taken;
  }
}
