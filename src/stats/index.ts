// Plain counters that the serving parts update on their hot paths and the
// admin endpoint reads when scraped. Numbers in an object, no label hashing,
// no allocation per event.

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
  };
}

const CLASSES: readonly StatusClass[] = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

export function countResponse(stats: ServiceStats, status: number): void {
  const statusClass = CLASSES[Math.floor(status / 100)] ?? '5xx';
  stats.requests[statusClass]++;
}

export function countHandshakeError(stats: ServiceStats, reason: string): void {
  stats.handshakeErrors.set(reason, (stats.handshakeErrors.get(reason) ?? 0) + 1);
}
