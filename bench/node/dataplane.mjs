// The kernel data plane's bench (issue 15), in a network namespace of its own
// (re-run under `unshare -n` as root): TCP throughput (iperf3, one stream), UDP
// 64-byte datagrams delivered (iperf3 -u -b 0), and new TCP connections (one
// byte echoed, then closed; 32 at a time; and the same with C on both ends: wrk
// sending one request per connection to an nginx origin) with the whole
// machine's CPU per connection from /proc/stat, so that work done in the kernel
// is counted; for direct, direct with conntrack on, one hand-written DNAT rule,
// harbor-node with --dataplane nftables, harbor-node in userspace,
// HAProxy (one thread, TCP only) and socat, round by round in one run. Then,
// with 1,000 services on the node, the time of one service's update (from the
// API request until its chain shows it) and of a whole-table rebuild.
//
//   npm run bench:dataplane -- [--rounds 3] [--seconds 5] [--services 1000]   (--rounds 0: updates only)
//     [--targets direct,direct+ct,dnat,nftables,...] [--steps tcp,udp,conn,http]   (--services 0: no updates)
//   An A/B of two builds in the same rounds: HARBOR_BENCH_NODE_A=/other/dist/cli/node.js adds the
//   target nftables-a, e.g. --targets direct,nftables,nftables-a --steps udp,conn --services 0
import { execFileSync, spawnSync } from 'node:child_process';
import { startOrigin } from '../https/targets.mjs';
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import {
  freePort,
  inOwnNetworkNamespace,
  installCleanup,
  machineSecondsDuring,
  makeTempDir,
  removeTempDir,
  sleep,
  startProcess,
  treeCpuSeconds,
  waitForPort,
} from '../lib/proc.mjs';
import { fmt, median } from '../lib/report.mjs';
import { connectRun, httpConnectionsRun, tcpRun, udpRun } from './suite.mjs';
import {
  addDnatRule,
  freeRange,
  NODE_CLI,
  startDirect,
  startEchoServer,
  startHaproxy,
  startHarborNode,
  startIperfServer,
  startSocat,
} from './targets.mjs';

inOwnNetworkNamespace('bench:dataplane');

const USAGE =
  'usage: npm run bench:dataplane -- [--rounds 0-20] [--seconds 1-60] [--services 0-100000] [--targets a,b] [--steps tcp,udp,conn,http]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '3' },
  seconds: { type: 'string', default: '5' },
  services: { type: 'string', default: '1000' },
  targets: { type: 'string' },
  steps: { type: 'string', default: 'tcp,udp,conn,http' },
});
const rounds = wholeNumber(values, 'rounds', 0, 20, USAGE);
const seconds = wholeNumber(values, 'seconds', 1, 60, USAGE);
const serviceCount = wholeNumber(values, 'services', 0, 100_000, USAGE);
installCleanup();

const TARGETS = {
  direct: (dir, route) => startDirect(dir, route),
  // Direct, with conntrack switched on in the namespace (an empty nat chain): what tracking
  // every flow costs by itself, which any DNAT data plane pays.
  'direct+ct': async (dir, route) => {
    execFileSync('nft', ['-f', '-'], {
      input:
        'add table ip ctonly\nadd chain ip ctonly c { type nat hook output priority -100; policy accept; }\n',
    });
    const target = startDirect(dir, route);
    return { ...target, stop: async () => spawnSync('nft', ['delete', 'table', 'ip', 'ctonly']) };
  },
  // One DNAT rule from a free port to the instance: what the node adds above it shows on its own.
  dnat: async (_dir, route) => {
    const [port] = await freeRange(1);
    const remove = addDnatRule(port, route.backendPort);
    return { name: 'dnat', port, pid: null, stop: async () => remove() };
  },
  nftables: (dir, route) =>
    startHarborNode(dir, route, { nodeFlags: ['--dataplane', 'nftables'], name: 'nftables' }),
  // Another build of the node beside this one, in the same rounds (an A/B of a change):
  // HARBOR_BENCH_NODE_A=/path/to/other/dist/cli/node.js.
  ...(process.env.HARBOR_BENCH_NODE_A
    ? {
        'nftables-a': (dir, route) =>
          startHarborNode(dir, route, {
            nodeFlags: ['--dataplane', 'nftables'],
            name: 'nftables-a',
            cli: process.env.HARBOR_BENCH_NODE_A,
          }),
      }
    : {}),
  userspace: (dir, route) => startHarborNode(dir, route),
  haproxy: (dir, route) => startHaproxy(dir, route),
  socat: (dir, route) => startSocat(dir, route),
};
const log = (line) => process.stdout.write(`${line}\n`);
/** `--targets` and `--steps`: a part of the run (say `--targets direct,nftables,nftables-a --steps udp`). */
const KINDS = values.targets === undefined ? Object.keys(TARGETS) : values.targets.split(',');
const STEPS = new Set(values.steps.split(','));
for (const kind of KINDS) {
  if (!(kind in TARGETS)) {
    console.error(
      `--targets: no target ${kind} (${Object.keys(TARGETS).join(', ')}; nftables-a with HARBOR_BENCH_NODE_A)`,
    );
    process.exit(2);
  }
}
for (const step of STEPS) {
  if (!['tcp', 'udp', 'conn', 'http'].includes(step)) {
    console.error(`--steps: no step ${step} (tcp, udp, conn, http)`);
    process.exit(2);
  }
}

