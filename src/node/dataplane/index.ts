// harbor-node's opt-in kernel data plane (--dataplane nftables): the node keeps
// its API, store, balancers, checks and userspace listeners, and programs
// nftables so that Linux forwards new connections itself (rules.ts). It follows
// the services: every change of where a service's new flows go (an instance
// came, went, or changed health) becomes one transaction for that service; the
// whole table is replaced only at start-up and when it vanished. On a UDP
// failover the old primary's conntrack entries are deleted, and a reconciler
// removes any UDP entry that points elsewhere than the current primary. The
// table is never deleted at exit: live flows keep their translation, and the
// userspace listeners (still bound) serve whatever the rules do not.
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../../log/index.js';
import type { Instance } from '../balancer.js';
import type { NodeService } from '../service.js';
import { CounterTotals } from './counter-totals.js';
import {
  type Counter,
  type CounterReading,
  deleteUdpFlows,
  listUdpFlows,
  readCounters,
  runNft,
  type UdpFlow,
} from './nft.js';
import { claimDataplane, type DataplaneClaim } from './owner.js';
import {
  addServiceScript,
  type CounterMap,
  counterKey,
  FAMILIES,
  type Family,
  headerBytes,
  programScript,
  removeServiceScript,
  type ServicePlan,
  TABLE,
  type Target,
  tableScript,
} from './rules.js';
import { UdpTraffic } from './udp-traffic.js';

export interface NftablesOptions {
  readonly logger: Logger;
  /** The one address service ports listen on; undefined: every local address. */
  readonly listen?: string | undefined;
  /** How often counters are read (ICMP errors noticed, the table checked) and UDP flows reconciled. */
  readonly pollMs?: number | undefined;
  /**
   * The kernel saw ICMP port unreachable for flows of this service's UDP while `refusing` was
   * the primary programmed in the table: that instance refuses.
   */
  readonly onUnreachable: (service: NodeService, refusing: { host: string; port: number }) => void;
  /** The node's services now, for a rebuild of the whole table. */
  readonly services: () => Iterable<NodeService>;
}

/** The kernel's counters of one service. */
export interface KernelCounters {
  /** New flows (connections, UDP sessions) the kernel sent to an instance. */
  readonly flows: number;
  readonly bytes_in: number;
  readonly bytes_out: number;
  /** ICMP port-unreachable errors of its UDP flows. */
  readonly unreachable: number;
}

export interface DataplaneStatus {
  readonly kind: 'nftables';
  readonly tables: readonly string[];
  /** Services whose new flows the kernel forwards (in at least one family). */
  readonly programmed: number;
  readonly conntrack: { readonly count: number | null; readonly max: number | null };
  readonly last_error: string | null;
}

interface Programmed {
  readonly service: NodeService;
  /** What each family's table holds for it, as applied; a family it is not in is absent. */
  readonly plans: Map<Family, ServicePlan>;
}

const DEFAULT_POLL_MS = 1000;
/** Every this many polls: counters of every service, the table's presence, UDP flows reconciled. */
const FULL_POLL_EVERY = 3;
/** The maps of flow and byte counters (the ICMP errors' map is read on its own). */
const TRAFFIC_MAPS: readonly CounterMap[] = ['dispatch', 'bytes'];
/**
 * A family's UDP flows are listed at least every this many full polls (30 s) even when nothing
 * says they changed: a listing walks conntrack's whole hash table (~15 ms of kernel time per
 * family here, empty or not), so a node whose UDP services are idle skips it otherwise.
 */
const UDP_LISTING_AT_LEAST_EVERY = 10;

