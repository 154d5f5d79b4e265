// npm run bench:cluster (issue 10): three harbor-nodes (dist/) on 127.0.0.21-.23
// sharing one redis-server, on loopback. Figures:
//   - create-to-served: from the POST through node A until node B and node C both
//     answer GET /v1/services/{id} with `listening: true` (polled every 2 ms), p50/p99;
//   - writes after a Redis restart with its data: from redis-server's PONG until a
//     create through a node succeeds again;
//   - TCP through one node, Redis store against file store, same run: connections
//     each carrying a 64-byte request and its echo (connect, write, read, close), 16 at a
//     time, for a fixed count; connections/s and the node's own CPU per connection
//     (/proc/PID/stat), so the store's cost on the data path shows (it should be none).
//   node bench/cluster/run.mjs [--creates 100] [--connections 5000]
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  freePort,
  installCleanup,
  makeTempDir,
  removeTempDir,
  startProcess,
  treeCpuSeconds,
  waitForPort,
} from '../lib/proc.mjs';

const { values } = parseArgs({
  options: { creates: { type: 'string', default: '100' }, connections: { type: 'string', default: '5000' } },
});
const CREATES = Math.min(1000, Number(values.creates));
const CONNECTIONS = Math.min(50_000, Number(values.connections));
const NODE_BIN = fileURLToPath(new URL('../../dist/cli/node.js', import.meta.url));
installCleanup();
const dir = makeTempDir('harbor-bench-cluster-');

async function redisServer(port) {
  const proc = startProcess(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes'],
    { name: 'redis' },
  );
  await waitForPort(port, { proc });
  return proc;
}

async function startNode(host, store, ports) {
  const apiPort = await freePort();
  const proc = startProcess(
    process.execPath,
    [
      NODE_BIN,
      '--store',
      store,
      '--api',
      `${host}:${apiPort}`,
      '--listen',
      host,
      '--ports',
      ports,
      '--log-level',
      'warn',
    ],
    { name: `node ${host}` },
  );
  await waitForPort(apiPort, { host, proc });
  return { proc, host, api: `http://${host}:${apiPort}` };
}

const call = async (node, method, path, body) => {
  const r = await fetch(node.api + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => undefined) };
};

const pct = (list, p) => {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

async function echoApp() {
  const server = createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function connectionsThrough(host, port, count) {
  let done = 0;
  let failed = 0;
  const payload = Buffer.alloc(64, 'x');
  const one = () =>
    new Promise((resolve) => {
      const s = connect({ host, port });
      s.once('data', () => s.end());
      s.on('error', () => {
        failed++;
        resolve();
      });
      s.on('close', resolve);
      s.on('connect', () => s.write(payload));
    });
  const lanes = Array.from({ length: 16 }, async () => {
    while (done < count) {
      done++;
      await one();
    }
  });
  await Promise.all(lanes);
  return failed;
}

async function tcpFigure(label, node) {
  const app = await echoApp();
  const created = await call(node, 'POST', '/v1/services', { name: `tcp-bench-${label}` });
  await call(node, 'PUT', `/v1/services/${created.json.name}/instances/a`, {
    host: '127.0.0.1',
    port: app.address().port,
  });
  await connectionsThrough(node.host, created.json.port, 500); // warm-up
  const cpu0 = treeCpuSeconds(node.proc.pid);
  const t0 = process.hrtime.bigint();
  const failed = await connectionsThrough(node.host, created.json.port, CONNECTIONS);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = treeCpuSeconds(node.proc.pid) - cpu0;
  app.close();
  return {
    label,
    perSecond: Math.round(CONNECTIONS / seconds),
    cpuUsPerConnection: Math.round((cpu * 1e6) / CONNECTIONS),
    failed,
  };
}

try {
  const redisPort = await freePort();
  let redis = await redisServer(redisPort);
  const store = `redis://127.0.0.1:${redisPort}`;
  const ports = '21000-21999';
  const nodes = [];
  for (const host of ['127.0.0.21', '127.0.0.22', '127.0.0.23'])
    nodes.push(await startNode(host, store, ports));

  const latencies = [];
  for (let i = 0; i < CREATES; i++) {
    const start = performance.now();
    const created = await call(nodes[i % 3], 'POST', '/v1/services', { name: `tcp-c${i}` });
    const others = nodes.filter((_, k) => k !== i % 3);
    for (const other of others) {
      for (let tries = 0; tries < 5000; tries++) {
        const view = await call(other, 'GET', `/v1/services/${created.json.name}`);
        if (view.status === 200 && view.json.listening) break;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    latencies.push(performance.now() - start);
  }

  await redis.stop('SIGTERM');
  redis = await redisServer(redisPort);
  const back = performance.now();
  let writesAfter = -1;
  for (let tries = 0; tries < 2000; tries++) {
    if ((await call(nodes[0], 'POST', '/v1/services', { name: `tcp-after-${tries}` })).status === 201) {
      writesAfter = performance.now() - back;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }

  const withRedis = await tcpFigure('redis', nodes[0]);
  const fileNode = await startNode('127.0.0.24', `file:${join(dir, 'state.json')}`, '22000-22099');
  const withFile = await tcpFigure('file', fileNode);

  console.log(
    `create-to-served on the two other nodes (${CREATES} creates): p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
  );
  console.log(
    `writes again after a Redis restart with its data: ${writesAfter.toFixed(0)} ms after its PONG`,
  );
  for (const f of [withRedis, withFile]) {
    console.log(
      `TCP through one node, ${f.label} store: ${f.perSecond} connections/s, ${f.cpuUsPerConnection} us node CPU per connection, ${f.failed} failed (${CONNECTIONS} connections, 64 B each way)`,
    );
  }
  console.log(
    `node CPU per connection, redis / file: ${(withRedis.cpuUsPerConnection / withFile.cpuUsPerConnection).toFixed(2)}x`,
  );
  for (const n of [...nodes, fileNode]) await n.proc.stop();
  await redis.stop();
} finally {
  removeTempDir(dir);
}
