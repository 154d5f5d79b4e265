// The table of open streams inside each node:http2 session, replaced by one that
// V8 never replaces per stream. node:http2 keeps a session's streams in a Map
// (one `set` and one `delete` per stream); V8 gives a Map a new table every few
// streams, in the old generation once the table it replaces is there (after the
// session's first full collection), and a replaced table keeps the streams it
// held until the next full collection finds it. Every stream and all it reaches
// then outlives its close, and is copied and promoted by young collections on
// the way: about 2 KB per request, and 10 us of CPU per request under load
// (docs/benchmarks.md, "What outlives a connection or a stream"). The table here
// is two arrays with swap-remove, as LiveSet is: their stores are replaced only
// when the number of streams open at once grows past its highest.
//
// node:http2 exposes no hook for this: installStreamTable() writes the session's
// internal state (`session[kState].streams`, found by the symbol's description).
// Where a Node version lacks it, or its shape differs, it changes nothing and
// answers false: the session keeps node:http2's Map, correct but dearer. A test
// pins it (test/https/http2-stream-table.test.ts, docs/architecture.md).
import type * as http2 from 'node:http2';

/** What node:http2 (Node 20) does with a session's table of streams: nothing else. */
interface StreamMap<V> {
  readonly size: number;
  get(id: number): V | undefined;
  set(id: number, stream: V): unknown;
  delete(id: number): boolean;
  forEach(visit: (stream: V, id: number, map: unknown) => void): void;
}

/** A session's open streams by id, in two arrays; a stream's place is found by a scan (at most maxConcurrentStreams). */
export class StreamTable<V> implements StreamMap<V> {
  readonly #ids: number[] = [];
  readonly #streams: V[] = [];

  get size(): number {
    return this.#ids.length;
  }

  get(id: number): V | undefined {
    const at = this.#indexOf(id);
    return at === -1 ? undefined : this.#streams[at];
  }

  set(id: number, stream: V): this {
    const at = this.#indexOf(id);
    if (at !== -1) this.#streams[at] = stream;
    else {
      this.#ids.push(id);
      this.#streams.push(stream);
    }
    return this;
  }

  /** Removes the stream with this id; the last takes its place (a pop clears the place it frees). */
  delete(id: number): boolean {
    const at = this.#indexOf(id);
    if (at === -1) return false;
    const ids = this.#ids;
    const streams = this.#streams;
    const lastId = ids.pop() as number;
    const last = streams.pop() as V;
    if (at < ids.length) {
      ids[at] = lastId;
      streams[at] = last;
    }
    return true;
  }

  /**
   * Calls `visit` on each stream open when it began, as a Map's forEach does: one removed
   * meanwhile (closing one stream may close others) is not visited.
   */
  forEach(visit: (stream: V, id: number, map: this) => void): void {
    const ids = this.#ids.slice();
    const streams = this.#streams.slice();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (this.#indexOf(id) !== -1) visit(streams[i] as V, id, this);
    }
  }

  #indexOf(id: number): number {
    const ids = this.#ids;
    // From the newest: a frame is most often for a stream opened lately.
    for (let i = ids.length - 1; i >= 0; i--) if (ids[i] === id) return i;
    return -1;
  }
}

/** node:http2's symbol for a session's internal state, found on the first session. */
let stateKey: symbol | undefined;

/**
 * Gives a new session (no stream yet) a StreamTable in place of node:http2's Map. False, with
 * nothing changed, when this Node's session does not hold its streams where and as expected.
 */
export function installStreamTable(session: http2.Http2Session): boolean {
  const fields = session as unknown as Record<symbol, unknown>;
  stateKey ??= Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  const state = stateKey === undefined ? undefined : (fields[stateKey] as { streams?: unknown } | undefined);
  if (!isEmptyStreamMap(state?.streams)) return false;
  (state as { streams: StreamMap<unknown> }).streams = new StreamTable();
  return true;
}

/** node:http2's own table as Node 20 builds it: a (primordials') Map, empty before the first stream. */
function isEmptyStreamMap(value: unknown): value is StreamMap<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const map = value as Partial<StreamMap<unknown>>;
  return (
    map.size === 0 &&
    typeof map.get === 'function' &&
    typeof map.set === 'function' &&
    typeof map.delete === 'function' &&
    typeof map.forEach === 'function'
  );
}
