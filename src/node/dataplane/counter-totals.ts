// The kernel's counters as totals that only grow. A table the node builds
// again (it vanished, or a change failed) starts its counters at 0: what the
// one before had counted is kept and added, so that a service's flows and
// bytes do not fall back to 0 in the API and /metrics after a firewall reload.
// Counts between the last reading and the table's loss (up to one reading
// interval) are lost.
import { addCounts, type Counter, type CounterReading } from './nft.js';
import { type CounterMap, FAMILIES, type Family } from './rules.js';

export class CounterTotals {
  /** The current tables' counters as last read. */
  readonly #read: CounterReading = new Map();
  /** What tables before the current ones counted, by family, map and key. */
  readonly #before = new Map<string, Counter>();
  #generation = 0;

  /** Which tables a reading is of: pass it back to `keep` with the reading taken from now on. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * A reading replaces the last one of the same maps (other maps' stay); one begun before the
   * tables were replaced is of counters already folded in, and is dropped.
   */
  keep(tables: CounterReading, generation: number): void {
    if (generation !== this.#generation) return;
    for (const [family, reading] of tables) {
      const kept = this.#read.get(family) ?? new Map<CounterMap, Map<string, Counter>>();
      for (const [map, counters] of reading) kept.set(map, counters);
      this.#read.set(family, kept);
    }
  }

  /** The tables were built again: their counters start at 0, what they had counted is kept. */
  tablesReplaced(): void {
    for (const [family, maps] of this.#read) {
      for (const [map, counters] of maps) {
        for (const [key, counter] of counters) {
          const id = `${family} ${map} ${key}`;
          this.#before.set(id, addCounts(this.#before.get(id), counter));
        }
      }
    }
    this.#read.clear();
    this.#generation++;
  }

  /** An element's total; undefined when it was never counted. */
  get(family: Family, map: CounterMap, key: string): Counter | undefined {
    const now = this.#read.get(family)?.get(map)?.get(key);
    const before = this.#before.get(`${family} ${map} ${key}`);
    return before === undefined ? now : addCounts(before, now);
  }

  /** A service is gone: the totals of its port's elements go (a later service on it starts at 0). */
  forget(port: number): void {
    const suffix = ` ${port}`;
    for (const id of this.#before.keys()) if (id.endsWith(suffix)) this.#before.delete(id);
    for (const family of FAMILIES) {
      for (const counters of this.#read.get(family)?.values() ?? []) {
        for (const key of counters.keys())
          if (key === String(port) || key.endsWith(suffix)) counters.delete(key);
      }
    }
  }
}