async function withTarget(kind, route, work) {
  const dir = makeTempDir(`harbor-bench-${kind}-`);
  const target = await TARGETS[kind](dir, route);
  try {
    if (target === null) return null;
    return await work(target);
  } finally {
    await target?.stop();
    // A node's kernel table stays at exit (by design): this bench starts each target clean.
    spawnSync('nft', ['delete', 'table', 'ip', 'harbor']);
    spawnSync('nft', ['delete', 'table', 'ip6', 'harbor']);
    // And with an empty conntrack table: the entries one target left (TIME_WAIT) are not the next one's cost.
    spawnSync('conntrack', ['-F'], { stdio: 'ignore' });
    removeTempDir(dir);
  }
}

async function retry(what, fn) {
  let last;
  for (let i = 0; i < 6; i++) {
    try {
      return await fn();
    } catch (error) {
      last = error;
      await sleep(500);
    }
  }
  throw new Error(`${what}: ${last?.message}`);
}

const iperf = await startIperfServer();
const echo = await startEchoServer();
const originDir = makeTempDir('harbor-bench-origin-');
const origin = await startOrigin(originDir);
const figures = Object.fromEntries(Object.keys(TARGETS).map((k) => [k, []]));
try {
  for (let round = 0; round < rounds; round++) {
    const kinds = KINDS;
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]);
    log(`round ${round + 1}/${rounds} (order: ${order.join(', ')})`);
    for (const kind of order) {
      const f = {};
      try {
        if (STEPS.has('tcp'))
          await withTarget(kind, { backendPort: iperf.port, udp: false }, async (target) => {
            await retry('TCP warm-up', () => tcpRun(target.port, 1));
            f.tcp_gbps = (await tcpRun(target.port, seconds)).gbps;
          });
        if (STEPS.has('udp'))
          await withTarget(kind, { backendPort: iperf.port, udp: true }, async (target) => {
            await retry('UDP warm-up', () => udpRun(target.port, 1, 20_000, iperf));
            // Datagrams delivered depend on which side runs out of CPU first (the client's core
            // carries the forward path's work, the server's the receive); the machine's busy
            // CPU per delivered datagram is what the path costs either way.
            const ownBefore = target.pid === null ? 0 : treeCpuSeconds(target.pid);
            const m = await machineSecondsDuring(() => udpRun(target.port, seconds, 0, iperf));
            const delivered = Math.max(1, m.result.delivered);
            f.udp_pps = m.result.deliveredPps;
            f.udp_machine_ns = (m.seconds * 1e9) / delivered;
            if (target.pid !== null)
              f.udp_own_ns = ((treeCpuSeconds(target.pid) - ownBefore) * 1e9) / delivered;
          });
        if (STEPS.has('conn'))
          await withTarget(kind, { backendPort: echo.port, udp: false }, async (target) => {
            await retry('connect warm-up', async () => {
              const r = await connectRun(target.port, 1);
              if (r.completed === 0) throw new Error(r.lastError);
            });
            const m = await machineSecondsDuring(() => connectRun(target.port, seconds));
            f.conn_per_s = m.result.rate;
            f.conn_errors = m.result.errors;
            f.conn_machine_us = (m.seconds * 1e6) / Math.max(1, m.result.completed);
          });
        // The same with C at both ends (suite.mjs httpConnectionsRun says why).
        if (STEPS.has('http'))
          await withTarget(kind, { backendPort: origin.port, udp: false }, async (target) => {
            await retry('HTTP warm-up', async () => {
              if ((await httpConnectionsRun(target.port, 1)).requests === 0)
                throw new Error('no request answered');
            });
            const ownBefore = target.pid === null ? 0 : treeCpuSeconds(target.pid);
            const r = await httpConnectionsRun(target.port, seconds);
            f.http_per_s = r.rate;
            f.http_failed = r.failed;
            f.http_machine_us = r.machineUs;
            // The forwarding process's own share (a node in kernel mode only programs and polls).
            if (target.pid !== null)
              f.http_own_us = ((treeCpuSeconds(target.pid) - ownBefore) * 1e6) / Math.max(1, r.requests);
          });
      } catch (error) {
        f.error = error.message.split('\n')[0];
      }
      figures[kind].push(f);
      log(
        `  ${kind.padEnd(10)} TCP ${fmt(f.tcp_gbps, 2)} Gbit/s  UDP ${fmt(f.udp_pps)} pkt/s (${fmt(f.udp_machine_ns)} ns machine CPU each${f.udp_own_ns === undefined ? '' : `, its own process ${fmt(f.udp_own_ns)}`})  conn ${fmt(f.conn_per_s)}/s, ${fmt(f.conn_machine_us, 1)} us machine CPU each${f.conn_errors ? `, ${f.conn_errors} failed` : ''}; HTTP ${fmt(f.http_per_s)} conn/s, ${fmt(f.http_machine_us, 1)} us each${f.http_own_us === undefined ? '' : ` (its own process ${fmt(f.http_own_us, 1)})`}${f.http_failed ? `, ${f.http_failed} failed` : ''}${f.error ? `  (${f.error})` : ''}`,
      );
    }
  }
} finally {
  await iperf.stop();
  await echo.stop();
  await origin.stop();
  removeTempDir(originDir);
}

