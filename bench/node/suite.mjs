// The edge-node bench (issue 4): TCP throughput (iperf3, one stream), UDP
// packet rate with 64-byte datagrams (iperf3 -u -l 64 -b 0), the highest UDP
// rate carried with under 1% loss, and new TCP connections per second,
// through harbor-node, haproxy, socat and direct, round by round in one run.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMALL_PATH } from '../https/targets.mjs';
import {
  machineSecondsDuring,
  makeTempDir,
  measureDuring,
  removeTempDir,
  runCommand,
  sleep,
  waitQuiet,
} from '../lib/proc.mjs';
import { evaluateGoals, fmt, fmtRatio, median, ratio } from '../lib/report.mjs';
import { runWrk } from '../lib/wrk.mjs';
import {
  nodeAvailable,
  startDirect,
  startEchoServer,
  startHaproxy,
  startHarborNode,
  startIperfServer,
  startSocat,
} from './targets.mjs';

const here = dirname(fileURLToPath(import.meta.url));

export const NODE_TARGETS = ['harbor-node', 'haproxy', 'socat', 'direct'];
/** Step ids a run can be limited to with --steps (all when not given). */
export const NODE_STEP_IDS = ['tcp', 'conn', 'udp', 'udp-clean'];
const STARTERS = {
  'harbor-node': startHarborNode,
  haproxy: startHaproxy,
  socat: startSocat,
  direct: startDirect,
};

export const NODE_FIGURES = [
  ['tcp_gbps', 'TCP throughput, 1 stream (iperf3)', 'Gbit/s'],
  ['tcp_cpu_ms_per_gb', 'forwarder CPU per GB carried', 'ms'],
  ['udp_sent_pps', 'UDP 64 B offered as fast as possible', 'pkt/s'],
  ['udp_delivered_pps', 'UDP 64 B delivered', 'pkt/s'],
  ['udp_loss_pct', 'UDP 64 B lost at full offered rate', '%'],
  ['udp_cpu_us_per_pkt', 'forwarder CPU per delivered datagram', 'us'],
  ['udp_drain_ms', 'UDP forwarder still busy after the flood stops (queue, GC)', 'ms'],
  ['udp_clean_pps', 'highest UDP rate with < 1% loss', 'pkt/s'],
  ['conn_per_s', 'new TCP connections/s (1 byte echoed, closed)', 'conn/s'],
  ['conn_cpu_us', 'forwarder CPU per new connection', 'us'],
];

const UDP_BYTES = 64;

/** Issue 4's goals. */
const NODE_GOALS = [
  {
    label: 'TCP throughput >= 1.0x haproxy',
    subject: 'harbor-node',
    peer: 'haproxy',
    key: 'tcp_gbps',
    op: '>=',
    limit: 1.0,
  },
  {
    label: 'UDP delivered packets/s >= 1.0x socat',
    subject: 'harbor-node',
    peer: 'socat',
    key: 'udp_delivered_pps',
    op: '>=',
    limit: 1.0,
  },
];

async function iperf(port, args, seconds) {
  const full = ['-c', '127.0.0.1', '-p', String(port), '-J', ...args];
  const { code, stdout, stderr } = await runCommand('iperf3', full, { timeoutMs: (seconds + 10) * 1000 });
  let json = null;
  try {
    json = JSON.parse(stdout);
  } catch {
    // reported below
  }
  if (code !== 0 || !json || json.error) {
    throw new Error(`iperf3 ${full.join(' ')}: ${json?.error ?? (stderr.trim() || `exit ${code}`)}`);
  }
  return json.end;
}

export async function tcpRun(port, seconds) {
  const end = await iperf(port, ['-t', String(seconds)], seconds);
  return { gbps: end.sum_received.bits_per_second / 1e9, bytes: end.sum_received.bytes };
}

/**
 * One UDP run at `pps` offered (0 = as fast as the sender goes). Afterwards it
 * waits for the forwarder (quietPid) to stop relaying what it had queued:
 * a stale datagram reaching iperf3 first would make the next test's server
 * talk to the wrong peer. That wait is reported (drainMs): how long a
 * forwarder keeps delivering old datagrams after an overload ends. A failed
 * run is retried after a pause, then once more after restarting the iperf3
 * server (and waiting for a forwarder that marked it down to take it back).
 */
