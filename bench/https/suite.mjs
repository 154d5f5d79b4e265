// The HTTPS bench (issue 3): nginx (HTTPS reverse proxy, one worker), a bare
// Node TLS server and harbor-sidecar, each in front of (or standing in for)
// the same nginx origin, measured round by round in one run.
import { makePair } from '../lib/certs.mjs';
import {
  makeTempDir,
  measureDuring,
  removeTempDir,
  sleep,
  treeCpuSeconds,
  treeRssMiB,
} from '../lib/proc.mjs';
import { fmt, fmtRatio, judge, median, ratio } from '../lib/report.mjs';
import { resumes, runHandshakes, waitForFingerprint, waitForOk } from '../lib/tls-probe.mjs';
import { runWrk } from '../lib/wrk.mjs';
import {
  LARGE_PATH,
  SMALL_PATH,
  sidecarAvailable,
  startBareNode,
  startNginxProxy,
  startOrigin,
  startSidecar,
} from './targets.mjs';

export const HTTPS_TARGETS = ['nginx', 'node', 'sidecar'];

/** What each figure is, its unit, and whether lower is better (for the table). */
export const HTTPS_FIGURES = [
  ['ka_rps', 'keep-alive requests/s', 'req/s'],
  ['ka_p99_ms', 'keep-alive p99 latency', 'ms'],
  ['ka_cpu_us', 'proxy CPU per keep-alive request', 'us'],
  ['mib_s', '1 MiB download throughput', 'MiB/s'],
  ['mib_cpu_ms', 'proxy CPU per MiB downloaded', 'ms'],
  ['close_rps', 'requests/s, one connection each (wrk, Connection: close)', 'req/s'],
  ['close_cpu_us', 'proxy CPU per connection + request (wrk, Connection: close)', 'us'],
  ['resumed_per_s', 'resumed handshakes/s (TLS 1.3 ticket)', 'hs/s'],
  ['resumed_cpu_us', 'proxy CPU per resumed handshake', 'us'],
  ['full_ecdsa_per_s', 'full handshakes/s, ECDSA P-256', 'hs/s'],
  ['full_ecdsa_cpu_us', 'proxy CPU per full handshake, ECDSA P-256', 'us'],
  ['full_rsa_per_s', 'full handshakes/s, RSA 2048', 'hs/s'],
  ['full_rsa_cpu_us', 'proxy CPU per full handshake, RSA 2048', 'us'],
  ['rss_idle_mib', 'RSS idle (after start + 1 request)', 'MiB'],
  ['rss_load_mib', 'RSS peak under load', 'MiB'],
  ['swap_ms', 'rename of a new pair -> new cert served', 'ms'],
];

/** Issue 3's goals, as ratios of medians. */
function httpsGoals(m) {
  const s = m.sidecar ?? {};
  const n = m.nginx ?? {};
  const b = m.node ?? {};
  return [
    {
      label: 'CPU per keep-alive request <= 2.0x nginx',
      value: ratio(s.ka_cpu_us, n.ka_cpu_us),
      op: '<=',
      limit: 2.0,
    },
    {
      label: 'CPU per full handshake (ECDSA) <= 1.15x bare Node',
      value: ratio(s.full_ecdsa_cpu_us, b.full_ecdsa_cpu_us),
      op: '<=',
      limit: 1.15,
    },
    {
      label: 'CPU per full handshake (RSA) <= 1.15x bare Node',
      value: ratio(s.full_rsa_cpu_us, b.full_rsa_cpu_us),
      op: '<=',
      limit: 1.15,
    },
    { label: '1 MiB MiB/s >= 0.9x nginx', value: ratio(s.mib_s, n.mib_s), op: '>=', limit: 0.9 },
    { label: 'p99 <= 2x nginx', value: ratio(s.ka_p99_ms, n.ka_p99_ms), op: '<=', limit: 2.0 },
    {
      label: 'idle RSS <= 1.25x bare Node',
      value: ratio(s.rss_idle_mib, b.rss_idle_mib),
      op: '<=',
      limit: 1.25,
    },
    {
      label: 'zero failed requests (all sidecar runs)',
      value: s.failed_total,
      op: '==',
      limit: 0,
      count: true,
    },
  ].map(judge);
}

