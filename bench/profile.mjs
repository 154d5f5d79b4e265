// Where harbor-sidecar's CPU goes: runs the sidecar in front of the nginx
// origin, warms it up, then records a V8 CPU profile (through the inspector,
// only for the measured window) while wrk or the handshake client loads it,
// and prints the top functions by self time, time by area, and (with --perf)
// the split between JS, OpenSSL, libuv/Node C++ and the kernel from `perf`.
// --target nginx|node profiles a peer the same way (nginx: perf only), so
// that the kernel's and OpenSSL's shares can be compared. --strace counts
// system calls per operation instead (strace slows the target: only the
// counts mean something, not the CPU figures of that run).
//
//   node bench/profile.mjs [--target sidecar|nginx|node|relay] [--scenario ka|mib|close|full|req|h2]
//                          [--seconds 10] [--perf] [--top N] [--type ecdsa|rsa]
//
// The raw .cpuprofile is written to bench/results/ (open it in Chrome DevTools
// or speedscope for the flame graph).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LARGE_PATH,
  SMALL_PATH,
  sidecarAvailable,
  startBareNode,
  startNginxProxy,
  startOrigin,
  startRelay,
  startSidecar,
} from './https/targets.mjs';
import { parseOptions, usageError, wholeNumber } from './lib/args.mjs';
import { makePair } from './lib/certs.mjs';
import { summarisePerf, summariseProfile } from './lib/cpuprofile.mjs';
import { runH2load } from './lib/h2load.mjs';
import { inspectorSession } from './lib/inspector.mjs';
import {
  commandExists,
  freePort,
  installCleanup,
  makeTempDir,
  measureDuring,
  processTree,
  runCommand,
  sleep,
  startProcess,
} from './lib/proc.mjs';
import { fmt, textTable } from './lib/report.mjs';
import { runHandshakes, waitForOk } from './lib/tls-probe.mjs';
import { runWrk } from './lib/wrk.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const USAGE =
  'usage: node bench/profile.mjs [--target sidecar|nginx|node|relay] [--scenario ka|mib|close|full|req|h2] [--seconds 1-60] [--perf] [--strace] [--top N] [--type ecdsa|rsa]';
const values = parseOptions(USAGE, {
  target: { type: 'string', default: 'sidecar' },
  scenario: { type: 'string', default: 'ka' },
  seconds: { type: 'string', default: '10' },
  perf: { type: 'boolean', default: false },
  strace: { type: 'boolean', default: false },
  top: { type: 'string', default: '30' },
  type: { type: 'string', default: 'ecdsa' },
});
const seconds = wholeNumber(values, 'seconds', 1, 60, USAGE);
const top = wholeNumber(values, 'top', 1, 1000, USAGE);
const scenarios = ['ka', 'mib', 'close', 'full', 'req', 'h2'];
const targets = ['sidecar', 'nginx', 'node', 'relay'];
if (!scenarios.includes(values.scenario)) {
  usageError(`--scenario: ${JSON.stringify(values.scenario)} is not ${scenarios.join(', ')}`, USAGE);
}
if (!targets.includes(values.target)) {
  usageError(`--target: ${JSON.stringify(values.target)} is not ${targets.join(', ')}`, USAGE);
}
if (!['ecdsa', 'rsa'].includes(values.type)) {
  usageError(`--type: ${JSON.stringify(values.type)} is not ecdsa or rsa`, USAGE);
}
if (values.target === 'relay' && values.scenario === 'h2') {
  usageError('--target relay speaks HTTP/1 only; --scenario h2 needs another target', USAGE);
}
if (!sidecarAvailable()) {
  process.stderr.write('profile: dist/cli/sidecar.js does not exist; run npm run build first\n');
  process.exit(1);
}

installCleanup();
const log = (line) => process.stdout.write(`${line}\n`);

const dir = makeTempDir('profile');
const pair = await makePair(dir, 'pair', values.type);
// HARBOR_BACKEND_PROTOCOL=h2c (with --scenario h2): the sidecar to the origin's h2c listener.
const h2c = process.env.HARBOR_BACKEND_PROTOCOL === 'h2c';
if (h2c && values.scenario !== 'h2') usageError('HARBOR_BACKEND_PROTOCOL=h2c needs --scenario h2', USAGE);
const origin = await startOrigin(makeTempDir('profile-origin'), { h2c });
const inspectPort = await freePort();
const nodeArgs = [
  `--inspect=127.0.0.1:${inspectPort}`,
  ...(values.perf ? ['--perf-basic-prof-only-functions'] : []),
];
const sidecar = await {
  sidecar: () =>
    startSidecar(dir, pair, h2c ? origin.h2cPort : origin.port, {
      extraNodeArgs: nodeArgs,
      env: {
        ...(process.env.HARBOR_ACCESS_LOG
          ? {
              HARBOR_ACCESS_LOG: process.env.HARBOR_ACCESS_LOG,
              HARBOR_ACCESS_LOG_FILE: join(dir, 'access.log'),
            }
          : {}),
        ...(h2c ? { HARBOR_BACKEND_PROTOCOL: 'h2c' } : {}),
      },
    }),
  node: () => startBareNode(dir, pair, { extraNodeArgs: nodeArgs }),
  nginx: () => startNginxProxy(dir, pair, origin.port),
  // The floor of a Node proxy (bench/https/relay.mjs): HTTP/1 only (no h2).
  relay: () => startRelay(pair, origin.port, { extraNodeArgs: nodeArgs }),
}[values.target]();
const url = (path) => `https://127.0.0.1:${sidecar.port}${path}`;
const loadFor = (s) =>
  ({
    ka: () => runWrk(url(SMALL_PATH), { connections: 50, seconds: s }),
    mib: () => runWrk(url(LARGE_PATH), { connections: 10, seconds: s }),
    close: () => runWrk(url(SMALL_PATH), { connections: 50, seconds: s, headers: ['Connection: close'] }),
    full: () => runHandshakes(sidecar.port, { seconds: s }),
    req: () => runHandshakes(sidecar.port, { seconds: s, request: true }),
    // Bare Node serves HTTP/2 on a port of its own.
    h2: () =>
      runH2load(`https://127.0.0.1:${sidecar.h2Port ?? sidecar.port}${SMALL_PATH}`, {
        connections: 10,
        streams: 10,
        seconds: s,
      }),
  })[values.scenario];
