// npm run bench:instructions: user-space instructions per request, counted by
// valgrind's callgrind, for builds of harbor-sidecar in front of the nginx
// origin, beside the floors: the relay (--relay: a Node TLS pipe to the origin
// with no HTTP logic, HTTP/1.1 only) and bare Node (--bare: Node's https or
// http2 server answering by itself). Unlike CPU time on this VM, where two identical
// builds differ by 5-30% from round to round, the count repeats within about
// 1%: it tells a change of 2-3% to the proxy's own work apart in a few runs.
// It leaves out what the kernel does (the system calls, loopback TCP) and
// what caches and branch predictors cost, so it judges a change to the
// JavaScript (or to how Node is used), not the whole CPU figure: confirm a
// saving there with bench:floor or bench:ab.
//
// Each run starts the target under callgrind (all its threads, counted thread by thread: the
// figure is the process's, and beside it the main thread's, the one that serves; V8 flag
// --single-threaded by default, so that GC and compilation run on the main
// thread and the count varies less), warms it with --warmup requests (default: --requests),
// zeroes the counters, sends --requests more with h2load (HTTP/1.1 with --h1,
// 8 connections, one request in flight each; or HTTP/2, 8 connections x 10
// streams), or with --mode req as many new connections each carrying one
// request (full ECDSA handshake, GET, Connection: close; 4 at a time, the
// client bench/lib/handshake-client.mjs), and reads the count. The builds are
// run in turn, --runs times.
//
//   node bench/https/instructions.mjs [--dist DIST[,DIST...]] [--relay] [--bare] [--mode ka|h2|h2c|req]
//                                     [--requests 10000] [--warmup N] [--runs 2] [--node-flags "--single-threaded"]
//                                     [--sidecar-args "--access-log json"] [--top N]
//
// --top N: also print each run's N costliest functions (instructions per request, their own
// code only), JavaScript ones by name: the target runs with --perf-basic-prof, and the
// addresses callgrind gives JIT code are looked up in the map V8 writes (/tmp/perf-PID.map).
//
// DIST: a dist folder (`npm run build` output; default: this checkout's). Fewer than
// 10,000 requests leave the code partly unoptimized: 2,000 counted 148k for a build
// that counts 85k at 10,000. With --mode req, V8 is still compiling the connection's code
// after 2,000 connections (13% of the count, in the compiler): --warmup 4000 --requests 2000.
// With --access-log, 10,000 requests of warm-up leave the log's path still compiling and running
// unoptimized code on the main thread (+9k against +2.9k): --warmup 40000.
// Needs valgrind (Debian: apt-get install valgrind). Under callgrind the target runs
// 30-50x slower: a run of 2 x 10,000 requests takes about a minute.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseOptions, usageError } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import {
  commandExists,
  freePort,
  installCleanup,
  makeTempDir,
  runCommand,
  startProcess,
} from '../lib/proc.mjs';
import { median } from '../lib/report.mjs';
import { runHandshakes, waitForOk } from '../lib/tls-probe.mjs';
import { ownCopy, repoRoot, SIDECAR_SERVICE, SMALL_PATH, sidecarCommand, startOrigin } from './targets.mjs';

const USAGE =
  'usage: node bench/https/instructions.mjs [--dist DIST[,DIST...]] [--relay] [--bare] [--mode ka|h2|h2c|req] [--requests N] [--warmup N] [--runs R] [--node-flags FLAGS] [--sidecar-args ARGS] [--top N]';
const usage = (message) => usageError(message, USAGE);
const values = parseOptions(USAGE, {
  dist: { type: 'string', default: join(repoRoot, 'dist') },
  relay: { type: 'boolean', default: false },
  bare: { type: 'boolean', default: false },
  mode: { type: 'string', default: 'ka' },
  requests: { type: 'string', default: '10000' },
  warmup: { type: 'string' },
  runs: { type: 'string', default: '2' },
  'node-flags': { type: 'string', default: '--single-threaded' },
  'sidecar-args': { type: 'string', default: '' },
  top: { type: 'string', default: '0' },
});
const requests = Number(values.requests);
const runs = Number(values.runs);
const warmup = Number(values.warmup ?? values.requests);
if (!['ka', 'h2', 'h2c', 'req'].includes(values.mode))
  usage(`--mode: "${values.mode}" is not ka, h2, h2c or req`);
// h2c: HTTP/2 clients, the sidecar speaking HTTP/2 in clear text to the origin (--backend-protocol h2c).
const h2c = values.mode === 'h2c';
const h2 = values.mode === 'h2' || h2c;
if (values.relay && h2) usage('--relay: the relay speaks HTTP/1.1 only (--mode ka)');
if (!Number.isInteger(requests) || requests < 100)
  usage(`--requests: "${values.requests}" is not a whole number >= 100`);
