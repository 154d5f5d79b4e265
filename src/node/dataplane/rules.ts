// The nftables rule set of harbor-node's kernel data plane, as the text `nft -f -`
// reads: pure functions of what each service should do, so that a test can read
// them and `nft --check` can judge them. One table per address family (`ip
// harbor`, `ip6 harbor`). A new connection to a service port (a local client in
// the `output` hook, a remote one in `prerouting`) is sent by a verdict map to
// its service's TCP chain, which DNATs it round-robin over the instances that
// are up (`numgen inc`), or for UDP to the primary looked up in a map. Flows to
// a remote instance are masqueraded. Counters are those of map elements: new
// flows (the dispatch map's), TCP bytes each way and the ICMP port-unreachable
// errors of UDP flows (how a refusing UDP instance is noticed); UDP bytes are
// conntrack's per-flow counts, which the table turns on. A service is in
// a family's table only while it has targets of that family: the rest is left
// to the userspace listener.
//
// Why maps rather than chains and named counters: `nft` (1.0.6) reads every
// chain and every named object of the ruleset before any change that adds a
// rule or an element. With 1,000 services as one chain per instance and named
// counters, that reading took a single service's change to ~50 ms; with maps
// it is ~25 ms (docs/dataplane.md). Everything that changes often (a UDP
// primary, which clients stay in userspace, masquerading) is a map element.

export type Family = 'ip' | 'ip6';
export const FAMILIES: readonly Family[] = ['ip', 'ip6'];
export const TABLE = 'harbor';
/** The conntrack mark of a flow toward a remote instance, set where it is masqueraded. */
export const MASQUERADE_MARK = '0x4862';

/** Where one instance is, for the kernel: an IP literal of the table's family. */
export interface Target {
  readonly host: string;
  readonly port: number;
  /** An address of this machine: no masquerade, and loopback clients may be sent to it. */
  readonly local: boolean;
}

/** What one service port does in one family's table. */
export interface ServicePlan {
  readonly port: number;
  readonly tcp: boolean;
  readonly udp: boolean;
  /** TCP targets in round-robin order; empty: left to the userspace listener. */
  readonly tcpTargets: readonly Target[];
  /** The UDP primary; null: left to the userspace listener. */
  readonly udpTarget: Target | null;
}

type Protocol = 'tcp' | 'udp';
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];

/**
 * The headers each counted packet carries, taken off the counted bytes to give the payload
 * that a socket (and the userspace data plane) counts: IPv4 20 or IPv6 40 bytes, then TCP
 * with the timestamps option every Linux peer sends (32) or UDP (8). On a 1500-byte MTU the
 * headers alone are 3.5% of a TCP flow's bytes. A peer without TCP timestamps (12 bytes less
 * per packet) is counted about 0.8% short.
 */
export function headerBytes(family: Family, protocol: Protocol): number {
  return (family === 'ip' ? 20 : 40) + (protocol === 'tcp' ? 32 : 8);
}

/** The TCP chain of a service (its round-robin rule). */
export function tcpChain(port: number): string {
  return `s${port}_tcp`;
}

/** The maps whose element counters the node reads (nft.ts), and each element's key in its map. */
export type CounterMap = 'dispatch' | 'bytes' | 'unreachable';
export const counterKey = {
  /** `dispatch`: new flows of a service's protocol the kernel forwarded. */
  flows: (protocol: Protocol, port: number) => `${protocol} ${port}`,
  /** `bytes`: packets and bytes of a service's TCP toward the instance (original) or back (reply). */
  bytes: (direction: 'original' | 'reply', port: number) => `${direction} ${port}`,
  /** `unreachable`: the ICMP port-unreachable errors of a service's UDP flows. */
  unreachable: (port: number) => String(port),
};

/**
 * The whole table, replaced in one transaction (start-up, and when it vanished): `listen`
 * limits DNAT to one address; otherwise every local address. `loopbackSources`: the loopback
 * interface's prefixes in this family (127.0.0.0/8, ::1/128): a flow from one of them cannot
 * leave the machine, so toward a remote instance the userspace listener serves it.
 */