// --rounds 0: the update figures only.
if (rounds > 0) {
  const med = (kind, key) => median(figures[kind].map((f) => f[key]));
  const ratioOf = (a, b) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : undefined);
  // null (a target or step not run) is no figure, not 0.
  const diffOf = (a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : undefined);
  log('\nmedians (of rounds)');
  log(
    `target      TCP Gbit/s  UDP pkt/s   conn/s   machine us/conn  above direct   HTTP conn/s  us/conn  above direct`,
  );
  const tcpRatio = ratioOf(med('nftables', 'tcp_gbps'), med('direct', 'tcp_gbps'));
  const udpRatio = ratioOf(med('nftables', 'udp_pps'), med('direct', 'udp_pps'));
  for (const kind of KINDS) {
    const above = diffOf(med(kind, 'conn_machine_us'), med('direct', 'conn_machine_us'));
    const httpAbove = diffOf(med(kind, 'http_machine_us'), med('direct', 'http_machine_us'));
    log(
      `${kind.padEnd(11)} ${fmt(med(kind, 'tcp_gbps'), 2).padStart(10)}  ${fmt(med(kind, 'udp_pps')).padStart(9)}  ${fmt(med(kind, 'conn_per_s')).padStart(7)}  ${fmt(med(kind, 'conn_machine_us'), 1).padStart(15)}  ${fmt(above, 1).padStart(12)}  ${fmt(med(kind, 'http_per_s')).padStart(12)}  ${fmt(med(kind, 'http_machine_us'), 1).padStart(7)}  ${fmt(httpAbove, 1).padStart(12)}`,
    );
  }

  // Paired within each round (the machine's speed drifts between rounds): the median of the rounds' own differences.
  const paired = (kind, base, key, op) =>
    median(
      figures[kind].map((f, r) =>
        f[key] === undefined || figures[base][r]?.[key] === undefined
          ? undefined
          : op(f[key], figures[base][r][key]),
      ),
    );
  log(
    `per-round pairs, median: nftables machine CPU per connection ${fmt(
      paired('nftables', 'direct', 'conn_machine_us', (a, b) => a - b),
      1,
    )} us above direct, ${fmt(
      paired('nftables', 'direct+ct', 'conn_machine_us', (a, b) => a - b),
      1,
    )} us above direct+ct, with an HTTP request (C on both ends) ${fmt(
      paired('nftables', 'direct', 'http_machine_us', (a, b) => a - b),
      1,
    )} us above direct; UDP ${fmt(
      paired('nftables', 'direct', 'udp_pps', (a, b) => a / b),
      2,
    )}x direct, ${fmt(
      paired('nftables', 'direct+ct', 'udp_pps', (a, b) => a / b),
      2,
    )}x direct+ct, machine CPU per datagram ${fmt(
      paired('nftables', 'direct', 'udp_machine_ns', (a, b) => a / b),
      2,
    )}x direct (one DNAT rule ${fmt(
      paired('dnat', 'direct', 'udp_machine_ns', (a, b) => a / b),
      2,
    )}x); TCP ${fmt(
      paired('nftables', 'direct', 'tcp_gbps', (a, b) => a / b),
      2,
    )}x direct, ${fmt(
      paired('nftables', 'haproxy', 'tcp_gbps', (a, b) => a / b),
      2,
    )}x haproxy`,
  );
  // The node against another target in the same rounds: another build of it, or one DNAT rule.
  const against = (base, what) =>
    log(
      `this build against ${what} (per-round pairs, median): UDP ${fmt(
        paired('nftables', base, 'udp_pps', (a, b) => a / b),
        3,
      )}x, TCP ${fmt(
        paired('nftables', base, 'tcp_gbps', (a, b) => a / b),
        3,
      )}x, machine CPU per connection ${fmt(
        paired('nftables', base, 'conn_machine_us', (a, b) => a - b),
        1,
      )} us, with an HTTP request ${fmt(
        paired('nftables', base, 'http_machine_us', (a, b) => a - b),
        1,
      )} us`,
    );
  if (KINDS.includes('nftables-a')) against('nftables-a', 'HARBOR_BENCH_NODE_A');
  if (KINDS.includes('dnat')) against('dnat', 'one hand-written DNAT rule');
  log(
    `\nnftables/direct: TCP ${fmt(tcpRatio, 2)}x (goal 0.85x), UDP delivered ${fmt(udpRatio, 2)}x (goal 0.8x); TCP nftables/haproxy ${fmt(ratioOf(med('nftables', 'tcp_gbps'), med('haproxy', 'tcp_gbps')), 2)}x (goal 2x); machine CPU per new connection above direct ${fmt(diffOf(med('nftables', 'conn_machine_us'), med('direct', 'conn_machine_us')), 1)} us (goal 20; ${fmt(diffOf(med('nftables', 'http_machine_us'), med('direct', 'http_machine_us')), 1)} us with C at both ends, one DNAT rule ${fmt(diffOf(med('dnat', 'http_machine_us'), med('direct', 'http_machine_us')), 1)} us), above direct+ct ${fmt(diffOf(med('nftables', 'conn_machine_us'), med('direct+ct', 'conn_machine_us')), 1)} us; UDP nftables/direct+ct ${fmt(ratioOf(med('nftables', 'udp_pps'), med('direct+ct', 'udp_pps')), 2)}x`,
  );
}