export async function udpRun(port, seconds, pps, iperfServer, quietPid = null) {
  try {
    return await udpRunOnce(port, seconds, pps, quietPid, iperfServer?.proc?.pid);
  } catch (error) {
    if (!iperfServer) throw error;
  }
  await sleep(3000);
  try {
    return await udpRunOnce(port, seconds, pps, quietPid, iperfServer?.proc?.pid);
  } catch (error) {
    if (!iperfServer) throw error;
  }
  await iperfServer.restart();
  // A forwarder that saw the server refuse marks it down for a while.
  await sleep(10_000);
  return await udpRunOnce(port, seconds, pps, quietPid, iperfServer?.proc?.pid);
}

async function udpRunOnce(port, seconds, pps, quietPid, iperfPid) {
  const bitrate = pps === 0 ? '0' : String(Math.round(pps * UDP_BYTES * 8));
  const end = await iperf(
    port,
    ['-u', '-l', String(UDP_BYTES), '-b', bitrate, '-t', String(seconds)],
    seconds,
  );
  const drain = quietPid ? await waitQuiet(quietPid) : null;
  // The iperf3 server too must be done with the last datagrams before the next test.
  if (iperfPid) await waitQuiet(iperfPid, { timeoutMs: 5000 });
  await sleep(pps === 0 ? 1000 : 300);
  const sum = end.sum;
  const delivered = sum.packets - sum.lost_packets;
  return {
    sentPps: sum.packets / sum.seconds,
    deliveredPps: delivered / sum.seconds,
    delivered,
    lossPct: sum.lost_percent,
    drainMs: drain?.ms ?? null,
    drainCpuSeconds: drain?.cpuSeconds ?? 0,
  };
}

/** Retries a warm-up until it works: harbor-node checks an instance before it takes traffic. */
async function warm(what, fn, attempts = 6) {
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (error) {
      last = error;
      await sleep(500);
    }
  }
  throw new Error(`${what} never worked: ${last?.message}`);
}