if (!Number.isInteger(warmup) || warmup < 100)
  usage(`--warmup: "${values.warmup}" is not a whole number >= 100`);
if (!Number.isInteger(runs) || runs < 1) usage(`--runs: "${values.runs}" is not a whole number >= 1`);
const top = Number(values.top);
if (!Number.isInteger(top) || top < 0) usage(`--top: "${values.top}" is not a whole number >= 0`);
for (const tool of ['valgrind', 'callgrind_control', 'h2load', ...(top > 0 ? ['callgrind_annotate'] : [])]) {
  if (!commandExists(tool))
    usage(`${tool} is not installed (Debian: apt-get install valgrind nghttp2-client)`);
}
const dists = values.dist.split(',').map((d) => resolve(d));
for (const dist of dists) {
  if (!existsSync(join(dist, 'cli', 'sidecar.js')))
    usage(`--dist: ${dist} has no cli/sidecar.js (run npm run build)`);
}
const nodeFlags = values['node-flags'].split(' ').filter((f) => f !== '');
if (top > 0) nodeFlags.push('--perf-basic-prof');
// Settings for every sidecar run, e.g. "--access-log json --access-log-file /tmp/access.log".
const sidecarArgs = values['sidecar-args'].split(' ').filter((f) => f !== '');

installCleanup();
const dir = makeTempDir('instructions');
const pair = await makePair(dir, 'bench', 'ecdsa');
const origin = await startOrigin(dir, { h2c });

/** The target's command line: the sidecar of `dist`, the floor relay, or bare Node (HTTP/2 on port + 1). */
function targetArgs(dist, port) {
  if (dist === 'relay') {
    const options = { port, origin: origin.port, key: pair.key, cert: pair.cert, flags: [] };
    return [...nodeFlags, join(repoRoot, 'bench', 'https', 'relay.mjs'), JSON.stringify(options)];
  }
  if (dist === 'bare') {
    const options = { port, h2Port: port + 1, key: pair.key, cert: pair.cert };
    return [...nodeFlags, join(repoRoot, 'bench', 'https', 'bare-node.mjs'), JSON.stringify(options)];
  }
  const certsDir = join(dir, `certs-${port}`);
  ownCopy(pair, certsDir, SIDECAR_SERVICE);
  return [
    ...nodeFlags,
    ...sidecarCommand(join(dist, 'cli', 'sidecar.js'), port, h2c ? origin.h2cPort : origin.port, certsDir),
    ...(h2c ? ['--backend-protocol', 'h2c'] : []),
    ...sidecarArgs,
  ];
}

/** The completed requests; throws on a failed one (a target that errors would look cheap). */
async function load(port, count) {
  if (values.mode === 'req') {
    const result = await runHandshakes(port, {
      seconds: 30 * 60,
      concurrency: 4,
      maxCount: count,
      request: true,
    });
    if (result.errors > 0) throw new Error(`new connections: ${result.errors} failed (${result.lastError})`);
    return result.completed;
  }
  const args = ['-n', String(count), '-c', '8', '-t', '1'];
  args.push(...(h2 ? ['-m', '10'] : ['--h1']));
  args.push(`https://127.0.0.1:${port}${SMALL_PATH}`);
  const { code, stdout } = await runCommand('h2load', args, { timeoutMs: 30 * 60_000 });
  const m =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
      stdout,
    );
  if (code !== 0 || m === null) throw new Error(`h2load ${args.join(' ')} failed (exit ${code}): ${stdout}`);
  if (Number(m[5]) + Number(m[6]) > 0) throw new Error(`h2load: ${m[5]} failed, ${m[6]} errored requests`);
  return Number(m[4]);
}

/** One run: instructions per request of `dist` (or of 'relay', 'bare'). */
async function measure(dist) {
  const port = await freePort();
  // Bare Node serves HTTP/2 on a port of its own (port + 1: freePort hands out ports well
  // below the ephemeral range, where the next one is as free as this one in practice).
  const loadPort = dist === 'bare' && h2 ? port + 1 : port;
  const out = join(dir, `callgrind-${port}.out`);
  const proc = startProcess(
    'valgrind',
    [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      '--separate-threads=yes',
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...targetArgs(dist, port),
    ],
    {
      name: 'callgrind',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production' },
      cwd: dir,
    },
  );
  try {
    await waitForOk(port, SMALL_PATH, { timeoutMs: 180_000, h2: h2c });
    await load(loadPort, warmup);
    const zero = await runCommand('callgrind_control', ['--zero', String(proc.pid)]);
    if (zero.code !== 0) throw new Error(`callgrind_control --zero: ${zero.stderr}`);
    const done = await load(loadPort, requests);
    const dump = await runCommand('callgrind_control', ['--dump', String(proc.pid)]);
    if (dump.code !== 0) throw new Error(`callgrind_control --dump: ${dump.stderr}`);
    // The dump asked for is <out>.1-TT, one file per thread TT (01: the main thread); the
    // one at exit will be <out>-TT.
    const prefix = `${basename(out)}.1-`;
    const files = readdirSync(dir).filter((f) => f.startsWith(prefix));
    const count = (file) => {
      const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, file), 'utf8'));
      if (totals === null) throw new Error(`no totals in ${file}`);
      return Number(totals[1]);
    };
    const main = `${prefix}01`;
    if (!files.includes(main)) throw new Error(`no dump of the main thread (${main}) in ${dir}`);
    if (top > 0) await printTop(join(dir, main), `/tmp/perf-${proc.pid}.map`, done);
    return { total: files.reduce((sum, f) => sum + count(f), 0) / done, main: count(main) / done };
  } finally {
    await proc.stop('SIGTERM', 30_000);
    if (top > 0) rmSync(`/tmp/perf-${proc.pid}.map`, { force: true });
  }
}

