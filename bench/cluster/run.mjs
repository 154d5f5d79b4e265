// npm run bench:cluster (issue 10): three harbor-nodes (dist/) on 127.0.0.21-.23
// sharing one redis-server, on loopback. Figures:
//   - create-to-served: from the POST through node A until node B and node C both
//     answer GET /v1/services/{id} with `listening: true` (polled every 2 ms), p50/p99;
//   - writes after a Redis restart with its data: from redis-server's PONG until a
//     create through a node succeeds again;
//   - TCP through one node, Redis store against file store, same run: connections
//     each carrying a 64-byte request and its echo (connect, write, read, close), 16 at a
//     time, for a fixed count; connections/s and the node's own CPU per connection
//     (/proc/PID/stat), so the store's cost on the data path shows (it should be none);
//   - UDP through one node, Redis store against file store: 64-byte datagrams to a UDP
//     echo app, 32 in flight, each counted when its echo comes back (a datagram lost is
//     re-sent after 200 ms); round trips/s and the node's own CPU per round trip;
//   each store figure over --rounds rounds (the two stores' order alternating), reported
//   as the median of the per-round ratios.
//   node bench/cluster/run.mjs [--creates 100] [--connections 5000] [--datagrams 20000] [--rounds 3]
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import {
  freePort,
  installCleanup,
  makeTempDir,
  removeTempDir,
  startProcess,
  treeCpu,
  treeCpuSeconds,
  waitForPort,
} from '../lib/proc.mjs';

const USAGE =
  'usage: node bench/cluster/run.mjs [--creates 1-1000] [--connections 1-50000] [--datagrams 1-200000] [--rounds 1-9]';
const values = parseOptions(USAGE, {
  creates: { type: 'string', default: '100' },
  connections: { type: 'string', default: '5000' },
  datagrams: { type: 'string', default: '20000' },
  rounds: { type: 'string', default: '3' },
});
const DATAGRAMS = wholeNumber(values, 'datagrams', 1, 200_000, USAGE);
const ROUNDS = wholeNumber(values, 'rounds', 1, 9, USAGE);
const CREATES = wholeNumber(values, 'creates', 1, 1000, USAGE);
const CONNECTIONS = wholeNumber(values, 'connections', 1, 50_000, USAGE);
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

async function udpEchoApp() {
  const socket = createSocket('udp4');
  socket.on('message', (message, from) => socket.send(message, from.port, from.address));
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  return socket;
}

/** `count` round trips through host:port, 32 in flight; bounded by count and by 120 s. */
async function datagramsThrough(host, port, count) {
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  const pending = new Map(); // sequence -> time sent
  let sent = 0;
  let answered = 0;
  let resent = 0;
  const send = (seq) => {
    // A buffer per datagram: dgram may still hold the last one when the next is written.
    const payload = Buffer.alloc(64, 'u');
    payload.writeUInt32BE(seq, 0);
    pending.set(seq, performance.now());
    socket.send(payload, port, host);
  };
  const deadline = performance.now() + 120_000;
  await new Promise((resolve) => {
    socket.on('message', (message) => {
      const seq = message.readUInt32BE(0);
      if (!pending.delete(seq)) return;
      answered++;
      if (answered >= count) return resolve();
      if (sent < count) send(sent++);
    });
    const timer = setInterval(() => {
      const now = performance.now();
      if (now > deadline) return resolve();
      for (const [seq, at] of pending) {
        if (now - at > 200) {
          resent++;
          send(seq);
        }
      }
    }, 50);
    socket.once('close', () => clearInterval(timer));
    for (let i = 0; i < 32; i++) send(sent++);
  });
  socket.close();
  return { answered, resent };
}

async function udpFigure(label, node, round) {
  const app = await udpEchoApp();
  const created = await call(node, 'POST', '/v1/services', { name: `udp-bench-${label}-${round}` });
  await call(node, 'PUT', `/v1/services/${created.json.name}/instances/a`, {
    host: '127.0.0.1',
    port: app.address().port,
  });
  await datagramsThrough(node.host, created.json.port, 1000); // warm-up
  const cpu0 = treeCpuSeconds(node.proc.pid);
  const t0 = process.hrtime.bigint();
  const { answered, resent } = await datagramsThrough(node.host, created.json.port, DATAGRAMS);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = treeCpuSeconds(node.proc.pid) - cpu0;
  app.close();
  return {
    label,
    perSecond: Math.round(answered / seconds),
    cpuUsPerRoundTrip: Number(((cpu * 1e6) / answered).toFixed(1)),
    resent,
  };
}

async function tcpFigure(label, node, round) {
  const app = await echoApp();
  const created = await call(node, 'POST', '/v1/services', { name: `tcp-bench-${label}-${round}` });
  await call(node, 'PUT', `/v1/services/${created.json.name}/instances/a`, {
    host: '127.0.0.1',
    port: app.address().port,
  });
  await connectionsThrough(node.host, created.json.port, 500); // warm-up
  const cpu0 = treeCpu(node.proc.pid);
  const t0 = process.hrtime.bigint();
  const failed = await connectionsThrough(node.host, created.json.port, CONNECTIONS);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = treeCpu(node.proc.pid);
  const cpu = cpu1.total - cpu0.total;
  const kernelShare = Math.round((100 * (cpu1.system - cpu0.system)) / cpu);
  app.close();
  return {
    label,
    perSecond: Math.round(CONNECTIONS / seconds),
    cpuUsPerConnection: Math.round((cpu * 1e6) / CONNECTIONS),
    kernelShare,
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

  const fileNode = await startNode('127.0.0.24', `file:${join(dir, 'state.json')}`, '22000-22099');
  const stores = { redis: nodes[0], file: fileNode };
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['redis', 'file'] : ['file', 'redis'];
    const figures = {};
    for (const label of order) {
      figures[label] = {
        tcp: await tcpFigure(label, stores[label], round),
        udp: await udpFigure(label, stores[label], round),
      };
    }
    rounds.push(figures);
  }

  console.log(
    `create-to-served on the two other nodes (${CREATES} creates): p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
  );
  console.log(
    `writes again after a Redis restart with its data: ${writesAfter.toFixed(0)} ms after its PONG`,
  );
  rounds.forEach((figures, round) => {
    for (const label of ['redis', 'file']) {
      const { tcp, udp } = figures[label];
      console.log(
        `round ${round + 1}, ${label} store: TCP ${tcp.perSecond} connections/s, ${tcp.cpuUsPerConnection} us node CPU per connection (${tcp.kernelShare}% in the kernel), ${tcp.failed} failed (${CONNECTIONS} connections, 64 B each way); ` +
          `UDP ${udp.perSecond} round trips/s, ${udp.cpuUsPerRoundTrip} us node CPU per round trip, ${udp.resent} re-sent (${DATAGRAMS} datagrams of 64 B, 32 in flight)`,
      );
    }
  });
  const median = (list) => pct(list, 50);
  const ratio = (kind, key) => median(rounds.map((f) => f.redis[kind][key] / f.file[kind][key])).toFixed(2);
  console.log(
    `redis / file, median of ${ROUNDS} rounds: TCP node CPU per connection ${ratio('tcp', 'cpuUsPerConnection')}x, connections/s ${ratio('tcp', 'perSecond')}x; UDP node CPU per round trip ${ratio('udp', 'cpuUsPerRoundTrip')}x, round trips/s ${ratio('udp', 'perSecond')}x`,
  );
  for (const n of [...nodes, fileNode]) await n.proc.stop();
  await redis.stop();
} finally {
  removeTempDir(dir);
}