export class NftablesDataplane {
  readonly #options: NftablesOptions;
  readonly #logger: Logger;
  readonly #programmed = new Map<number, Programmed>();
  readonly #pending = new Map<number, NodeService | null>();
  readonly #totals = new CounterTotals();
  readonly #udpTraffic = new UdpTraffic();
  /**
   * Per family, as of its last UDP listing: the new UDP flows the table had counted as dispatched
   * (as last read), whether any service flow was live, and the poll it was in (`#polls`).
   */
  readonly #udpListed = new Map<Family, { dispatched: number; live: boolean; poll: number }>();
  #warnedUncounted = false;
  /** Per service port: its ICMP error count at the last reading, and the UDP primary then. */
  readonly #unreachableSeen = new Map<number, { count: number; primary: string }>();
  #local = localAddresses();
  #serial: Promise<unknown> = Promise.resolve();
  #flushScheduled = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #polls = 0;
  /** A reading of the flow and byte counters is under way (it runs beside the changes). */
  #readingTraffic = false;
  #lastError: string | null = null;
  #closed = false;
  #started = false;
  /** This network namespace's data plane is this node's (owner.ts): held from start to close. */
  #claim: DataplaneClaim | undefined;

  constructor(options: NftablesOptions) {
    this.#options = options;
    this.#logger = options.logger;
  }

  /** The whole table for the node's services, checked by `nft --check` then applied in one transaction; E_DATAPLANE when refused. */
  async start(): Promise<void> {
    // Before anything is replaced: another node's table is not this one's to wipe.
    this.#claim = await claimDataplane();
    const list = [...this.#options.services()];
    const script = this.#fullScript(list);
    // From here on changes queue behind the table (they may come while nft runs).
    this.#started = true;
    this.#pending.clear();
    const applied = runNft(script, true).then(() => runNft(script));
    this.#serial = applied.catch(() => undefined);
    try {
      await applied;
    } catch (error) {
      await this.#claim.release();
      this.#claim = undefined;
      throw error;
    }
    this.#remember(list);
    // Where the UDP flows of a node that ran before stand: only what they carry from now is counted.
    for (const family of FAMILIES) {
      const flows = await listUdpFlows(family).catch(() => []);
      this.#udpTraffic.listed(family, flows, (flow) => this.#countsUdp(flow), true);
      this.#noteUdpListing(family, flows);
    }
    this.#pollTimer = setInterval(() => void this.#poll(), this.#options.pollMs ?? DEFAULT_POLL_MS);
    this.#pollTimer.unref();
  }

  /** Where a service's new flows go may have changed: applied once this turn's changes are in. */
  changed(service: NodeService): void {
    if (this.#closed || !this.#started) return;
    this.#pending.set(service.port, service);
    this.#schedule();
  }

  /** A service is gone: its rules go. */
  removed(service: NodeService): void {
    if (this.#closed || !this.#started) return;
    this.#pending.set(service.port, null);
    this.#schedule();
  }

  /** Stops following; the table stays (deleting it would freeze live flows): `harbor-node dataplane clean` removes it. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pollTimer);
    await this.#serial.catch(() => undefined);
    await this.#claim?.release();
    this.#claim = undefined;
  }

  /** A service's kernel counters as last read (every few seconds; every second for UDP services). */
  counters(service: NodeService): KernelCounters {
    const port = service.port;
    let flows = 0;
    let bytesIn = 0;
    let bytesOut = 0;
    let unreachable = 0;
    const totals = this.#totals;
    for (const family of FAMILIES) {
      for (const p of ['tcp', 'udp'] as const)
        flows += totals.get(family, 'dispatch', counterKey.flows(p, port))?.packets ?? 0;
      // TCP bytes from the table's counters, UDP bytes from conntrack's.
      const tcp = headerBytes(family, 'tcp');
      const udp = headerBytes(family, 'udp');
      const udpTotals = this.#udpTraffic.totals(family, port);
      bytesIn += payload(totals.get(family, 'bytes', counterKey.bytes('original', port)), tcp);
      bytesIn += payload(udpTotals.original, udp);
      bytesOut += payload(totals.get(family, 'bytes', counterKey.bytes('reply', port)), tcp);
      bytesOut += payload(udpTotals.reply, udp);
      unreachable += totals.get(family, 'unreachable', counterKey.unreachable(port))?.packets ?? 0;
    }
    return { flows, bytes_in: bytesIn, bytes_out: bytesOut, unreachable };
  }

  status(): DataplaneStatus {
    let programmed = 0;
    for (const p of this.#programmed.values()) if (p.plans.size > 0) programmed++;
    return {
      kind: 'nftables',
      tables: FAMILIES.map((f) => `${f} ${TABLE}`),
      programmed,
      conntrack: { count: readNumber('nf_conntrack_count'), max: readNumber('nf_conntrack_max') },
      last_error: this.#lastError,
    };
  }

  #fullScript(services: readonly NodeService[]): string {
    return FAMILIES.map((family) =>
      tableScript(
        family,
        this.#listenFor(family),
        this.#local.loopback[family],
        services.map((s) => this.#plan(s, family)).filter((p): p is ServicePlan => p !== null),
      ),
    ).join('');
  }

  #plans(service: NodeService): Map<Family, ServicePlan> {
    const plans = new Map<Family, ServicePlan>();
    for (const family of FAMILIES) {
      const plan = this.#plan(service, family);
      if (plan !== null) plans.set(family, plan);
    }
    return plans;
  }

  #remember(services: readonly NodeService[]): void {
    this.#programmed.clear();
    for (const service of services)
      this.#programmed.set(service.port, { service, plans: this.#plans(service) });
  }

  /** The listen address when it is of `family`; a listen address of the other family: nothing of this family is served. */
  #listenFor(family: Family): string | undefined {
    const listen = this.#options.listen;
    if (listen === undefined) return undefined;
    return (isIP(listen) === 4) === (family === 'ip') ? listen : family === 'ip' ? '0.0.0.0' : '::';
  }

  /**
   * What a family's table does for a service, or null when the kernel sends none of its flows
   * in that family: no instance, an instance of the other family, or a host name (a mix is left
   * to the userspace listener, which resolves names and crosses families).
   */
  #plan(service: NodeService, family: Family): ServicePlan | null {
    const all = [...service.instances];
    const want = family === 'ip' ? 4 : 6;
    if (all.length === 0 || !all.every((i) => isIP(i.host) === want)) return null;
    const protocols = service.protocols;
    const targets = service.kernelTargets();
    const target = (i: Instance): Target => ({ host: i.host, port: i.port, local: this.#isLocal(i.host) });
    return {
      port: service.port,
      tcp: protocols.includes('tcp'),
      udp: protocols.includes('udp'),
      tcpTargets: targets.tcp === null ? [] : targets.tcp.map(target),
      udpTarget: targets.udp ? target(targets.udp) : null,
    };
  }

  /** Whether an instance the node knows now is an IP address of another machine (IP forwarding needed). */
  hasRemoteInstances(): boolean {
    for (const service of this.#options.services()) {
      for (const i of service.instances) if (isIP(i.host) !== 0 && !this.#isLocal(i.host)) return true;
    }
    return false;
  }

  #isLocal(host: string): boolean {
    const family = isIP(host);
    return family !== 0 && this.#local.addresses.check(host, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The changes of one turn go in one transaction (each service's part whole), behind any before them. */
  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#serial = this.#serial.then(() => this.#applyPending());
    });
  }