async function measureTarget(kind, startTarget, pairs, opts, log) {
  const figures = { failed_total: 0, errors: [] };
  const seconds = opts.seconds;
  const addFailures = (what, wrk) => {
    figures.failed_total += wrk.failed;
    if (wrk.failed > 0) {
      figures.errors.push(`${what}: non2xx ${wrk.non2xx}, socket errors ${JSON.stringify(wrk.socketErrors)}`);
    }
  };

  // --- ECDSA instance: everything but the RSA handshakes.
  let dir = makeTempDir(kind);
  let target = await startTarget(dir, pairs.ecdsa);
  try {
    const url = (path) => `https://127.0.0.1:${target.port}${path}`;
    await waitForOk(target.port, SMALL_PATH);
    await sleep(1000);
    figures.rss_idle_mib = treeRssMiB(target.pid);
    figures.resumption = await resumes(target.port).catch(() => false);

    // Warm-up (not counted): JIT, pools, session caches.
    await runWrk(url(SMALL_PATH), { connections: 50, seconds: opts.warmupSeconds });
    await runWrk(url(LARGE_PATH), { connections: 10, seconds: opts.warmupSeconds });

    let peak = 0;
    const ka = await measureDuring(target.pid, () => runWrk(url(SMALL_PATH), { connections: 50, seconds }));
    peak = Math.max(peak, ka.peakRssMiB);
    figures.ka_rps = ka.result.rps;
    figures.ka_p50_ms = ka.result.latencyMs.p50;
    figures.ka_p99_ms = ka.result.latencyMs.p99;
    figures.ka_requests = ka.result.requests;
    figures.ka_cpu_us = (ka.cpuSeconds / Math.max(1, ka.result.requests)) * 1e6;
    figures.ka_machine_busy = ka.machineBusy;
    addFailures('keep-alive', ka.result);
    log(
      `    keep-alive ${fmt(ka.result.rps)} req/s p99 ${fmt(figures.ka_p99_ms, 2)} ms cpu ${fmt(figures.ka_cpu_us)} us/req`,
    );

    const big = await measureDuring(target.pid, () => runWrk(url(LARGE_PATH), { connections: 10, seconds }));
    peak = Math.max(peak, big.peakRssMiB);
    figures.mib_s = big.result.mibPerSecond;
    figures.mib_p99_ms = big.result.latencyMs.p99;
    figures.mib_cpu_ms = (big.cpuSeconds / Math.max(1, big.result.bytes / 1024 ** 2)) * 1e3;
    addFailures('1 MiB', big.result);
    // A proxy that answered with short bodies would look fast: check the size
    // (wrk prints "1.36GB read": 3 digits, so allow 1% of rounding).
    if (big.result.requests > 0 && big.result.bytes / big.result.requests < 0.99 * 1024 * 1024) {
      figures.failed_total += 1;
      figures.errors.push(
        `1 MiB: only ${Math.round(big.result.bytes / big.result.requests)} bytes per response`,
      );
    }
    log(`    1 MiB      ${fmt(figures.mib_s)} MiB/s cpu ${fmt(figures.mib_cpu_ms, 2)} ms/MiB`);

    const closeRun = await measureDuring(target.pid, () =>
      runWrk(url(SMALL_PATH), { connections: 50, seconds, headers: ['Connection: close'] }),
    );
    peak = Math.max(peak, closeRun.peakRssMiB);
    figures.close_rps = closeRun.result.rps;
    figures.close_cpu_us = (closeRun.cpuSeconds / Math.max(1, closeRun.result.requests)) * 1e6;
    addFailures('Connection: close', closeRun.result);
    log(
      `    conn/req   ${fmt(figures.close_rps)} req/s cpu ${fmt(figures.close_cpu_us)} us/conn (wrk, Connection: close)`,
    );

    const resumed = await measureDuring(target.pid, () =>
      runHandshakes(target.port, { seconds, resume: true }),
    );
    peak = Math.max(peak, resumed.peakRssMiB);
    figures.resumed_per_s = resumed.result.rate;
    figures.resumed_cpu_us = (resumed.cpuSeconds / Math.max(1, resumed.result.completed)) * 1e6;
    figures.resumed_fraction = resumed.result.reused / Math.max(1, resumed.result.completed);
    if (resumed.result.errors > 0) {
      figures.errors.push(
        `resumed handshakes: ${resumed.result.errors} errors (${resumed.result.lastError})`,
      );
    }
    log(
      `    resumed    ${fmt(figures.resumed_per_s)} hs/s cpu ${fmt(figures.resumed_cpu_us)} us/hs (${fmt(100 * figures.resumed_fraction)}% resumed)`,
    );

    const full = await measureDuring(target.pid, () => runHandshakes(target.port, { seconds }));
    peak = Math.max(peak, full.peakRssMiB);
    figures.full_ecdsa_per_s = full.result.rate;
    figures.full_ecdsa_cpu_us = (full.cpuSeconds / Math.max(1, full.result.completed)) * 1e6;
    figures.full_ecdsa_protocol = full.result.protocol;
    figures.full_ecdsa_reused = full.result.reused;
    if (full.result.errors > 0)
      figures.errors.push(`full ECDSA handshakes: ${full.result.errors} errors (${full.result.lastError})`);
    log(
      `    full ECDSA ${fmt(figures.full_ecdsa_per_s)} hs/s cpu ${fmt(figures.full_ecdsa_cpu_us)} us/hs (${full.result.protocol}, reused ${full.result.reused})`,
    );
    figures.rss_load_mib = peak;

    if (target.swapCert) {
      const staging = makeTempDir(`${kind}-next`);
      const next = await makePair(staging, 'next', 'ecdsa', `harbor-bench-next-${Date.now()}`);
      const since = performance.now();
      target.swapCert(next);
      const ms = await waitForFingerprint(target.port, next.fingerprint, since);
      figures.swap_ms = ms ?? undefined;
      figures.swap_how = target.swapNote;
      if (ms === null) figures.errors.push('new certificate not served within 10 s of the rename');
      log(`    swap       ${ms === null ? 'NOT SERVED within 10 s' : `${fmt(ms)} ms`} (${target.swapNote})`);
      removeTempDir(staging);
    }
    figures.cpu_total_s = treeCpuSeconds(target.pid);
  } finally {
    await target.stop();
    removeTempDir(dir);
  }

  // --- RSA instance: full handshakes only.
  dir = makeTempDir(`${kind}-rsa`);
  target = await startTarget(dir, pairs.rsa);
  try {
    await waitForOk(target.port, SMALL_PATH);
    await runHandshakes(target.port, { seconds: opts.warmupSeconds });
    const full = await measureDuring(target.pid, () => runHandshakes(target.port, { seconds }));
    figures.full_rsa_per_s = full.result.rate;
    figures.full_rsa_cpu_us = (full.cpuSeconds / Math.max(1, full.result.completed)) * 1e6;
    figures.full_rsa_reused = full.result.reused;
    if (full.result.errors > 0)
      figures.errors.push(`full RSA handshakes: ${full.result.errors} errors (${full.result.lastError})`);
    log(`    full RSA   ${fmt(figures.full_rsa_per_s)} hs/s cpu ${fmt(figures.full_rsa_cpu_us)} us/hs`);
  } finally {
    await target.stop();
    removeTempDir(dir);
  }
  return figures;
}

