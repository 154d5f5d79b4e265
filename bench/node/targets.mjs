// The edge-node bench's processes: the iperf3 server and the echo server
// (backends), and the forwarders measured against each other: haproxy (mode
// tcp, one thread), socat (TCP and UDP, a fork per client), harbor-node, and
// "direct" (no forwarder: the kernel's own loopback). Each forwarder is
// started for one route ({ backendPort, udp }) and returns
// { name, port, pid (null for direct), stop() }.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, startProcess, waitForPort } from '../lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
export const NODE_CLI = process.env.HARBOR_BENCH_NODE ?? join(repoRoot, 'dist', 'cli', 'node.js');

export function nodeAvailable() {
  return existsSync(NODE_CLI);
}

/**
 * iperf3 in server mode on 127.0.0.1 (TCP and UDP tests, one at a time).
 * restart() brings it back on the same port (forwarders keep pointing at it):
 * a UDP test whose first datagram was a stale one from a previous flood
 * leaves the server waiting on the wrong peer.
 */
export async function startIperfServer() {
  const port = await freePort({ udp: true });
  const server = { port, proc: null };
  const launch = async () => {
    server.proc = startProcess('iperf3', ['-s', '-p', String(port), '-B', '127.0.0.1'], {
      name: 'iperf3 -s',
    });
    await waitForPort(port, { proc: server.proc });
  };
  await launch();
  server.alive = () => server.proc.alive();
  server.stop = () => server.proc.stop();
  server.restart = async () => {
    await server.proc.stop('SIGKILL');
    await launch();
  };
  return server;
}

export async function startEchoServer() {
  const port = await freePort();
  const proc = startProcess(process.execPath, [join(here, 'echo-server.mjs'), String(port)], {
    name: 'echo',
  });
  await waitForPort(port, { proc });
  return { port, proc, stop: () => proc.stop() };
}

export function startDirect(_dir, route) {
  return { name: 'direct', port: route.backendPort, pid: null, stop: async () => {} };
}

/**
 * One hand-written stateful DNAT rule, 127.0.0.1 `port` to `backendPort`, TCP and UDP (iperf3's
 * UDP test has a TCP control connection), in a table of its own: the floor of any data plane
 * built on DNAT. Needs root in a network namespace; returns what removes it.
 */
export function addDnatRule(port, backendPort) {
  execFileSync('nft', ['-f', '-'], {
    input: `add table ip dnatonly\nadd chain ip dnatonly c { type nat hook output priority -100; policy accept; }\nadd rule ip dnatonly c ip daddr 127.0.0.1 meta l4proto { tcp, udp } th dport ${port} dnat ip to 127.0.0.1:${backendPort}\n`,
  });
  return () => spawnSync('nft', ['delete', 'table', 'ip', 'dnatonly']);
}

/** HAProxy 2.x, mode tcp, one thread (Node's event loop is one thread too). TCP only. */
export async function startHaproxy(dir, route) {
  if (route.udp) return null;
  const port = await freePort();
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    `global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend bench
  bind 127.0.0.1:${port}
  default_backend app
backend app
  server app1 127.0.0.1:${route.backendPort}
`,
  );
  const proc = startProcess('haproxy', ['-f', config, '-db'], { name: 'haproxy' });
  await waitForPort(port, { proc });
  return { name: 'haproxy', port, pid: proc.pid, stop: () => proc.stop() };
}

/**
 * socat, a fork per client. For UDP routes a second socat carries the UDP side
 * on the same port number (iperf3's control connection is TCP). The measured
 * pid is the one carrying the route's payload.
 */
export async function startSocat(_dir, route) {
  const port = await freePort({ udp: route.udp });
  const tcp = startProcess(
    'socat',
    [`TCP4-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=4096`, `TCP4:127.0.0.1:${route.backendPort}`],
    { name: 'socat tcp' },
  );
  let udp = null;
  if (route.udp) {
    udp = startProcess(
      'socat',
      [`UDP4-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `UDP4:127.0.0.1:${route.backendPort}`],
      { name: 'socat udp' },
    );
  }
  await waitForPort(port, { proc: tcp });
  await sleep(100);
  return {
    name: 'socat',
    port,
    pid: udp ? udp.pid : tcp.pid,
    stop: async () => {
      await tcp.stop();
      if (udp) await udp.stop();
    },
  };
}

/** A block of `count` consecutive ports, free for TCP and UDP a moment ago, below the ephemeral range. */
export async function freeRange(count) {
  const { createServer } = await import('node:net');
  const dgram = await import('node:dgram');
  const bindable = (port) =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => {
        const socket = dgram.createSocket('udp4');
        socket.once('error', () => server.close(() => resolve(false)));
        socket.bind(port, '127.0.0.1', () => socket.close(() => server.close(() => resolve(true))));
      });
    });
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 10000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await bindable(p);
    if (ok) return [base, base + count - 1];
  }
  throw new Error('no free block of ports for harbor-node');
}

async function api(apiPort, method, path, body) {
  const response = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text for the error
  }
  return { status: response.status, json, text };
}

/**
 * harbor-node with one service for the route (`bench-tcp`, or `both-bench`
 * when the route carries UDP: TCP and UDP on the same port) and one instance.
 */
export async function startHarborNode(
  dir,
  route,
  { extraNodeArgs = [], nodeFlags = [], name: processName = 'harbor-node', cli = NODE_CLI } = {},
) {
  const [low, high] = await freeRange(8);
  const apiPort = await freePort();
  const args = [
    ...extraNodeArgs,
    cli,
    '--ports',
    `${low}-${high}`,
    '--api',
    `127.0.0.1:${apiPort}`,
    '--state',
    join(dir, 'node-state.json'),
    '--listen',
    '127.0.0.1',
    ...nodeFlags,
  ];
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HARBOR_LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
  };
  const proc = startProcess(process.execPath, args, { name: processName, env, cwd: dir });
  try {
    await waitForPort(apiPort, { proc, timeoutMs: 15_000 });
    const name = route.udp ? 'both-bench' : 'bench-tcp';
    const created = await api(apiPort, 'POST', '/v1/services', { name });
    if (created.status !== 201 || !created.json?.port) {
      throw new Error(`POST /v1/services ${name}: ${created.status} ${created.text.slice(0, 300)}`);
    }
    const instance = { host: '127.0.0.1', port: route.backendPort };
    // The service id is the credentials' `name` (the instance UUID); fall back to the service name.
    let put = await api(apiPort, 'PUT', `/v1/services/${created.json.name}/instances/bench-1`, instance);
    if (put.status === 404)
      put = await api(apiPort, 'PUT', `/v1/services/${name}/instances/bench-1`, instance);
    if (put.status >= 300) throw new Error(`PUT instance: ${put.status} ${put.text.slice(0, 300)}`);
    await waitForPort(created.json.port, { proc });
    return {
      name,
      port: created.json.port,
      pid: proc.pid,
      proc,
      stop: () => proc.stop('SIGTERM', 12_000),
    };
  } catch (error) {
    await proc.stop('SIGKILL');
    throw new Error(`${error.message}\n${proc.output().slice(-1500)}`);
  }
}
