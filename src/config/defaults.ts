// Every default of the programs' settings, written once: the settings tables
// show them (README, --help), the resolvers apply them, and the parts fall back
// to them when built without settings (the proxy, the forwarder, the node).
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
  backendProtocol: 'http1' as 'http1' | 'h2c',
});

/** The TCP/UDP forwarder's (harbor-node's userspace data plane, the sidecar's plain services). */
export const FORWARD_DEFAULTS = Object.freeze({
  udpIdleTimeoutMs: 60_000,
  udpMaxSessions: 4096,
  /**
   * Sessions one client address may hold. One host sending from many source ports must not
   * take the whole table and lock everyone else out: past this, its own least recently seen
   * session makes room. A NAT gateway of many users fits.
   */
  udpSessionsPerSource: 256,
});

export const NODE_DEFAULTS = Object.freeze({
  ports: '35000-40000',
  api: Object.freeze({ host: '127.0.0.1', port: 9700 }),
  nodeId: 'harbor_node_1',
  tcpIdleTimeoutMs: 3_600_000,
  drainTimeoutMs: 10_000,
  apiConnections: 64,
  proxyProtocol: 'off' as 'off' | 'v1' | 'v2',
  dataplane: 'userspace' as 'userspace' | 'nftables',
  checkIntervalMs: 3_000,
  logLevel: 'info',
});

/** A duration default as the docs write it: 60000 -> "60s", 3600000 -> "1h". */
export function durationText(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
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
