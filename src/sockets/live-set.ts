// The things open now that come and go all the time (client connections, their
// inactivity watches, relayed TCP connections): an array in which each member
// knows its place, so that adding and removing one is a store and a pop.
// A Set would do the same work but costs more than it seems here: V8 gives a
// Set or a Map a new table as members come and go, in the old generation once
// the table it replaces is there (a long-lived Set's soon is), and a replaced
// table keeps the members it held until a full collection finds it. Every
// connection then outlives its close by up to a second and is copied and
// promoted on the way (docs/benchmarks.md, "What outlives a connection or a
// stream": node:http2's own stream map does this to every stream). An array's
// store is replaced only when it grows past the most members it has held, and
// a pop clears the place it frees.

/** The property where a member keeps its place in its LiveSet (-1: in none). */
export const SLOT: unique symbol = Symbol('place in a LiveSet');

/** Something a LiveSet can hold: in one LiveSet at a time, starting with `[SLOT] = -1`. */
export interface LiveMember {
  [SLOT]: number;
}

export class LiveSet<T extends LiveMember> {
  readonly #members: T[] = [];

  get size(): number {
    return this.#members.length;
  }

  /** Adds `member` (nothing when it is here already). */
  add(member: T): void {
    if (this.has(member)) return;
    member[SLOT] = this.#members.length;
    this.#members.push(member);
  }

  /** Removes `member`; false when it was not here. The last member takes its place. */
  delete(member: T): boolean {
    if (!this.has(member)) return false;
    const members = this.#members;
    const last = members.pop() as T;
    if (last !== member) {
      const slot = member[SLOT];
      members[slot] = last;
      last[SLOT] = slot;
    }
    member[SLOT] = -1;
    return true;
  }

  has(member: T): boolean {
    const slot = member[SLOT];
    return slot >= 0 && this.#members[slot] === member;
  }

  /** The members now, in a new array: for work that may add or remove members as it goes. */
  toArray(): T[] {
    return this.#members.slice();
  }

  /**
   * Calls `visit` on each member, from the newest. Members may come and go meanwhile: one that
   * left is not visited after it left, one that came may or may not be, and one may be visited
   * twice when another leaves (the last takes the leaver's place): `visit` must not mind.
   */
  forEach(visit: (member: T) => void): void {
    const members = this.#members;
    for (let i = members.length - 1; i >= 0; i--) {
      const member = members[i];
      if (member !== undefined) visit(member);
    }
  }
}
