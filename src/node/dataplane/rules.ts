// The nftables rule set of harbor-node's kernel data plane, as the text `nft -f -`
// reads: pure functions of what each service should do, so that a test can read
// them and `nft --check` can judge them. One table per address family (`ip
// harbor`, `ip6 harbor`). A new connection to a service port (a local client in
// the `output` hook, a remote one in `prerouting`) is sent by a verdict map to
// its service's chain, which DNATs it round-robin over the TCP instances that are
// up (`numgen inc`) or to the UDP primary; flows toward a remote instance are
// marked and masqueraded. Counters: new flows, bytes each way and ICMP
// port-unreachable errors of UDP flows (how a refusing UDP instance is
// noticed), the last two from one filter chain in postrouting, by the flow's
// original port. A service is in a family's table only while it has targets
// of that family: the rest is left to the userspace listener.

export type Family = 'ip' | 'ip6';
export const FAMILIES: readonly Family[] = ['ip', 'ip6'];
export const TABLE = 'harbor';
/** The conntrack mark of a flow toward a remote instance: masqueraded in postrouting. */
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
  /**
   * The loopback interface's prefixes in this family (127.0.0.0/8, ::1/128): a flow from one of
   * them cannot leave the machine, so toward a remote instance the userspace listener serves it.
   */
  readonly loopbackSources: readonly string[];
}

type Protocol = 'tcp' | 'udp';

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

/** Names of a service's objects in its table, by port (unique on a node). */
export function names(port: number) {
  const s = `s${port}`;
  return {
    tcp: `${s}_tcp`,
    udp: `${s}_udp`,
    instance: (i: number) => `${s}_tcp_${i}`,
    flows: `${s}_flows`,
    /** Packets and bytes toward the instance (original direction) and back, per protocol. */
    bytesIn: (p: Protocol) => `${s}_in_${p}`,
    bytesOut: (p: Protocol) => `${s}_out_${p}`,
    unreachable: `${s}_unreachable`,
  };
}

/**
 * The whole table, replaced in one transaction (start-up, and when it vanished): `listen`
 * limits DNAT to one address; otherwise every local address.
 */
export function tableScript(
  family: Family,
  listen: string | undefined,
  plans: readonly ServicePlan[],
): string {
  const t = `${family} ${TABLE}`;
  const match = listen === undefined ? 'fib daddr type local' : `${family} daddr ${listen}`;
  const icmp =
    family === 'ip'
      ? 'icmp type destination-unreachable icmp code port-unreachable'
      : 'icmpv6 type destination-unreachable icmpv6 code port-unreachable';
  const lines = [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t}`,
    // Always there, so that one listing of the counters also says whether the table is.
    `add counter ${t} present`,
    `add map ${t} dispatch { type inet_proto . inet_service : verdict; }`,
    `add map ${t} bytes { type ct_dir . inet_proto . inet_service : counter; }`,
    `add map ${t} unreachable { type inet_service : counter; }`,
    `add chain ${t} services`,
    `add rule ${t} services meta l4proto . th dport vmap @dispatch`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add rule ${t} output ${match} jump services`,
    `add chain ${t} prerouting { type nat hook prerouting priority -100; policy accept; }`,
    `add rule ${t} prerouting ${match} jump services`,
    `add chain ${t} postrouting { type nat hook postrouting priority 100; policy accept; }`,
    `add rule ${t} postrouting ct mark ${MASQUERADE_MARK} masquerade`,
    // One filter chain sees every packet leaving (forwarded or local, loopback included): the
    // bytes of translated flows each way, and the ICMP port-unreachable errors a refusing UDP
    // instance sends back (they belong to the flow they answer). One lookup per packet.
    `add chain ${t} accounting { type filter hook postrouting priority 0; policy accept; }`,
    `add rule ${t} accounting ct status dnat meta l4proto { tcp, udp } counter name ct direction . meta l4proto . ct original proto-dst map @bytes`,
    `add rule ${t} accounting ${icmp} ct original protocol udp counter name ct original proto-dst map @unreachable`,
  ];
  for (const plan of plans) lines.push(addServiceScript(family, plan), programScript(family, plan, 0));
  return `${lines.join('\n')}\n`;
}