/** The `top` functions of a callgrind dump (the main thread's) by their own instructions per request, JIT code named from V8's perf map. */
async function printTop(file, perfMap, done) {
  const { code, stdout, stderr } = await runCommand(
    'callgrind_annotate',
    ['--threshold=100', '--auto=no', file],
    {
      timeoutMs: 5 * 60_000,
    },
  );
  if (code !== 0) throw new Error(`callgrind_annotate ${file}: ${stderr}`);
  // V8's map: one line per code object, "START SIZE NAME" (hex, hex).
  const jit = existsSync(perfMap)
    ? readFileSync(perfMap, 'utf8')
        .split('\n')
        .map((line) => /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line))
        .filter((m) => m !== null)
        .map((m) => ({ start: Number.parseInt(m[1], 16), size: Number.parseInt(m[2], 16), name: m[3] }))
        .sort((a, b) => a.start - b.start)
    : [];
  const nameAt = (address) => {
    let lo = 0;
    let hi = jit.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (jit[mid].start <= address) lo = mid + 1;
      else hi = mid - 1;
    }
    const entry = jit[hi];
    return entry !== undefined && address < entry.start + entry.size ? entry.name : undefined;
  };
  const own = new Map();
  let total = 0;
  for (const line of stdout.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const count = Number(m[1].replaceAll(',', ''));
    let name = m[2].trim();
    if (name === 'PROGRAM TOTALS') total = count;
    // The frames below the event loop (main, node::Start...) carry everything: they are not own cost.
    if (count >= total * 0.95) continue;
    const jitAddress = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]$/.exec(name);
    if (jitAddress !== null) {
      const found = nameAt(Number.parseInt(jitAddress[1], 16));
      name =
        found === undefined
          ? 'JIT code with no name (a stub)'
          : `JIT ${found.replace(`file://${repoRoot}/`, '')}`;
    }
    own.set(name, (own.get(name) ?? 0) + count);
  }
  const rows = [...own].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [name, count] of rows)
    process.stdout.write(`    ${String(Math.round(count / done)).padStart(7)}  ${name.slice(0, 140)}\n`);
}

const targets = [...(values.relay ? ['relay'] : []), ...(values.bare ? ['bare'] : []), ...dists];
const figures = new Map(targets.map((t) => [t, []]));
const mainFigures = new Map(targets.map((t) => [t, []]));
process.stdout.write(
  `instructions per ${{ h2: 'HTTP/2 request', h2c: 'HTTP/2 request to an h2c backend', ka: 'keep-alive HTTP/1.1 request', req: 'new connection carrying one request' }[values.mode]} (callgrind, ${requests} requests after ${warmup} of warm-up, node ${nodeFlags.join(' ') || '(no flags)'})\n`,
);
for (let run = 0; run < runs; run++) {
  for (const target of targets) {
    const perRequest = await measure(target);
    figures.get(target).push(perRequest.total);
    mainFigures.get(target).push(perRequest.main);
    process.stdout.write(
      `  run ${run + 1}: ${target}: ${(perRequest.total / 1000).toFixed(1)}k (main thread ${(perRequest.main / 1000).toFixed(1)}k)\n`,
    );
  }
}
for (const [what, table] of [
  ['every thread', figures],
  ['the main thread', mainFigures],
]) {
  const first = median(table.get(targets[0]));
  for (const target of targets) {
    const m = median(table.get(target));
    const all = table
      .get(target)
      .map((x) => (x / 1000).toFixed(1))
      .join(', ');
    const ratio = target === targets[0] ? '' : `, ${(m / first).toFixed(3)}x ${targets[0]}`;
    process.stdout.write(`${target}, ${what}: median ${(m / 1000).toFixed(1)}k (${all})${ratio}\n`);
  }
}
await origin.stop();
process.exit(0);
