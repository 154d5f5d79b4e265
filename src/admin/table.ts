// The human form of /status: one line per service, then the full text of any
// failed reload (too long for a column). Written for a debug shell.
import { LatencyHistogram, type ServiceStats } from '../stats/index.js';
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
  'REQUESTS',
  'P50/P99',
  'LAST RELOAD',
];

/** ServiceStats as the JSON counters of /status. Called at request time, never on a hot path. */
export function countersOf(stats: ServiceStats): StatusCounters {
  const times = LatencyHistogram.merged(stats.requestSeconds);
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
    ...(times.count === 0
      ? {}
      : {
          requestSeconds: {
            count: times.count,
            p50: times.quantile(0.5) as number,
            p90: times.quantile(0.9) as number,
            p99: times.quantile(0.99) as number,
          },
        }),
  };
}

/** Seconds as a person reads a latency: 0.4ms, 12ms, 1.5s. */
function shortSeconds(seconds: number): string {
  if (seconds >= 1) return `${Number(seconds.toFixed(1))}s`;
  const ms = seconds * 1000;
  return ms < 10 ? `${Number(ms.toFixed(1))}ms` : `${Math.round(ms)}ms`;
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
  const isHttps = service.protocol === 'https';
  const requests =
    counters && isHttps ? String(Object.values(counters.requests).reduce((a, b) => a + b, 0)) : '-';
  const times = counters?.requestSeconds;
  const latency = times ? `${shortSeconds(times.p50)}/${shortSeconds(times.p99)}` : '-';
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
    requests,
    latency,
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
