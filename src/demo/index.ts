// `npm run demo`: the whole system on one machine, on loopback only. A
// harbor-node hands out an external port for an HTTPS service; two example
// app instances each run behind their own harbor-sidecar (as two containers
// would, on 127.0.0.11 and 127.0.0.12, both on the same int_port), and each
// sidecar registers its instance with the node. Requests to the node's port go
// round-robin to the instances. Ctrl-C stops everything cleanly.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createExampleApp } from './app.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVICE = 'demo-https';
const INSTANCE_HOSTS = ['127.0.0.11', '127.0.0.12'];
const CERTS = join(ROOT, 'certs-example');

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be listened on at every one of `hosts` right now. */
async function freeOnAll(hosts: readonly string[], port: number): Promise<boolean> {
  for (const host of hosts) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

/**
 * The usual port when it is free on every host, else one that is (another demo or a test
 * suite may be running on this machine: issue 8). Bounded: 20 tries.
 */
async function portFor(hosts: readonly string[], usual: number): Promise<number> {
  if (await freeOnAll(hosts, usual)) return usual;
  for (let i = 0; i < 20; i++) {
    const port = await freePort(hosts[0]);
    if (await freeOnAll(hosts, port)) return port;
  }
  throw new Error(`demo: no port free on ${hosts.join(' and ')}`);
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

/** SIGTERM, then wait for the exit (SIGKILL after 15 s: the drain deadline has long passed by then). */
function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`demo: timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

interface Credentials {
  readonly name: string;
  readonly port: number;
  readonly int_port: number;
  readonly [field: string]: unknown;
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const apps: Server[] = [];
  const stateDir = mkdtempSync(join(tmpdir(), 'harbor-demo-'));
  let stopping = false;
  const stop = async (status: number) => {
    if (stopping) return;
    stopping = true;
    // Sidecars first, so they deregister from a node that is still up; then the node.
    const [nodeProcess, ...sidecars] = children;
    await Promise.all(sidecars.map(terminate));
    if (nodeProcess) await terminate(nodeProcess);
    await Promise.all(apps.map((app) => new Promise((r) => app.close(r))));
    rmSync(stateDir, { recursive: true, force: true });
    process.exit(status);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  process.on('exit', () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  });

  const node = (bin: string, args: string[], env: Record<string, string>) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist/cli', bin), ...args], {
      env: { ...process.env, HARBOR_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'inherit', 'inherit'],
      // Their own process group: Ctrl-C reaches the demo alone, which then stops them in order, once.
      detached: true,
    });
    children.push(child);
    child.once('exit', (code, signal) => {
      if (!stopping) {
        process.stderr.write(`demo: ${bin} stopped unexpectedly (${signal ?? code}); stopping the demo\n`);
        void stop(1);
      }
    });
    return child;
  };

  try {
    const apiPort = await freePort();
    const apiBase = `http://127.0.0.1:${apiPort}`;
    node(
      'node.js',
      [
        '--api',
        `127.0.0.1:${apiPort}`,
        '--ports',
        '35000-39999',
        '--state',
        join(stateDir, 'state.json'),
        '--listen',
        '127.0.0.1',
        '--hostname',
        'localhost',
        '--host',
        '127.0.0.1',
      ],
      {},
    );
    await until('harbor-node', () => api(apiBase, 'GET', '/v1/services'));
    // The seed's usual first int_port (4100) and admin port (9701), unless something holds them.
    const intPort = await portFor(INSTANCE_HOSTS, 4100);
    const adminPort = await portFor(['127.0.0.1'], 9701);
    const credentials = await api<Credentials>(apiBase, 'POST', '/v1/services', {
      name: SERVICE,
      int_port: intPort,
    });

    const cacert = relative(process.cwd(), join(CERTS, 'harbor.crt')) || join(CERTS, 'harbor.crt');
    for (const [index, host] of INSTANCE_HOSTS.entries()) {
      const app = createExampleApp({
        instance: `instance-${index} (${host})`,
        sidecar: `${host}:${intPort}`,
        dashboard: `${apiBase}/`,
        cacert,
      });
      apps.push(app);
      const appPort = await listen(app);
      node('sidecar.js', ['run'], {
        STACKATO_SERVICES: JSON.stringify({ [SERVICE]: credentials }),
        HARBOR_BACKEND: `127.0.0.1:${appPort}`,
        HARBOR_CERTS_DIR: CERTS,
        HARBOR_LISTEN: host,
        HARBOR_ADMIN: index === 0 ? `127.0.0.1:${adminPort}` : 'off',
        HARBOR_NODE_URL: apiBase,
        HARBOR_INSTANCE_ID: `demo-instance-${index}`,
        HARBOR_INSTANCE_HOST: host,
      });
    }
    await until('both instances registered and up', async () => {
      const service = await api<{ instances?: { state?: string }[] }>(
        apiBase,
        'GET',
        `/v1/services/${credentials.name}`,
      );
      const up = (service.instances ?? []).filter((i) => i.state === undefined || i.state === 'up').length;
      return up >= INSTANCE_HOSTS.length ? true : undefined;
    });

    const url = `https://localhost:${credentials.port}/`;
    process.stdout.write(
      [
        '',
        `harbor-sidecar demo: service "${SERVICE}" on harbor-node port ${credentials.port} (int_port ${credentials.int_port}),`,
        `two app instances behind their own sidecars on ${INSTANCE_HOSTS.join(' and ')}.`,
        '',
        `  open:  ${url}`,
        `  dashboard: ${apiBase}/   (the node: services, instances, traffic, live)`,
        `  try:   curl --cacert ${cacert} ${url}`,
        `  admin: curl http://127.0.0.1:${adminPort}/status   (the first sidecar)`,
        '',
        'Repeat the curl: each is a new connection, and the instances answer in turn. A browser',
        'keeps its connection, so it stays on one instance (the page says why). It also warns about',
        `the certificate: it is self-signed, for localhost only (${cacert}); proceed, or trust it`,
        'as the page explains. Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    await stop(1);
  }
}

await main();