  async #applyPending(): Promise<void> {
    const work = [...this.#pending];
    this.#pending.clear();
    if (work.length === 0) return;
    const script: string[] = [];
    const next = new Map<number, Programmed | null>();
    const moved: { family: Family; port: number; from: Target }[] = [];
    const gone: number[] = [];
    for (const [port, service] of work) {
      const before = this.#programmed.get(port);
      const replaced = before !== undefined && before.service !== service;
      if (service === null || replaced) {
        // Gone (or the port now belongs to another service): everything of the old one goes.
        if (before !== undefined) {
          for (const [family, plan] of before.plans) script.push(removeServiceScript(family, plan));
          gone.push(port);
        }
        next.set(port, null);
        if (service === null) continue;
      }
      const old = replaced ? undefined : before;
      const plans = this.#plans(service);
      for (const family of FAMILIES) {
        const was = old?.plans.get(family);
        const plan = plans.get(family);
        if (plan === undefined) {
          if (was !== undefined) script.push(removeServiceScript(family, was));
        } else if (was === undefined) {
          script.push(addServiceScript(family, plan));
        } else if (was.tcp !== plan.tcp || was.udp !== plan.udp) {
          script.push(removeServiceScript(family, was), addServiceScript(family, plan));
        } else {
          const change = programScript(family, plan, was);
          if (change !== '') script.push(change);
        }
        if (was?.udpTarget && !sameTarget(was.udpTarget, plan?.udpTarget ?? null))
          moved.push({ family, port, from: was.udpTarget });
      }
      next.set(port, { service, plans });
    }
    if (script.length > 0) {
      try {
        const started = performance.now();
        await runNft(`${script.join('\n')}\n`);
        if (this.#logger.isLevelEnabled('debug')) {
          this.#logger.debug(
            { services: work.length, ms: Math.round(performance.now() - started) },
            'nftables transaction applied',
          );
        }
      } catch (error) {
        this.#failed((error as Error).message);
        await this.#resync();
        return;
      }
    }
    for (const [port, programmed] of next) {
      if (programmed === null) this.#programmed.delete(port);
      else this.#programmed.set(port, programmed);
    }
    // The old UDP primary's flows are cut loose: their next datagram is a new flow to the new primary.
    for (const { family, port, from } of moved) {
      await deleteUdpFlows(family, port, from.host, from.port).then(
        (flows) => this.#udpTraffic.deleted(family, flows),
        (error: Error) => this.#failed(`conntrack: ${error.message}`),
      );
    }
    for (const port of gone) {
      this.#totals.forget(port);
      this.#udpTraffic.forget(port);
    }
    if (gone.length > 0) await this.#deleteTranslatedUdp(new Set(gone));
  }

  /** Deletes the translated UDP flows of these service ports (the services are gone). */
  async #deleteTranslatedUdp(ports: ReadonlySet<number>): Promise<void> {
    for (const family of FAMILIES) {
      for (const flow of await listUdpFlows(family).catch(() => [])) {
        if (ports.has(flow.dport) && translated(flow))
          await deleteUdpFlows(family, flow.dport, flow.replySrc, flow.replySport).catch(() => []);
      }
    }
  }

  /** The whole table again (it vanished, or a transaction failed), for the node's services now. */
  async #resync(): Promise<void> {
    const services = [...this.#options.services()];
    this.#pending.clear();
    try {
      const started = performance.now();
      await runNft(this.#fullScript(services));
      this.#totals.tablesReplaced();
      this.#remember(services);
      const ms = Math.round(performance.now() - started);
      this.#logger.info({ services: services.length, ms }, 'nftables table rebuilt');
    } catch (error) {
      this.#failed(`rebuild: ${(error as Error).message}`);
    }
  }

  #failed(message: string): void {
    this.#lastError = message;
    this.#logger.warn(
      { code: 'W_DATAPLANE' },
      `nftables: ${message}; the userspace listeners serve meanwhile`,
    );
  }

  /**
   * Every poll with UDP services: the ICMP error counters (an error fails the primary over).
   * Every few polls: the table's presence (a missing table is rebuilt), the UDP flows
   * reconciled, and then the flow and byte counters, read outside the queue of changes: at
   * 1,000 services listing them takes ~250 ms, which a change would otherwise wait behind.
   */
  async #poll(): Promise<void> {
    if (this.#closed) return;
    this.#polls++;
    const full = this.#polls % FULL_POLL_EVERY === 0;
    // Between full polls only the tables that hold a UDP service are read.
    const udpFamilies = this.#familiesHolding('udp');
    const udp = udpFamilies.length > 0;
    if (!full && !udp) return;
    const families = full ? FAMILIES : udpFamilies;
    const run = this.#serial.then(async () => {
      if (this.#logger.isLevelEnabled('debug')) this.#logger.debug({ full, udp }, 'nftables poll');
      let tables: CounterReading;
      const generation = this.#totals.generation;
      try {
        tables = await readCounters(['unreachable'], families);
      } catch (error) {
        this.#failed((error as Error).message);
        return false;
      }
      this.#totals.keep(tables, generation);
      if (families.some((f) => !tables.has(f)) && !this.#closed) {
        this.#failed(`table ${TABLE} is gone`);
        this.#local = localAddresses();
        await this.#resync();
        return false;
      }
      this.#noticeUnreachable();
      if (full && udp) await this.#reconcileUdp();
      return true;
    });
    this.#serial = run;
    if (!(await run) || !full || this.#readingTraffic || this.#closed) return;
    this.#readingTraffic = true;
    try {
      // Beside the queue: a rebuild may come while nft lists (the reading is then dropped).
      const generation = this.#totals.generation;
      // A family whose table holds no service has nothing to count (its table's presence is
      // checked with the ICMP errors' map above).
      const counted = this.#familiesHolding('any');
      if (counted.length > 0) this.#totals.keep(await readCounters(TRAFFIC_MAPS, counted), generation);
    } catch (error) {
      this.#failed((error as Error).message);
    } finally {
      this.#readingTraffic = false;
    }
  }

  /**
   * New ICMP errors of a service's UDP flows fail its primary over, but only when the primary
   * was the same at the last reading: errors counted across a failover may be the old
   * primary's (datagrams in flight before its flows were deleted), and blaming the new one
   * for them sent a live flow back to the dead one for the down time.
   */
  #noticeUnreachable(): void {
    for (const { service, plans } of this.#programmed.values()) {
      if (!service.protocols.includes('udp')) continue;
      const count = this.counters(service).unreachable;
      const targets = FAMILIES.map((f) => plans.get(f)?.udpTarget).filter((t) => t != null);
      const primary = targets.map((t) => `${t.host}:${t.port}`).join(' ');
      const seen = this.#unreachableSeen.get(service.port);
      this.#unreachableSeen.set(service.port, { count, primary });
      // The errors are the programmed primary's: the node's own primary may have moved on
      // already (its change not yet in the table), and is not the one to blame.
      if (seen !== undefined && count > seen.count && seen.primary === primary && targets[0])
        this.#options.onUnreachable(service, targets[0]);
    }
  }

  /**
   * Counts what the services' UDP flows carried since the last listing, and deletes every UDP
   * entry of a service port that a DNAT sent elsewhere than its current primary.
   */
  async #reconcileUdp(): Promise<void> {
    for (const family of FAMILIES) {
      if (!this.#mustListUdp(family)) continue;
      const flows = await listUdpFlows(family).catch(() => null);
      if (flows === null) continue;
      this.#udpTraffic.listed(family, flows, (flow) => this.#countsUdp(flow));
      this.#noteUdpListing(family, flows);
      this.#warnUncounted();
      const stale = new Map<string, { port: number; host: string; hostPort: number }>();
      for (const flow of flows) {
        if (!this.#countsUdp(flow)) continue;
        const programmed = this.#programmed.get(flow.dport)!;
        const primary = programmed.plans.get(family)?.udpTarget;
        if (primary && primary.host === flow.replySrc && primary.port === flow.replySport) continue;
        stale.set(`${flow.dport} ${flow.replySrc} ${flow.replySport}`, {
          port: flow.dport,
          host: flow.replySrc,
          hostPort: flow.replySport,
        });
      }
      for (const s of stale.values()) {
        const deleted = await deleteUdpFlows(family, s.port, s.host, s.hostPort).catch(() => []);
        this.#udpTraffic.deleted(family, deleted);
        if (deleted.length > 0) {
          this.#logger.info(
            { port: s.port, to: `${s.host}:${s.hostPort}`, flows: deleted.length },
            'stale UDP flows removed (not the primary)',
          );
        }
      }
    }
  }

  /**
   * Whether a family's UDP flows must be listed now: service flows were live at the last listing
   * (their bytes and their end are read from the listings), the table has dispatched new UDP
   * flows since (as far as the last reading of its counters shows: a flow is then listed one
   * poll later at most, well within the 30 s a UDP entry outlives its last datagram), or the
   * last listing is old. Otherwise no translated UDP flow can be there: every one the kernel
   * makes is counted in `dispatch` first.
   */
  #mustListUdp(family: Family): boolean {
    const last = this.#udpListed.get(family);
    return (
      last === undefined ||
      last.live ||
      this.#udpDispatched(family) !== last.dispatched ||
      this.#polls - last.poll >= UDP_LISTING_AT_LEAST_EVERY * FULL_POLL_EVERY
    );
  }

  #noteUdpListing(family: Family, flows: readonly UdpFlow[]): void {
    this.#udpListed.set(family, {
      dispatched: this.#udpDispatched(family),
      live: flows.some((flow) => this.#countsUdp(flow)),
      poll: this.#polls,
    });
  }

  /** New UDP flows the family's table dispatched to the services it holds now, as last read. */
  #udpDispatched(family: Family): number {
    let flows = 0;
    for (const { service } of this.#programmed.values()) {
      if (service.protocols.includes('udp'))
        flows += this.#totals.get(family, 'dispatch', counterKey.flows('udp', service.port))?.packets ?? 0;
    }
    return flows;
  }

  /** The families whose tables hold a service (of any protocol, or one with UDP). */
  #familiesHolding(protocol: 'any' | 'udp'): Family[] {
    const held = new Set<Family>();
    for (const { service, plans } of this.#programmed.values())
      if (protocol === 'any' || service.protocols.includes('udp'))
        for (const family of plans.keys()) held.add(family);
    return FAMILIES.filter((family) => held.has(family));
  }

  /** Whether a listed UDP flow is one the kernel sent to an instance of a service the node follows. */
  #countsUdp(flow: UdpFlow): boolean {
    return this.#programmed.get(flow.dport)?.service.protocols.includes('udp') === true && translated(flow);
  }

  /** Once: flows without counts (accounting switched off since the table turned it on) are not in the UDP byte counts. */
  #warnUncounted(): void {
    if (this.#udpTraffic.uncounted === 0 || this.#warnedUncounted) return;
    this.#warnedUncounted = true;
    this.#logger.warn(
      { code: 'W_DATAPLANE', flows: this.#udpTraffic.uncounted },
      'nftables: UDP flows without conntrack counts are left out of the byte counters (net.netfilter.nf_conntrack_acct is 0; set it to 1)',
    );
  }
}

