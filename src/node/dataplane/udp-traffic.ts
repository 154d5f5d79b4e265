// The bytes of each service's kernel-forwarded UDP, from conntrack's own
// per-flow counts (nf_conntrack_acct, which the table turns on) rather than a
// rule that looks every datagram up: that lookup cost 7-10% of the datagrams
// delivered. The node lists the UDP flows every few seconds anyway (to remove
// stale ones); each listing adds what every flow carried since the one before.
// A flow that is no longer listed has ended, and its last count was seen: a UDP
// entry outlives its last datagram by at least 30 s. A flow the node deletes
// (a failover) is counted from what the deletion printed.
import { addCounts, type Counter, NO_COUNT, type UdpFlow } from './nft.js';
import { FAMILIES, type Family } from './rules.js';

/** What a service's UDP carried, whole packets (headers included). */
export interface UdpTotals {
  readonly original: Counter;
  readonly reply: Counter;
}

interface Seen {
  readonly port: number;
  readonly original: Counter;
  readonly reply: Counter;
}

export class UdpTraffic {
  /** Per family: each counted flow's counts at the last listing, by its key. */
  readonly #seen = new Map<Family, Map<string, Seen>>();
  /** Per family and service port. */
  readonly #totals = new Map<string, UdpTotals>();
  /** Flows listed without counts (made while accounting was off): their bytes are not known. */
  uncounted = 0;

  /**
   * A listing of one family's UDP flows, those of `counted` services: the growth of each since
   * the last listing goes to its service; flows not listed again have ended. A `baseline` (the
   * node's start) only notes where each flow stands: what flows carried before the node
   * started is not counted again by a restarted node (its TCP counters start at 0 too).
   */
  listed(
    family: Family,
    flows: readonly UdpFlow[],
    counted: (flow: UdpFlow) => boolean,
    baseline = false,
  ): void {
    const before = this.#seen.get(family) ?? new Map<string, Seen>();
    const now = new Map<string, Seen>();
    this.uncounted = 0;
    for (const flow of flows) {
      if (!counted(flow)) continue;
      const seen = baseline ? where(flow) : this.#add(family, flow, before.get(flow.key));
      if (seen !== null) now.set(flow.key, seen);
    }
    this.#seen.set(family, now);
  }

  /** Flows the node deleted, as they were at deletion: counted to the end, then forgotten. */
  deleted(family: Family, flows: readonly UdpFlow[]): void {
    const seen = this.#seen.get(family);
    for (const flow of flows) {
      this.#add(family, flow, seen?.get(flow.key));
      seen?.delete(flow.key);
    }
  }

  /** What a service's UDP carried in `family` since the node started following it. */
  totals(family: Family, port: number): UdpTotals {
    return this.#totals.get(`${family} ${port}`) ?? { original: NO_COUNT, reply: NO_COUNT };
  }

  /** A service is gone: its totals go (a later service on the same port starts from zero). */
  forget(port: number): void {
    for (const family of FAMILIES) this.#totals.delete(`${family} ${port}`);
    for (const seen of this.#seen.values())
      for (const [key, flow] of seen) if (flow.port === port) seen.delete(key);
  }

  #add(family: Family, flow: UdpFlow, before: Seen | undefined): Seen | null {
    if (flow.original === null || flow.reply === null) {
      this.uncounted++;
      return null;
    }
    const key = `${family} ${flow.dport}`;
    const total = this.totals(family, flow.dport);
    this.#totals.set(key, {
      original: grown(total.original, flow.original, before?.original),
      reply: grown(total.reply, flow.reply, before?.reply),
    });
    return where(flow);
  }
}

/** A flow's counts as listed; null without any. */
function where(flow: UdpFlow): Seen | null {
  if (flow.original === null || flow.reply === null) return null;
  return { port: flow.dport, original: flow.original, reply: flow.reply };
}

/** `total` plus what a flow carried since `before` (its whole count when it is new). */
function grown(total: Counter, now: Counter, before: Counter | undefined): Counter {
  // Counts only grow; a smaller one is another flow that took the same key.
  const base = before !== undefined && before.bytes <= now.bytes ? before : NO_COUNT;
  return addCounts(total, { packets: now.packets - base.packets, bytes: now.bytes - base.bytes });
}
