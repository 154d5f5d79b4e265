// A Harbor cluster for tests: harbor-node processes (the built dist/) on
// 127.0.0.21, .22, .23..., each with its API and its service ports on its own
// address, sharing one store.
import type { Test } from 'tap';
import type { PortRange } from '../../src/node/index.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, type NodeProcess, startNodeProcess } from '../node/fixtures/spawn.js';

export interface ClusterNode extends NodeProcess {
  readonly api: string;
  readonly host: string;
  call(
    method: string,
    path: string,
    body?: unknown,
    // biome-ignore lint/suspicious/noExplicitAny: API answers in tests are read loosely and checked with t.match
  ): Promise<{ status: number; json: any; headers: Headers }>;
}

export const NODE_HOSTS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'] as const;

export async function startClusterNode(
  t: Test,
  store: string,
  host: string,
  range: PortRange,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<ClusterNode> {
  const proc = await startNodeProcess(
    t,
    [
      '--store',
      store,
      '--api',
      `${host}:0`,
      '--listen',
      host,
      '--ports',
      `${range.first}-${range.last}`,
      '--node-id',
      'harbor_cluster',
      '--cluster-hostname',
      'ports.cluster.test',
      '--cluster-host',
      '127.0.0.20',
      '--drain-timeout',
      '1s',
      // A port another process held is tried again every second (3 s by default).
      '--check-interval',
      '1s',
      ...extra,
    ],
    env,
  );
  return {
    ...proc,
    host,
    async call(method, path, body) {
      const response = await fetch(proc.api + path, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return {
        status: response.status,
        json: text ? JSON.parse(text) : undefined,
        headers: response.headers,
      };
    },
  };
}

/** Three nodes on one store, the same range (free on loopback now). */
export async function startCluster(
  t: Test,
  store: string,
  options: { size?: number; hosts?: readonly string[] } = {},
): Promise<{ nodes: ClusterNode[]; range: PortRange }> {
  const range = await freeRange(options.size ?? 16);
  const nodes = await Promise.all(
    (options.hosts ?? NODE_HOSTS).map((host) => startClusterNode(t, store, host, range)),
  );
  return { nodes, range };
}

export { api };