export async function runHttpsBench(opts, log) {
  const targets = (opts.targets ?? HTTPS_TARGETS).filter((t) => HTTPS_TARGETS.includes(t));
  const notes = [];
  if (targets.includes('sidecar') && !sidecarAvailable()) {
    notes.push(
      'harbor-sidecar not measured: dist/cli/sidecar.js does not exist (not built or not landed yet)',
    );
    targets.splice(targets.indexOf('sidecar'), 1);
  }
  const certDir = makeTempDir('certs');
  const pairs = {
    ecdsa: await makePair(certDir, 'ecdsa', 'ecdsa'),
    rsa: await makePair(certDir, 'rsa', 'rsa'),
  };
  const originDir = makeTempDir('origin');
  const origin = await startOrigin(originDir);
  const starters = {
    nginx: (dir, pair) => startNginxProxy(dir, pair, origin.port),
    node: (dir, pair) => startBareNode(dir, pair),
    sidecar: (dir, pair) => startSidecar(dir, pair, origin.port, opts.sidecar),
  };
  const rounds = [];
  try {
    for (let round = 0; round < opts.rounds; round++) {
      // Rotate the order so no target always runs first (or right after another).
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      const perTarget = {};
      for (const kind of order) {
        log(`  round ${round + 1}/${opts.rounds}: ${kind}`);
        try {
          perTarget[kind] = await measureTarget(kind, starters[kind], pairs, opts, log);
        } catch (error) {
          log(`    ${kind} failed: ${error.message.split('\n').slice(0, 6).join('\n      ')}`);
          perTarget[kind] = {
            error: error.message.slice(0, 2000),
            failed_total: null,
            errors: [error.message],
          };
        }
      }
      rounds.push(perTarget);
    }
  } finally {
    await origin.stop();
    removeTempDir(originDir);
    removeTempDir(certDir);
  }
  return summarise(targets, rounds, notes, pairs);
}

function summarise(targets, rounds, notes, pairs) {
  const medians = {};
  for (const kind of targets) {
    medians[kind] = {};
    for (const [key] of HTTPS_FIGURES) medians[kind][key] = median(rounds.map((r) => r[kind]?.[key]));
    const failedCounts = rounds.map((r) => r[kind]?.failed_total);
    // A round that could not run at all counts as failed, not as zero failures.
    medians[kind].failed_total = failedCounts.some((c) => c === null || c === undefined)
      ? null
      : failedCounts.reduce((a, b) => a + b, 0);
    medians[kind].resumption = rounds.map((r) => r[kind]?.resumption);
  }
  const goals = targets.includes('sidecar') ? httpsGoals(medians) : [];
  return {
    targets,
    rounds,
    medians,
    goals,
    notes,
    certs: { ecdsa: pairs.ecdsa.fingerprint, rsa: pairs.rsa.fingerprint },
  };
}

/** Rows for the printed and markdown tables: figure, each target's median, sidecar/nginx, sidecar/node. */
export function httpsRows(summary) {
  const { medians } = summary;
  return HTTPS_FIGURES.map(([key, label, unit]) => {
    const cells = [`${label} (${unit})`];
    for (const kind of HTTPS_TARGETS) {
      const value = medians[kind]?.[key];
      cells.push(medians[kind] ? fmt(value, key.endsWith('_ms') || key.endsWith('cpu_ms') ? 2 : 1) : '-');
    }
    cells.push(fmtRatio(ratio(medians.sidecar?.[key], medians.nginx?.[key])));
    cells.push(fmtRatio(ratio(medians.sidecar?.[key], medians.node?.[key])));
    return cells;
  });
}

export const HTTPS_HEADER = [
  'figure (median)',
  'nginx',
  'bare Node',
  'harbor-sidecar',
  'sidecar/nginx',
  'sidecar/node',
];
