// How `harbor` prints what the node says: the seed's "check the settings and
// credentials" view of one service, and the table of every service.
import {
  type Credentials,
  credentialsBlock,
  fieldLines,
  protocolLine,
  reachedAt,
  variableLine,
} from './explain.js';

/** GET /v1/services/{id} as the node answers it (the fields this view reads). */
export interface ServiceView {
  readonly service: string;
  readonly protocol: string;
  readonly listening: boolean;
  readonly conflict: string | null;
  readonly credentials: Credentials;
  readonly instances: readonly {
    readonly id: string;
    readonly host: string;
    readonly port: number;
    readonly ttl: number | null;
    readonly state: string;
    readonly udp_role?: 'primary' | 'queued';
  }[];
  readonly counters: Readonly<Record<string, Readonly<Record<string, number | boolean>>>>;
  readonly nodes?: readonly {
    readonly member: string;
    readonly known: boolean;
    readonly listening: boolean;
    readonly conflict: string | null;
    readonly instances: Readonly<Record<string, string>>;
  }[];
}

/** Left-aligned columns, two spaces apart. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The credentials in the seed's shape, what each field means, the protocol, the app's variable. */
function explained(service: string, credentials: Credentials): string[] {
  return [
    credentialsBlock(service, credentials).trimEnd(),
    '',
    ...fieldLines(credentials),
    '',
    protocolLine(service),
    variableLine(service, credentials.int_port),
    '',
  ];
}

/** What create-service prints: the credentials in the seed's shape, then what each field means. */
export function createdText(view: { service: string; credentials: Credentials }, node: string): string {
  const { service, credentials } = view;
  return [`created ${service} on ${node}`, '', ...explained(service, credentials)].join('\n');
}

export function serviceText(view: ServiceView): string {
  const { service, credentials } = view;
  const lines = [
    `${service}: ${view.protocol} on port ${credentials.port}, reached at ${reachedAt(credentials)}; the app listens on ${credentials.int_port}`,
    view.listening ? 'listening on this node' : `NOT listening on this node: ${view.conflict ?? 'starting'}`,
    '',
    ...explained(service, credentials),
  ];
  const udp = view.instances.some((i) => i.udp_role !== undefined);
  if (view.instances.length === 0) {
    lines.push('instances: none registered yet (harbor-sidecar registers each app instance as it starts)');
  } else {
    lines.push(`instances (${view.instances.length}${udp ? ', in UDP queue order' : ''}):`);
    const rows = view.instances.map((i) => [
      i.id,
      `${i.host.includes(':') ? `[${i.host}]` : i.host}:${i.port}`,
      i.state,
      ...(udp ? [i.udp_role ?? ''] : []),
      i.ttl === null ? 'none' : `${i.ttl} s`,
    ]);
    const header = ['ID', 'ADDRESS', 'STATE', ...(udp ? ['UDP'] : []), 'TTL'];
    lines.push(...table(header, rows).map((l) => `  ${l}`));
  }
  lines.push('', trafficLine(view.counters));
  // In a cluster, each node's own observation: a port another process holds there, instances it finds down.
  if ((view.nodes?.length ?? 0) > 1) {
    lines.push(`cluster: ${view.nodes!.length} nodes`);
    for (const n of view.nodes!) {
      const down = Object.entries(n.instances).map(([id, state]) => `${id} ${state}`);
      const what = !n.known
        ? 'has not synced it yet'
        : n.listening
          ? 'listening'
          : `NOT listening: ${n.conflict ?? 'starting'}`;
      lines.push(`  ${n.member}: ${what}${down.length > 0 ? `; sees ${down.join(', ')}` : ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function trafficLine(counters: ServiceView['counters']): string {
  const parts: string[] = [];
  const tcp = counters.tcp;
  const udp = counters.udp;
  if (tcp) {
    parts.push(
      `TCP ${tcp.connectionsOpen} open, ${tcp.connectionsTotal} total, ${tcp.connectionsFailed} failed, ${tcp.bytesIn} B in, ${tcp.bytesOut} B out`,
    );
  }
  if (udp) {
    parts.push(
      `UDP ${udp.sessionsOpen} sessions open, ${udp.datagramsIn} datagrams in, ${udp.datagramsOut} out, ${udp.datagramsDropped} dropped`,
    );
  }
  return `traffic through this node: ${parts.join('; ')}`;
}

export function servicesTable(views: readonly ServiceView[]): string {
  if (views.length === 0) return 'no services yet (harbor create-service NAME)\n';
  const rows = views.map((v) => [
    v.service,
    v.protocol,
    String(v.credentials.port),
    reachedAt(v.credentials),
    String(v.credentials.int_port),
    `${v.instances.filter((i) => i.state === 'up').length}/${v.instances.length}`,
    v.listening ? 'listening' : `conflict: ${v.conflict ?? 'starting'}`,
    v.credentials.name,
  ]);
  const header = ['NAME', 'PROTOCOL', 'PORT', 'REACHED AT', 'INT_PORT', 'UP', 'STATE', 'ID'];
  return `${table(header, rows).join('\n')}\n`;
}
