// Plain counters that the serving parts update on their hot paths and the
// admin endpoint reads when scraped. Numbers in an object, no label hashing,
// no allocation per event.
import { LatencyHistogram } from './latency.js';

export { LATENCY_BUCKETS, LatencyHistogram } from './latency.js';

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx';

export interface ServiceStats {
  connectionsOpen: number;
  connectionsTotal: number;
  readonly requests: Record<StatusClass, number>;
  bytesIn: number;
  bytesOut: number;
  /** Failed TLS handshakes by reason (an OpenSSL reason or 'timeout', 'reset'...). */
  readonly handshakeErrors: Map<string, number>;
  reloadsSucceeded: number;
  reloadsFailed: number;
  backendErrors: number;
  /**
   * HTTPS: seconds from a request's head to its end (the answer's last byte written, the
   * answer cut, or the client gone), by status class in STATUS_CLASSES' order (an array: a
   * request finds its own by index, not by name); each made at its class's first request.
   */
  readonly requestSeconds: (LatencyHistogram | undefined)[];
  /** HTTPS: seconds from a request's head to the backend's response head; made at the first. */
  backendSeconds: LatencyHistogram | undefined;
}

export function createServiceStats(): ServiceStats {
  return {
    connectionsOpen: 0,
    connectionsTotal: 0,
    requests: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    bytesIn: 0,
    bytesOut: 0,
    handshakeErrors: new Map(),
    reloadsSucceeded: 0,
    reloadsFailed: 0,
    backendErrors: 0,
    requestSeconds: [undefined, undefined, undefined, undefined, undefined],
    backendSeconds: undefined,
  };
}

export const STATUS_CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx'];
const CLASSES: readonly StatusClass[] = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

function classOf(status: number): StatusClass {
  return CLASSES[Math.floor(status / 100)] ?? '5xx';
}

export function countResponse(stats: ServiceStats, status: number): void {
  stats.requests[classOf(status)]++;
}

/**
 * A request's times, as performance.now() readings: begun at `startedAt` (0: its head was
 * refused before it became a request, counted as taking no time), answered by the backend at
 * `backendAt` (0: never), over at `endedAt`, with `status`.
 */
export function countRequestTimes(
  stats: ServiceStats,
  status: number,
  startedAt: number,
  backendAt: number,
  endedAt: number,
): void {
  // STATUS_CLASSES' index: 0 for 1xx (and anything below), 4 for 5xx (and anything above).
  const index = status < 200 ? 0 : status < 300 ? 1 : status < 400 ? 2 : status < 500 ? 3 : 4;
  const histogram = stats.requestSeconds[index] ?? newHistogram(stats.requestSeconds, index);
  if (startedAt === 0) {
    histogram.observe(0);
    return;
  }
  histogram.observe((endedAt - startedAt) / 1000);
  if (backendAt !== 0) {
    stats.backendSeconds ??= new LatencyHistogram();
    stats.backendSeconds.observe((backendAt - startedAt) / 1000);
  }
}

function newHistogram(list: (LatencyHistogram | undefined)[], index: number): LatencyHistogram {
  const histogram = new LatencyHistogram();
  list[index] = histogram;
  return histogram;
}

/** The request times of one status class; undefined before its first request. */
export function requestSecondsOf(
  stats: ServiceStats,
  statusClass: StatusClass,
): LatencyHistogram | undefined {
  return stats.requestSeconds[STATUS_CLASSES.indexOf(statusClass)];
}

export function countHandshakeError(stats: ServiceStats, reason: string): void {
  stats.handshakeErrors.set(reason, (stats.handshakeErrors.get(reason) ?? 0) + 1);
}
