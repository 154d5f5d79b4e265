// Every default of harbor-sidecar's settings, written once: the settings table
// shows them (README, --help), the resolver applies them, and the proxy falls
// back to them when built without settings (src/https/core.ts).
import type { Address } from './types.js';

export const SIDECAR_DEFAULTS = Object.freeze({
  listenHosts: Object.freeze(['0.0.0.0', '::']) as readonly string[],
  backendTimeoutMs: 60_000,
  drainTimeoutMs: 10_000,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxHeaderBytes: 16_384,
  maxConnections: 10_000,
  maxBufferedBodyBytes: 64 * 1024 * 1024,
  admin: Object.freeze({ kind: 'tcp', host: '127.0.0.1', port: 9701 }) as Address,
  nodeTtlMs: 30_000,
  proxyProtocol: 'off' as 'off' | 'v1' | 'v2',
  format: 'shell' as 'shell' | 'dotenv' | 'json',
  warnDays: 30,
  logLevel: 'info',
  accessLog: 'off' as 'off' | 'json' | 'combined',
  accessLogQuery: 'drop' as 'keep' | 'drop',
});

/** A duration default as the docs write it: 60000 -> "60s". */
export function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A size default as the docs write it: 67108864 -> "64m". */
export function sizeText(bytes: number): string {
  for (const [unit, scale] of [
    ['g', 1024 ** 3],
    ['m', 1024 ** 2],
    ['k', 1024],
  ] as const) {
    if (bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return String(bytes);
}