const load = loadFor(seconds);

try {
  await waitForOk(sidecar.port, SMALL_PATH, { h2: h2c });
  log(`${values.target} pid ${sidecar.pid} on ${sidecar.port}; warming up (${values.scenario})`);
  // HTTP/1.1 clients do not reach an h2c-only origin.
  if (!h2c) {
    await runWrk(url(SMALL_PATH), { connections: 50, seconds: 2 });
    await runWrk(url(LARGE_PATH), { connections: 10, seconds: 1 });
  }
  // The scenario's own load too: its code compiled before the profile, as in a running proxy.
  await loadFor(2)();

  // perf and the V8 profiler are not run together: each would show the other's cost.
  const usePerf = values.perf && commandExists('perf');
  const session = usePerf || values.strace ? null : await inspectorSession(inspectPort);
  let perf = null;
  const perfData = join(dir, 'perf.data');
  if (usePerf) {
    const pids = processTree(sidecar.pid).join(',');
    perf = startProcess('perf', ['record', '-F', '999', '-p', pids, '-o', perfData], {
      name: 'perf',
    });
    await sleep(300);
  } else if (session) {
    await session.send('Profiler.enable');
    await session.send('Profiler.setSamplingInterval', { interval: 200 });
    await session.send('Profiler.start');
  }
  let strace = null;
  const straceOut = join(dir, 'strace.txt');
  if (values.strace && commandExists('strace')) {
    const pidArgs = processTree(sidecar.pid).flatMap((pid) => ['-p', String(pid)]);
    strace = startProcess('strace', ['-c', '-f', '-qq', '-o', straceOut, ...pidArgs], { name: 'strace' });
    await sleep(500);
  }
  const measured = await measureDuring(sidecar.pid, load);
  if (strace) await strace.stop('SIGINT', 10_000);
  const profile = session ? (await session.send('Profiler.stop')).profile : null;
  session?.close();
  if (perf) await perf.stop('SIGINT', 10_000);

  const r = measured.result;
  const operations = r.requests ?? r.completed;
  const usPerOp = (measured.cpuSeconds * 1e6) / Math.max(1, operations);
  log(
    `\nload: ${values.scenario}, ${operations} operations in ${fmt(r.seconds ?? seconds, 2)} s; ${values.target} CPU ${fmt(
      measured.cpuSeconds,
      2,
    )} s (${fmt((measured.systemSeconds / measured.cpuSeconds) * 100)}% in the kernel) = ${fmt(usPerOp)} us per operation`,
  );
  log(
    `context switches per operation: ${fmt(measured.switches.voluntary / Math.max(1, operations), 3)} voluntary (waits), ` +
      `${fmt(measured.switches.involuntary / Math.max(1, operations), 3)} involuntary (preempted)`,
  );
  if (strace) log(summariseStrace(readFileSync(straceOut, 'utf8'), operations));
  if (profile) {
    const out = join(here, 'results');
    mkdirSync(out, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const file = join(out, `${values.target}-${values.scenario}-${stamp}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    log(summariseProfile(profile, { top, usPerOp }));
    log(`\nprofile written to ${file}`);
  }

  if (perf) {
    const symbols = await runCommand(
      'perf',
      [
        'report',
        '-i',
        perfData,
        '--no-children',
        '--sort',
        'dso,sym',
        '--stdio',
        '-g',
        'none',
        '--percent-limit',
        '0',
      ],
      { timeoutMs: 120_000 },
    );
    log(summarisePerf(symbols.stdout, top));
  }
} finally {
  await sidecar.stop();
  await origin.stop();
  // --perf-basic-prof leaves its symbol map in /tmp.
  rmSync(`/tmp/perf-${sidecar.pid}.map`, { force: true });
}
process.exit(0);

/** System calls per operation from `strace -c` output. */
function summariseStrace(text, operations) {
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)$/.exec(line);
    if (m && m[3] !== 'total') rows.push([m[3], Number(m[1]), Number(m[2] ?? 0)]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((a, r) => a + r[1], 0);
  return [
    `\nsystem calls per operation (strace -c, ${operations} operations): ${fmt(total / Math.max(1, operations), 2)} in all`,
    textTable(
      ['syscall', 'per op', 'errors per op'],
      rows
        .slice(0, 15)
        .map(([name, calls, errors]) => [name, fmt(calls / operations, 2), fmt(errors / operations, 2)]),
    ),
  ].join('\n');
}