export function tableScript(
  family: Family,
  listen: string | undefined,
  loopbackSources: readonly string[],
  plans: readonly ServicePlan[],
): string {
  const t = `${family} ${TABLE}`;
  const address = family === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const match = listen === undefined ? 'fib daddr type local' : `${family} daddr ${listen}`;
  const icmp =
    family === 'ip'
      ? 'icmp type destination-unreachable icmp code port-unreachable'
      : 'icmpv6 type destination-unreachable icmpv6 code port-unreachable';
  // A TCP packet longer than its headers (`headerBytes`): the bare ACKs and FINs of a short
  // connection, six of its ten packets, carry no payload and are not looked up (they would
  // count as 0). The packet's own length, not its IP header's field: a GSO packet of more than
  // 64 KiB (BIG TCP) has 0 there.
  const withPayload = `meta length > ${headerBytes(family, 'tcp')}`;
  const lines = [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t}`,
    // Service ports the kernel forwards: to the service's TCP chain, or to the UDP primary.
    // Each element counts the new flows it dispatched.
    `add map ${t} dispatch { type inet_proto . inet_service : verdict; counter; }`,
    `add map ${t} udp_primary { type inet_service : ${address} . inet_service; }`,
    // Protocol and port of a service the kernel leaves to the userspace listener: for every
    // client (no target up in this family), or for loopback clients (a remote target).
    `add set ${t} userspace { type inet_proto . inet_service; }`,
    `add set ${t} userspace_loopback { type inet_proto . inet_service; }`,
    // Service port and remote instance address: such flows are masqueraded.
    `add set ${t} remote { type inet_service . ${address}; }`,
    `add map ${t} bytes { type ct_dir . inet_service : verdict; counter; }`,
    `add map ${t} unreachable { type inet_service : verdict; counter; }`,
    `add chain ${t} services`,
    `add rule ${t} services meta l4proto . th dport @userspace return`,
    ...(loopbackSources.length === 0
      ? []
      : [
          `add rule ${t} services ${family} saddr ${nftSet(loopbackSources)} meta l4proto . th dport @userspace_loopback return`,
        ]),
    `add rule ${t} services meta l4proto . th dport vmap @dispatch`,
    `add chain ${t} udp_to_primary`,
    `add rule ${t} udp_to_primary meta l4proto udp dnat ${family} to udp dport map @udp_primary`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add rule ${t} output ${match} jump services`,
    `add chain ${t} prerouting { type nat hook prerouting priority -100; policy accept; }`,
    `add rule ${t} prerouting ${match} jump services`,
    `add chain ${t} postrouting { type nat hook postrouting priority 100; policy accept; }`,
    `add rule ${t} postrouting ct status dnat meta l4proto { tcp, udp } ct original proto-dst . ${family} daddr @remote ct mark set ${MASQUERADE_MARK} masquerade`,
    // One filter chain sees every packet leaving (forwarded or local, loopback included): the
    // bytes of translated TCP flows each way (one lookup per packet with payload), and the ICMP
    // port-unreachable errors a refusing UDP instance sends back (they belong to the flow they
    // answer). A UDP datagram only crosses it: its flow's bytes are conntrack's own counts,
    // read with the UDP flows the node reconciles (a lookup per datagram cost 7-10% of the
    // datagrams delivered; a TCP packet carries up to 64 KiB on loopback).
    `add chain ${t} accounting { type filter hook postrouting priority 0; policy accept; }`,
    `add rule ${t} accounting meta l4proto tcp ${withPayload} ct status dnat ct direction . ct original proto-dst vmap @bytes`,
    `add rule ${t} accounting ${icmp} ct original protocol udp ct original proto-dst vmap @unreachable`,
    // Never jumped to: a rule that reads a flow's byte count turns conntrack's per-flow
    // accounting on in this network namespace (net.netfilter.nf_conntrack_acct=1), with the table.
    `add chain ${t} conntrack_accounting`,
    `add rule ${t} conntrack_accounting ct original bytes 0 counter`,
  ];
  for (const plan of plans) lines.push(addServiceScript(family, plan));
  return `${lines.join('\n')}\n`;
}

/** A service's chain and map elements, created once, pointed at its targets. */
export function addServiceScript(family: Family, plan: ServicePlan): string {
  const t = `${family} ${TABLE}`;
  const p = plan.port;
  const lines: string[] = [];
  if (plan.tcp) lines.push(`add chain ${t} ${tcpChain(p)}`);
  for (const protocol of PROTOCOLS) {
    if (!plan[protocol]) continue;
    const to = protocol === 'tcp' ? tcpChain(p) : 'udp_to_primary';
    lines.push(`add element ${t} dispatch { ${protocol} . ${p} : goto ${to} }`);
  }
  if (plan.tcp) lines.push(`add element ${t} bytes { original . ${p} : continue, reply . ${p} : continue }`);
  if (plan.udp) lines.push(`add element ${t} unreachable { ${p} : continue }`);
  const program = programScript(family, plan, null);
  if (program !== '') lines.push(program);
  return lines.join('\n');
}