/** Whether a flow was translated (a DNAT): not one of the userspace listener's own. */
function translated(flow: UdpFlow): boolean {
  return !(flow.replySrc === flow.dst && flow.replySport === flow.dport);
}

/** A counter's bytes less its packets' headers. */
function payload(counter: Counter | undefined, header: number): number {
  return counter === undefined ? 0 : Math.max(0, counter.bytes - counter.packets * header);
}

function sameTarget(a: Target | null, b: Target | null): boolean {
  return a !== null && b !== null && a.host === b.host && a.port === b.port;
}

/**
 * This machine's addresses as the kernel routes them: every address of an interface, and the
 * whole prefix of a loopback one (lo's 127.0.0.1/8 makes all of 127/8 local; a machine whose
 * lo has only 127.0.0.1/32 may reach other 127 addresses over a link); and those loopback
 * prefixes by family, as nft writes them.
 */
function localAddresses(): { addresses: BlockList; loopback: Record<Family, string[]> } {
  const addresses = new BlockList();
  const loopback: Record<Family, string[]> = { ip: [], ip6: [] };
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const type = a.family === 'IPv4' ? 'ipv4' : 'ipv6';
      if (a.internal && a.cidr !== null) {
        const bits = Number(a.cidr.split('/')[1]);
        addresses.addSubnet(a.address, bits, type);
        // As the interface has it (127.0.0.1/8): nft takes a prefix with host bits set as its network.
        loopback[type === 'ipv4' ? 'ip' : 'ip6'].push(a.cidr);
      } else addresses.addAddress(a.address, type);
    }
  }
  return { addresses, loopback };
}

function readNumber(name: string): number | null {
  try {
    return Number(readFileSync(`/proc/sys/net/netfilter/${name}`, 'utf8').trim());
  } catch {
    return null;
  }
}
