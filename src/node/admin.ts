// What the admin endpoint (src/admin) reads from harbor-node: readiness
// (every service listens on its port), the /status document, and the
// per-service counters /metrics turns into Prometheus text.
import { type AdminRequestHandler, adminHandler } from '../admin/server.js';
import { countersOf } from '../admin/table.js';
import type { StatusReport } from '../admin/types.js';
import type { Logger } from '../log/index.js';
import type { ApiCertificate } from './api-certificate.js';
import type { HarborNode } from './node.js';

export interface NodeAdminOptions {
  readonly node: HarborNode;
  readonly logger: Logger;
  readonly version: string;
  readonly startedAt: Date;
  /** The API's certificate, when it serves HTTPS. */
  readonly apiCertificate?: ApiCertificate | undefined;
}

/** Reasons the node is not ready: a service whose port another process holds. Empty when ready. */
export function nodeReadiness(node: HarborNode): string[] {
  const reasons: string[] = [];
  if (node.lifecycle !== 'listening') reasons.push(`harbor-node is ${node.lifecycle}`);
  const store = node.storeStatus();
  // Before its first sync a node knows no service: it must not be sent clients yet.
  if (store.synced_at === null) reasons.push(`store ${store.store} not reached yet`);
  for (const service of node.services) {
    if (!service.listening) {
      reasons.push(`${service.name}: port ${service.port} not listening (${service.conflict ?? 'starting'})`);
    }
  }
  return reasons;
}

export function nodeStatusReport(options: NodeAdminOptions): StatusReport {
  const { node } = options;
  return {
    program: 'harbor-node',
    version: options.version,
    pid: process.pid,
    startedAt: options.startedAt.toISOString(),
    state: node.lifecycle,
    store: node.storeStatus(),
    members: memberSummaries(node),
    dataplane: node.dataplaneStatus() ?? { kind: 'userspace' },
    api: { tls: options.apiCertificate?.status() ?? 'off' },
    services: [...node.services].map((s) => ({
      name: s.name,
      protocol: s.transport,
      int_port: s.intPort,
      port: s.port,
      // Where connections go: the instances, in arrival order.
      backend:
        [...s.instances]
          .map((i) => `${i.host.includes(':') ? `[${i.host}]` : i.host}:${i.port}`)
          .join(', ') || null,
      pair: null,
      lastReload: null,
      counters: countersOf(s.stats),
    })),
  };
}

/** Each member: how old its view is, the ports it cannot listen on and why, the instances it finds not up. */
function memberSummaries(node: HarborNode) {
  const names = new Map([...node.services].map((s) => [s.id, s.name]));
  return node.members().map(({ member, age_ms, lifecycle, services }) => {
    const seen = Object.entries(services);
    return {
      member,
      age_ms,
      lifecycle,
      services: seen.length,
      not_listening: seen
        .filter(([, s]) => !s.listening)
        .map(([id, s]) => ({ service: names.get(id) ?? id, conflict: s.conflict })),
      instances_not_up: seen.reduce((n, [, s]) => n + Object.keys(s.instances).length, 0),
    };
  });
}

export function createNodeAdmin(options: NodeAdminOptions): AdminRequestHandler {
  return adminHandler({
    readiness: async () => nodeReadiness(options.node),
    status: () => nodeStatusReport(options),
    metrics: {
      services: () =>
        [...options.node.services].map((s) => ({
          name: s.name,
          id: s.id,
          stats: s.stats,
          kernel: options.node.kernelCounters(s),
        })),
      conntrack: () => options.node.dataplaneStatus()?.conntrack ?? { count: null, max: null },
      store: () => {
        const s = options.node.storeStatus();
        return {
          kind: s.kind,
          connected: s.connected,
          lag: s.lag,
          resyncs: s.resyncs,
          syncedAt: s.synced_at === null ? undefined : Date.parse(s.synced_at),
        };
      },
    },
    logger: options.logger,
  });
}