/**
 * Points a service at its targets now, from what `before` (as applied) had: its TCP chain
 * filled again when its targets changed, and only the map elements that differ deleted or
 * added. '' when nothing changes.
 */
export function programScript(family: Family, plan: ServicePlan, before: ServicePlan | null): string {
  const t = `${family} ${TABLE}`;
  const lines: string[] = [];
  if (plan.tcp && (before === null || !sameTargets(before.tcpTargets, plan.tcpTargets))) {
    if (before !== null) lines.push(`flush chain ${t} ${tcpChain(plan.port)}`);
    const rule = roundRobinRule(family, plan.tcpTargets);
    if (rule !== null) lines.push(`add rule ${t} ${tcpChain(plan.port)} ${rule}`);
  }
  const was = before === null ? EMPTY : elementsOf(before);
  const now = elementsOf(plan);
  for (const set of ELEMENT_SETS) {
    const gone = was[set].filter((e) => !now[set].includes(e));
    const added = now[set].filter((e) => !was[set].includes(e));
    if (gone.length > 0) lines.push(`delete element ${t} ${set} { ${gone.join(', ')} }`);
    if (added.length > 0) lines.push(`add element ${t} ${set} { ${added.join(', ')} }`);
  }
  return lines.join('\n');
}

/** Everything of a service, removed in one transaction (`before`: as applied). */
export function removeServiceScript(family: Family, before: ServicePlan): string {
  const t = `${family} ${TABLE}`;
  const p = before.port;
  const lines: string[] = [];
  const was = elementsOf(before);
  for (const set of ELEMENT_SETS)
    if (was[set].length > 0) lines.push(`delete element ${t} ${set} { ${was[set].join(', ')} }`);
  for (const protocol of PROTOCOLS) {
    if (!before[protocol]) continue;
    lines.push(`delete element ${t} dispatch { ${protocol} . ${p} }`);
  }
  if (before.tcp) lines.push(`delete element ${t} bytes { original . ${p}, reply . ${p} }`);
  if (before.udp) lines.push(`delete element ${t} unreachable { ${p} }`);
  if (before.tcp) lines.push(`flush chain ${t} ${tcpChain(p)}`, `delete chain ${t} ${tcpChain(p)}`);
  return lines.join('\n');
}

const ELEMENT_SETS = ['userspace', 'userspace_loopback', 'remote', 'udp_primary'] as const;
type ElementSet = (typeof ELEMENT_SETS)[number];
const EMPTY = noElements();

function noElements(): Record<ElementSet, string[]> {
  return { userspace: [], userspace_loopback: [], remote: [], udp_primary: [] };
}

/** The elements a service's plan puts in the table's sets and maps, as nft writes them. */
function elementsOf(plan: ServicePlan): Record<ElementSet, string[]> {
  const p = plan.port;
  const elements = noElements();
  const remote = new Set<string>();
  const targets: [Protocol, readonly Target[]][] = [
    ['tcp', plan.tcp ? plan.tcpTargets : []],
    ['udp', plan.udp && plan.udpTarget !== null ? [plan.udpTarget] : []],
  ];
  for (const [protocol, list] of targets) {
    if (!plan[protocol]) continue;
    if (list.length === 0) elements.userspace.push(`${protocol} . ${p}`);
    // A loopback client cannot be sent off the machine: where the rotation has a remote
    // instance, the userspace listener serves all of the service's loopback clients.
    if (list.some((target) => !target.local)) elements.userspace_loopback.push(`${protocol} . ${p}`);
    for (const target of list) if (!target.local) remote.add(`${p} . ${target.host}`);
  }
  elements.remote = [...remote];
  if (plan.udp && plan.udpTarget !== null)
    elements.udp_primary.push(`${p} : ${plan.udpTarget.host} . ${plan.udpTarget.port}`);
  return elements;
}

/** The DNAT of a new TCP connection: round-robin over the targets; null without one. */
function roundRobinRule(family: Family, targets: readonly Target[]): string | null {
  if (targets.length === 0) return null;
  if (targets.length === 1) {
    const only = targets[0]!;
    const to = family === 'ip' ? `${only.host}:${only.port}` : `[${only.host}]:${only.port}`;
    return `meta l4proto tcp dnat ${family} to ${to}`;
  }
  const arms = targets.map((target, i) => `${i} : ${target.host} . ${target.port}`).join(', ');
  return `meta l4proto tcp dnat ${family} to numgen inc mod ${targets.length} map { ${arms} }`;
}

function sameTargets(a: readonly Target[], b: readonly Target[]): boolean {
  return a.length === b.length && a.every((x, i) => x.host === b[i]!.host && x.port === b[i]!.port);
}

function nftSet(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}
