// The human form of /status: one line per service, then the full text of any
// failed reload (too long for a column). Written for a debug shell.
import type { ServiceStats } from '../stats/index.js';
import type { StatusCounters, StatusReport, StatusService } from './types.js';

const DAY_MS = 86_400_000;
const HEADERS = [
  'SERVICE',
  'PROTOCOL',
  'INT_PORT',
  'PORT',
  'CERTIFICATE',
  'DAYS LEFT',
  'CONNS',
  'LAST RELOAD',
];

/** ServiceStats as the JSON counters of /status. Called at request time, never on a hot path. */
export function countersOf(stats: ServiceStats): StatusCounters {
  return {
    connectionsOpen: stats.connectionsOpen,
    connectionsTotal: stats.connectionsTotal,
    requests: { ...stats.requests },
    bytesIn: stats.bytesIn,
    bytesOut: stats.bytesOut,
    handshakeErrors: Object.fromEntries(stats.handshakeErrors),
    reloadsSucceeded: stats.reloadsSucceeded,
    reloadsFailed: stats.reloadsFailed,
    backendErrors: stats.backendErrors,
  };
}

/** Whole days until `notAfter` (negative once expired), or undefined when unknown. */
export function daysLeft(notAfter: string | undefined, now: number): number | undefined {
  const at = notAfter === undefined ? Number.NaN : Date.parse(notAfter);
  return Number.isNaN(at) ? undefined : Math.floor((at - now) / DAY_MS);
}

function shortTime(iso: string): string {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? iso : new Date(at).toISOString().replace(/\.\d+Z$/, 'Z');
}

function row(service: StatusService, now: number): string[] {
  const inspection = service.pair?.inspection ?? null;
  let certificate = '-';
  let days = '-';
  if (service.pair || service.protocol === 'https') {
    // An HTTPS service with no pair (or a pair with no valid inspection) is waiting for certificates.
    certificate = inspection ? inspection.subject : 'none loaded';
    const left = daysLeft(inspection?.notAfter, now);
    if (left !== undefined) days = left < 0 ? `expired (${left})` : String(left);
  }
  const counters = service.counters;
  const conns = counters ? `${counters.connectionsOpen}/${counters.connectionsTotal}` : '-';
  const reload = service.lastReload;
  const lastReload = reload ? `${reload.ok ? 'ok' : 'FAILED'} ${shortTime(reload.at)}` : '-';
  return [
    service.name,
    service.protocol ?? '-',
    String(service.int_port ?? '-'),
    service.port === null || service.port === undefined ? '-' : String(service.port),
    certificate,
    days,
    conns,
    lastReload,
  ];
}

/** A plain-text table of the services, for `harbor-sidecar status`. `now` is milliseconds since the epoch. */
export function formatStatusTable(status: StatusReport, now: number = Date.now()): string {
  if (status.services.length === 0) return `${status.program ?? 'harbor-sidecar'}: no Harbor services\n`;
  const rows = [HEADERS, ...status.services.map((service) => row(service, now))];
  const widths = HEADERS.map((_, column) => Math.max(...rows.map((cells) => (cells[column] ?? '').length)));
  const lines = rows.map((cells) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  for (const service of status.services) {
    const reload = service.lastReload;
    if (reload && !reload.ok) {
      lines.push(
        `${service.name}: last reload failed at ${shortTime(reload.at)}: ${reload.error ?? 'no reason given'}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
