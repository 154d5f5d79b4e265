// The members of a cluster and what each one observes: a node publishes its
// own view (which ports it listens on, which instances it finds down) to the
// store after its syncs, and reads the others' views back, so that any node
// can show a port conflict or a down instance of another. One node alone sees
// its own view only. Views expire when a node stops refreshing them.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { MemberReport, MemberView, NodeStore } from './store/index.js';

/** A node's view outlives it (killed, cut off from the store) by this long at most. */
export const MEMBER_TTL_MS = 5_000;
/** An unchanged view is published again, and the others' read back, this often. */
const MEMBER_REFRESH_MS = 1_000;

export class MemberBoard {
  readonly #store: NodeStore;
  readonly name: string;
  /** This process, as its views say who published them (MemberView.publisher). */
  readonly publisher = `${hostname()} pid ${process.pid} (${randomBytes(3).toString('hex')})`;
  readonly #onClash: ((publisher: string) => void) | undefined;
  /** Other publishers found under this node's name, each told once. */
  readonly #clashes = new Set<string>();
  #published: { text: string; at: number } | undefined;
  #read: { reports: readonly MemberReport[]; at: number } | undefined;
  /** A publish under way: another waits for it rather than running beside it. */
  #inflight: Promise<void> | undefined;

  /**
   * `onClash`: another process publishes views under this node's name (two nodes given one
   * --member overwrite each other's view); told once per such process.
   */
  constructor(store: NodeStore, name: string, onClash?: (publisher: string) => void) {
    this.#store = store;
    this.name = name;
    this.#onClash = onClash;
  }

  /**
   * Publishes `view` when it changed or is due for a refresh, and reads the others' when due.
   * A store that cannot be reached changes nothing here (the node's sync reports the outage).
   */
  publish(view: MemberView): Promise<void> {
    if (this.#inflight !== undefined) return this.#inflight;
    this.#inflight = this.#publish(view).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #publish(view: MemberView): Promise<void> {
    try {
      const text = JSON.stringify(view);
      const now = Date.now();
      if (text !== this.#published?.text || now - this.#published.at >= MEMBER_REFRESH_MS) {
        const replaced = await this.#store.putMember({ ...view, publisher: this.publisher }, MEMBER_TTL_MS);
        // What the first publish replaces may be this node's own before a restart; after it, a view
        // of another publisher in place of this one's was written since, under this name.
        const other = replaced?.publisher;
        if (
          this.#published !== undefined &&
          other !== undefined &&
          other !== this.publisher &&
          !this.#clashes.has(other)
        ) {
          this.#clashes.add(other);
          this.#onClash?.(other);
        }
        this.#published = { text, at: now };
      }
      if (this.#read === undefined || now - this.#read.at >= MEMBER_REFRESH_MS) {
        this.#read = { reports: await this.#store.members(), at: now };
      }
    } catch {
      // Unreachable: the last views read are kept, and grow older.
    }
  }

  /** The members' views as last read, their ages brought up to now; this node's own view always from `own`. */
  views(own: MemberView): MemberReport[] {
    const since = this.#read === undefined ? 0 : Date.now() - this.#read.at;
    const others = (this.#read?.reports ?? [])
      .filter((r) => r.member !== this.name)
      .map((r) => ({ ...r, age_ms: r.age_ms + since }));
    return [{ ...own, age_ms: 0 }, ...others].sort((a, b) => a.member.localeCompare(b.member));
  }

  /** A node that drains takes its view away at once, rather than leaving it to expire. */
  async withdraw(): Promise<void> {
    // A publish under way would put the view back after the delete.
    await this.#inflight;
    await this.#store.deleteMember(this.name).catch(() => undefined);
  }
}