/** The updates: with `serviceCount` services, one service's change and a whole-table rebuild. */
async function updates() {
  const dir = makeTempDir('harbor-bench-updates-');
  const [low] = await freeRange(serviceCount + 10);
  const apiPort = await freePort();
  const proc = startProcess(
    process.execPath,
    [
      NODE_CLI,
      '--ports',
      `${low}-${low + serviceCount + 9}`,
      '--api',
      `127.0.0.1:${apiPort}`,
      '--listen',
      '127.0.0.1',
      '--dataplane',
      'nftables',
      '--state',
      `${dir}/state.json`,
    ],
    { name: 'harbor-node', env: { PATH: process.env.PATH, HARBOR_LOG_LEVEL: 'debug' }, cwd: dir },
  );
  const api = async (method, path, body) => {
    const r = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, json: await r.json().catch(() => null) };
  };
  // Two instances that accept (the node checks them; a refusing one would be out of rotation).
  const listeners = [await startEchoServer(), await startEchoServer()];
  try {
    await waitForPort(apiPort, { proc, timeoutMs: 15_000 });
    const ports = [];
    for (let i = 0; i < serviceCount; i++) {
      const created = await api('POST', '/v1/services', { name: `svc-${i}` });
      ports.push(created.json.port);
      await api('PUT', `/v1/services/svc-${i}/instances/a`, {
        host: '127.0.0.1',
        port: listeners[0].port,
      });
    }
    // The node programs behind the API: wait until the last service's rules are in.
    const lastChain = () =>
      spawnSync('nft', ['list', 'chain', 'ip', 'harbor', `s${ports.at(-1)}_tcp`], { encoding: 'utf8' })
        .status === 0;
    const setupStarted = performance.now();
    while (!lastChain() && performance.now() - setupStarted < 60_000) await sleep(20);
    // Each change as the node applies it: its debug line gives the transaction's own time and
    // when it was done (epoch ms), so the time from the API request to rules in place is exact.
    // Collected as they come (proc.output() keeps only the last few kB).
    const events = [];
    for (const stream of [proc.child.stdout, proc.child.stderr]) {
      let partial = '';
      stream.on('data', (chunk) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop();
        for (const l of lines)
          if (l.includes('nftables transaction applied') || l.includes('nftables table rebuilt'))
            events.push(JSON.parse(l));
      });
    }
    const applied = (from) => events.slice(from).filter((e) => e.msg === 'nftables transaction applied');
    const transaction = [];
    const total = [];
    const answered = [];
    for (let k = 0; k < 7; k++) {
      const i = Math.floor(serviceCount / 2) + k;
      const from = events.length;
      const started = Date.now();
      await api('PUT', `/v1/services/svc-${i}/instances/b`, { host: '127.0.0.1', port: listeners[1].port });
      answered.push(Date.now() - started);
      while (!applied(from).some((l) => l.time >= started) && Date.now() - started < 10_000) await sleep(2);
      const line = applied(from).find((l) => l.time >= started);
      if (line === undefined)
        throw new Error(`the change was never applied; the node's output:\n${proc.output().slice(-3000)}`);
      transaction.push(line.ms);
      total.push(line.time - started);
    }
    log(
      `\nwith ${serviceCount} services, one service's update (a second instance), 7 times: the nft transaction ${transaction.join(', ')} ms (median ${fmt(median(transaction), 1)}); API request to rules in place ${total.join(', ')} ms (median ${fmt(median(total), 1)}; the API answered in ${fmt(median(answered), 1)} ms)`,
    );
    // The table deleted under the node, five times: each time it notices (its counters poll)
    // and puts the whole table back in one transaction.
    const rebuilds = [];
    for (let k = 0; k < 5; k++) {
      execFileSync('nft', ['delete', 'table', 'ip', 'harbor']);
      const before = events.length;
      const started = performance.now();
      let line;
      while (line === undefined && performance.now() - started < 20_000) {
        await sleep(5);
        line = events.slice(before).find((e) => e.msg === 'nftables table rebuilt');
      }
      if (line === undefined) {
        throw new Error(
          `the node did not rebuild its table within 20 s; its output:\n${proc.output().slice(-3000)}`,
        );
      }
      rebuilds.push(line.ms);
    }
    log(
      `whole-table rebuild of ${serviceCount} services (one nft transaction, both families), 5 times: ${rebuilds.join(', ')} ms (median ${fmt(median(rebuilds), 1)})`,
    );
    const startLine =
      proc
        .output()
        .split('\n')
        .find((l) => l.includes('kernel data plane programmed')) ?? '{}';
    void startLine;
  } finally {
    await proc.stop('SIGTERM', 12_000);
    for (const l of listeners) await l.stop();
    spawnSync('nft', ['delete', 'table', 'ip', 'harbor']);
    spawnSync('nft', ['delete', 'table', 'ip6', 'harbor']);
    removeTempDir(dir);
  }
}
if (serviceCount > 0) await updates();