export async function connectRun(port, seconds) {
  const args = [
    join(here, 'connect-client.mjs'),
    JSON.stringify({ port, seconds, concurrency: 32, maxCount: 40_000 }),
  ];
  const { code, stdout, stderr } = await runCommand(process.execPath, args, {
    timeoutMs: (seconds + 20) * 1000,
  });
  if (code !== 0) throw new Error(`connect client failed (exit ${code}): ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').pop());
}

/**
 * New connections that each carry one HTTP request, with C at both ends: `wrk -t1 -c32 -H
 * 'Connection: close'` to `port`, an nginx origin (bench/https/targets.mjs) behind it. A Node
 * client and echo server (`connectRun`) spend ~350 us of their own per connection, and how well
 * they batch moves with the target's latency, which buries a data plane's ~20 us. Resolves
 * { requests, rate, failed, machineUs }: machineUs is the whole machine's busy CPU per connection.
 */
export async function httpConnectionsRun(port, seconds) {
  const url = `http://127.0.0.1:${port}${SMALL_PATH}`;
  const { result, seconds: busy } = await machineSecondsDuring(() =>
    runWrk(url, { connections: 32, seconds, headers: ['Connection: close'] }),
  );
  return {
    requests: result.requests,
    rate: result.requests / result.seconds,
    failed: result.failed,
    machineUs: (busy * 1e6) / Math.max(1, result.requests),
  };
}

/**
 * Highest offered rate with < 1% loss: double from 10k pkt/s until loss
 * reaches 1% (or 1.28M), then bisect the bracket 3 times. At most 11 trials.
 */
async function cleanRateSearch(port, trialSeconds, iperfServer, quietPid) {
  let good = 0;
  let bad = null;
  // A trial that fails even after its retries ends the search with what it
  // found so far (reported as partial), rather than losing the figure.
  const trial = async (pps) => {
    try {
      return await udpRun(port, trialSeconds, pps, iperfServer, quietPid);
    } catch (error) {
      throw Object.assign(new Error(`stopped at ${pps} pkt/s: ${error.message.split('\n')[0]}`), { good });
    }
  };
  for (let pps = 10_000; pps <= 1_280_000; pps *= 2) {
    const r = await trial(pps);
    if (r.lossPct < 1) good = Math.max(good, r.deliveredPps);
    else {
      bad = pps;
      break;
    }
  }
  if (bad !== null) {
    let low = bad / 2;
    let high = bad;
    for (let i = 0; i < 3; i++) {
      const mid = Math.round((low + high) / 2);
      const r = await trial(mid);
      if (r.lossPct < 1) {
        low = mid;
        good = Math.max(good, r.deliveredPps);
      } else high = mid;
    }
  }
  return good;
}

async function withForwarder(kind, route, body) {
  const dir = makeTempDir(`node-${kind}`);
  let target = null;
  try {
    target = await STARTERS[kind](dir, route);
    if (!target) return null;
    return await body(target);
  } catch (error) {
    const said = target?.proc?.output().trim();
    if (said) error.message += `\n${kind} said:\n${said.slice(-1500)}`;
    throw error;
  } finally {
    if (target) await target.stop();
    removeTempDir(dir);
  }
}

/**
 * The measurements. Each runs for every forwarder back to back (rotating
 * order) before the next begins, so that compared figures see the machine in
 * the same few seconds. A step takes (target, figures, ctx) and returns a log line.
 */
const STEPS = [
  {
    id: 'tcp',
    name: 'TCP throughput',
    route: (b) => ({ backendPort: b.iperf.port, udp: false }),
    async run(target, f, { seconds }) {
      await warm('TCP warm-up', () => tcpRun(target.port, 1));
      const m = await measureDuring(target.pid, () => tcpRun(target.port, seconds));
      f.tcp_gbps = m.result.gbps;
      if (m.cpuSeconds !== null) f.tcp_cpu_ms_per_gb = (m.cpuSeconds * 1e3) / (m.result.bytes / 1e9);
      f.tcp_machine_busy = m.machineBusy;
      return `TCP        ${fmt(m.result.gbps, 2)} Gbit/s cpu ${fmt(f.tcp_cpu_ms_per_gb)} ms/GB`;
    },
  },
  {
    id: 'conn',
    name: 'new connections',
    route: (b) => ({ backendPort: b.echo.port, udp: false }),
    async run(target, f, { seconds }) {
      await warm('connect warm-up', async () => {
        const r = await connectRun(target.port, 1);
        if (r.completed === 0) throw new Error(`no connection completed (${r.lastError})`);
      });
      const m = await measureDuring(target.pid, () => connectRun(target.port, seconds));
      f.conn_per_s = m.result.rate;
      f.conn_errors = m.result.errors;
      if (m.cpuSeconds !== null) f.conn_cpu_us = (m.cpuSeconds * 1e6) / Math.max(1, m.result.completed);
      if (m.result.errors > 0)
        f.errors.push(`new connections: ${m.result.errors} failed (${m.result.lastError})`);
      return `connect    ${fmt(m.result.rate)} conn/s cpu ${fmt(f.conn_cpu_us)} us/conn`;
    },
  },
  {
    id: 'udp',
    name: 'UDP',
    udp: true,
    route: (b) => ({ backendPort: b.iperf.port, udp: true }),
    async run(target, f, { seconds, iperf }) {
      await warm('UDP warm-up', () => udpRun(target.port, 1, 20_000, iperf, target.pid));
      const m = await measureDuring(target.pid, () => udpRun(target.port, seconds, 0, iperf, target.pid));
      f.udp_drain_ms = m.result.drainMs ?? undefined;
      f.udp_sent_pps = m.result.sentPps;
      f.udp_delivered_pps = m.result.deliveredPps;
      f.udp_loss_pct = m.result.lossPct;
      // The backlog relayed after the run is not in iperf3's count: leave its CPU out.
      if (m.cpuSeconds !== null) {
        f.udp_cpu_us_per_pkt =
          ((m.cpuSeconds - m.result.drainCpuSeconds) * 1e6) / Math.max(1, m.result.delivered);
      }
      return `UDP        ${fmt(m.result.deliveredPps)} of ${fmt(m.result.sentPps)} pkt/s delivered (${fmt(m.result.lossPct)}% lost) cpu ${fmt(f.udp_cpu_us_per_pkt, 2)} us/pkt; busy ${fmt(m.result.drainMs)} ms after`;
    },
  },
  {
    id: 'udp-clean',
    name: 'UDP clean rate',
    udp: true,
    firstRoundOnly: true,
    route: (b) => ({ backendPort: b.iperf.port, udp: true }),
    async run(target, f, { iperf, searchSeconds }) {
      await warm('UDP warm-up', () => udpRun(target.port, 1, 20_000, iperf, target.pid));
      try {
        f.udp_clean_pps = await cleanRateSearch(target.port, searchSeconds, iperf, target.pid);
      } catch (error) {
        if (typeof error.good !== 'number') throw error;
        f.udp_clean_pps = error.good > 0 ? error.good : undefined;
        f.errors.push(`UDP clean rate (partial: at least ${fmt(error.good)} pkt/s): ${error.message}`);
        return `clean UDP  at least ${fmt(error.good)} pkt/s with < 1% loss (search ${error.message})`;
      }
      return `clean UDP  ${fmt(f.udp_clean_pps)} pkt/s with < 1% loss`;
    },
  },
];

export async function runNodeBench(opts, log) {
  const targets = (opts.targets ?? NODE_TARGETS).filter((t) => NODE_TARGETS.includes(t));
  const notes = [];
  if (targets.includes('harbor-node') && !nodeAvailable()) {
    notes.push('harbor-node not measured: dist/cli/node.js does not exist (not built or not landed yet)');
    targets.splice(targets.indexOf('harbor-node'), 1);
  }
  notes.push('haproxy has no UDP forwarding (community 2.x): UDP is compared with socat and direct delivery');
  const backends = { iperf: await startIperfServer(), echo: await startEchoServer() };
  const rounds = [];
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      const figures = Object.fromEntries(targets.map((k) => [k, { errors: [] }]));
      log(`  round ${round + 1}/${opts.rounds} (order: ${order.join(', ')})`);
      for (const step of STEPS) {
        if (step.firstRoundOnly && (round > 0 || opts.cleanSearch === false)) continue;
        if (opts.steps && !opts.steps.includes(step.id)) continue;
        for (const kind of order) {
          if (step.udp && kind === 'haproxy') continue;
          if (!backends.iperf.alive()) await backends.iperf.restart();
          const ctx = {
            seconds: opts.seconds,
            iperf: backends.iperf,
            searchSeconds: opts.searchSeconds ?? 2,
          };
          try {
            const line = await withForwarder(kind, step.route(backends), (target) =>
              step.run(target, figures[kind], ctx),
            );
            if (line) log(`    ${kind.padEnd(11)} ${line}`);
          } catch (error) {
            log(
              `    ${kind.padEnd(11)} ${step.name} failed: ${error.message.split('\n').slice(0, 4).join('\n      ')}`,
            );
            figures[kind].errors.push(`${step.name}: ${error.message.slice(0, 1500)}`);
          }
        }
      }
      rounds.push(figures);
    }
  } finally {
    await backends.iperf.stop();
    await backends.echo.stop();
  }
  const medians = {};
  for (const kind of targets) {
    medians[kind] = {};
    for (const [key] of NODE_FIGURES) medians[kind][key] = median(rounds.map((r) => r[kind]?.[key]));
  }
  const goals = targets.includes('harbor-node') ? evaluateGoals(NODE_GOALS, medians, rounds) : [];
  return { targets, rounds, medians, goals, notes };
}

export const NODE_HEADER = [
  'figure (median)',
  'harbor-node',
  'haproxy',
  'socat',
  'direct',
  'node/haproxy',
  'node/socat',
  'node/direct',
];

export function nodeRows(summary) {
  const { medians } = summary;
  return NODE_FIGURES.map(([key, label, unit]) => {
    const cells = [`${label} (${unit})`];
    for (const kind of NODE_TARGETS) {
      cells.push(
        medians[kind] ? fmt(medians[kind][key], key === 'tcp_gbps' || key.includes('per_pkt') ? 2 : 1) : '-',
      );
    }
    const h = medians['harbor-node']?.[key];
    cells.push(fmtRatio(ratio(h, medians.haproxy?.[key])));
    cells.push(fmtRatio(ratio(h, medians.socat?.[key])));
    cells.push(fmtRatio(ratio(h, medians.direct?.[key])));
    return cells;
  });
}