/** A service's chains, counters and map elements, created once. */
export function addServiceScript(family: Family, plan: ServicePlan): string {
  const t = `${family} ${TABLE}`;
  const n = names(plan.port);
  const lines = [`add counter ${t} ${n.flows}`];
  for (const p of ['tcp', 'udp'] as const) {
    if (!plan[p]) continue;
    lines.push(
      `add chain ${t} ${n[p]}`,
      `add element ${t} dispatch { ${p} . ${plan.port} : goto ${n[p]} }`,
      `add counter ${t} ${n.bytesIn(p)}`,
      `add counter ${t} ${n.bytesOut(p)}`,
      `add element ${t} bytes { original . ${p} . ${plan.port} : "${n.bytesIn(p)}", reply . ${p} . ${plan.port} : "${n.bytesOut(p)}" }`,
    );
  }
  if (plan.udp) {
    lines.push(
      `add counter ${t} ${n.unreachable}`,
      `add element ${t} unreachable { ${plan.port} : "${n.unreachable}" }`,
    );
  }
  return lines.join('\n');
}

/**
 * Points a service's chains at its targets now: one transaction with the chains flushed and
 * filled again. `before`: how many instance chains it had (the ones no longer used go).
 */
export function programScript(family: Family, plan: ServicePlan, before: number): string {
  const t = `${family} ${TABLE}`;
  const n = names(plan.port);
  const lines: string[] = [];
  if (plan.tcp) {
    lines.push(`flush chain ${t} ${n.tcp}`);
    const targets = plan.tcpTargets;
    targets.forEach((target, i) => {
      lines.push(`add chain ${t} ${n.instance(i)}`, `flush chain ${t} ${n.instance(i)}`);
      for (const rule of dnatRules(family, target, 'tcp', plan.loopbackSources))
        lines.push(`add rule ${t} ${n.instance(i)} ${rule}`);
    });
    if (targets.length === 1)
      lines.push(`add rule ${t} ${n.tcp} counter name "${n.flows}" goto ${n.instance(0)}`);
    else if (targets.length > 1) {
      const arms = targets.map((_, i) => `${i} : goto ${n.instance(i)}`).join(', ');
      lines.push(
        `add rule ${t} ${n.tcp} counter name "${n.flows}" numgen inc mod ${targets.length} vmap { ${arms} }`,
      );
    }
    for (let i = targets.length; i < before; i++) lines.push(`delete chain ${t} ${n.instance(i)}`);
  }
  if (plan.udp) {
    lines.push(`flush chain ${t} ${n.udp}`);
    if (plan.udpTarget !== null) {
      for (const rule of dnatRules(
        family,
        plan.udpTarget,
        'udp',
        plan.loopbackSources,
        `counter name "${n.flows}" `,
      ))
        lines.push(`add rule ${t} ${n.udp} ${rule}`);
    }
  }
  return lines.join('\n');
}

/** Everything of a service, removed in one transaction. */
export function removeServiceScript(family: Family, plan: ServicePlan, instanceChains: number): string {
  const t = `${family} ${TABLE}`;
  const n = names(plan.port);
  const lines: string[] = [];
  for (const p of ['tcp', 'udp'] as const) {
    if (!plan[p]) continue;
    lines.push(
      `delete element ${t} bytes { original . ${p} . ${plan.port}, reply . ${p} . ${plan.port} }`,
      `delete element ${t} dispatch { ${p} . ${plan.port} }`,
      `flush chain ${t} ${n[p]}`,
    );
  }
  for (let i = 0; i < instanceChains; i++) lines.push(`delete chain ${t} ${n.instance(i)}`);
  for (const p of ['tcp', 'udp'] as const) if (plan[p]) lines.push(`delete chain ${t} ${n[p]}`);
  if (plan.udp)
    lines.push(`delete element ${t} unreachable { ${plan.port} }`, `delete counter ${t} ${n.unreachable}`);
  lines.push(`delete counter ${t} ${n.flows}`);
  for (const p of ['tcp', 'udp'] as const)
    if (plan[p]) lines.push(`delete counter ${t} ${n.bytesIn(p)}`, `delete counter ${t} ${n.bytesOut(p)}`);
  return lines.join('\n');
}

/** The rules that send a new flow to `target`: a remote one is masqueraded, and loopback clients stay in userspace. */
function dnatRules(
  family: Family,
  target: Target,
  protocol: 'tcp' | 'udp',
  loopbackSources: readonly string[],
  count = '',
): string[] {
  const to = family === 'ip' ? `${target.host}:${target.port}` : `[${target.host}]:${target.port}`;
  if (target.local) return [`${count}meta l4proto ${protocol} dnat ${family} to ${to}`];
  // A loopback source cannot leave the machine (without route_localnet): the userspace listener serves it.
  const loopback =
    loopbackSources.length === 0 ? [] : [`${family} saddr { ${loopbackSources.join(', ')} } return`];
  return [
    ...loopback,
    `${count}ct mark set ${MASQUERADE_MARK} meta l4proto ${protocol} dnat ${family} to ${to}`,
  ];
}
