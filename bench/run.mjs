// npm run bench: harbor-sidecar against nginx and a bare Node TLS server
// (issue 3), harbor-node against haproxy, socat and direct delivery (issue 4),
// and (as root) the kernel data plane's own bench (issue 15, bench/node/dataplane.mjs),
// in one run on loopback. Prints every figure, its ratios and the issues'
// goals; writes JSON and a markdown table to bench/results/ (gitignored).
//
//   node bench/run.mjs [--suite https|node|all] [--rounds 3] [--seconds 5]
//                      [--targets nginx,node,sidecar,haproxy,socat,harbor-node,direct]
//                      [--steps ka,ka-rate,mib,close,resumed,full-ecdsa,h2,req-ecdsa,swap,full-rsa,req-rsa,tcp,conn,udp,udp-clean,dataplane]
//                      [--quick] [--pin]
// --pin (HTTPS suite only): each target alone on the last CPU, the load generators
// and the origin on the first (bench/lib/pin.mjs).
//   node bench/profile.mjs   (CPU profile of the sidecar under wrk, see docs/benchmarks.md)
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HTTPS_HEADER, HTTPS_STEP_IDS, httpsRows, runHttpsBench } from './https/suite.mjs';
import { parseOptions, wholeNumber } from './lib/args.mjs';
import { pinBenchOrExit } from './lib/pin.mjs';
import { commandExists, installCleanup, machineBusy, machineCpu, machineLoad } from './lib/proc.mjs';
import { formatGoalValue, machineInfo, markdownTable, textTable } from './lib/report.mjs';
import { NODE_HEADER, NODE_STEP_IDS, nodeRows, runNodeBench } from './node/suite.mjs';

const here = dirname(fileURLToPath(import.meta.url));

const USAGE =
  'usage: node bench/run.mjs [--suite https|node|all] [--rounds 1-20] [--seconds 1-60] [--targets a,b] [--steps a,b] [--quick] [--pin]';
const values = parseOptions(USAGE, {
  suite: { type: 'string', default: 'all' },
  rounds: { type: 'string', default: '3' },
  seconds: { type: 'string', default: '5' },
  targets: { type: 'string' },
  steps: { type: 'string' },
  quick: { type: 'boolean', default: false },
  pin: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
});

if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const suites = values.suite === 'all' ? ['https', 'node'] : values.suite.split(',');
for (const s of suites) {
  if (!['https', 'node'].includes(s)) {
    process.stderr.write(`bench: --suite must be https, node or all, not ${JSON.stringify(s)}\n`);
    process.exit(2);
  }
}
if (values.pin && suites.includes('node')) {
  process.stderr.write('bench: --pin applies to the https suite only: add --suite https\n');
  process.exit(2);
}
const rounds = values.quick ? 1 : wholeNumber(values, 'rounds', 1, 20, USAGE);
const seconds = values.quick ? 2 : wholeNumber(values, 'seconds', 1, 60, USAGE);
const opts = {
  rounds,
  seconds,
  warmupSeconds: values.quick ? 1 : 1,
  targets: values.targets?.split(',').map((t) => t.trim()),
  steps: values.steps?.split(',').map((t) => t.trim()),
  pin: values.pin,
};
const knownSteps = [...HTTPS_STEP_IDS, ...NODE_STEP_IDS, 'dataplane'];
for (const step of opts.steps ?? []) {
  if (!knownSteps.includes(step)) {
    process.stderr.write(`bench: --steps takes ${knownSteps.join(', ')}; not ${JSON.stringify(step)}\n`);
    process.exit(2);
  }
}

const needed = { https: ['nginx', 'wrk', 'openssl'], node: ['iperf3', 'haproxy', 'socat'] };
for (const suite of suites) {
  const missing = needed[suite].filter((cmd) => !commandExists(cmd));
  if (missing.length > 0) {
    process.stderr.write(
      `bench: missing ${missing.join(', ')}; install with: apt-get install -y ${missing.join(' ')}\n`,
    );
    process.exit(1);
  }
}

installCleanup();
if (values.pin) pinBenchOrExit('bench');
const log = (line) => process.stdout.write(`${line}\n`);
const machine = machineInfo();
const loadBefore = machineLoad();
const cpuBefore = machineCpu();
log(
  `harbor bench ${machine.date} on ${machine.nproc} x ${machine.cpuModel}, node ${machine.node}, commit ${machine.commit}`,
);
log(
  `load average at start: ${loadBefore.load1} (1 min), ${loadBefore.load5} (5 min); ${rounds} round(s) of ${seconds} s${values.pin ? '; --pin: each target alone on the last CPU, load generators and origin on the first' : ''}`,
);
if (loadBefore.load1 > machine.nproc) {
  log(
    `warning: the machine is busy (load ${loadBefore.load1} on ${machine.nproc} cores): figures will be noisy; ` +
      'CPU per operation and ratios hold up better than rates',
  );
}

const results = {
  machine,
  options: { suites, rounds, seconds, pin: values.pin },
  load: { before: loadBefore },
};
const started = Date.now();
let exitCode = 0;
try {
  if (suites.includes('https')) {
    log('\n== HTTPS (issue 3): nginx vs bare Node TLS vs harbor-sidecar ==');
    results.https = await runHttpsBench(opts, log);
  }
  if (suites.includes('node')) {
    log('\n== Edge node (issue 4): harbor-node vs haproxy vs socat vs direct ==');
    results.node = await runNodeBench(opts, log);
    if (opts.steps === undefined || opts.steps.includes('dataplane'))
      results.dataplane = runDataplaneBench(log);
  }
} catch (error) {
  log(`\nbench aborted: ${error.stack ?? error}`);
  results.aborted = String(error.stack ?? error);
  exitCode = 1;
}
results.load.after = machineLoad();
results.load.machineBusy = machineBusy(cpuBefore);
results.elapsedSeconds = (Date.now() - started) / 1000;

const md = [];
md.push(`### Benchmark run ${machine.date.slice(0, 16).replace('T', ' ')} UTC`);
md.push('');
md.push(
  `Machine: ${machine.nproc} x ${machine.cpuModel}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}; ` +
    `commit ${machine.commit}. Load average ${results.load.before.load1} at start, ${results.load.after.load1} at end; ` +
    `whole machine ${Math.round((results.load.machineBusy ?? 0) * 100)}% busy during the run (bench included). ` +
    `Median of ${rounds} round(s) of ${seconds} s each; wrk -t1, loopback${values.pin ? '; each target pinned alone on the last CPU, load generators and origin on the first (--pin)' : ''}.`,
);
for (const [suite, header, rowsOf] of [
  ['https', HTTPS_HEADER, httpsRows],
  ['node', NODE_HEADER, nodeRows],
]) {
  const summary = results[suite];
  if (!summary) continue;
  const rows = rowsOf(summary);
  const title = suite === 'https' ? 'HTTPS (issue 3)' : 'Edge node (issue 4)';
  log(`\n${title}: medians of ${rounds} round(s)`);
  log(textTable(header, rows));
  md.push('', `#### ${title}`, '', markdownTable(header, rows));
  if (summary.goals.length > 0) {
    log('\nGoals:');
    md.push('', '| goal | measured | verdict |', '| --- | --- | --- |');
    for (const goal of summary.goals) {
      const measured = formatGoalValue(goal);
      log(`  ${goal.verdict.padEnd(4)}  ${goal.label}: ${measured}`);
      md.push(`| ${goal.label} | ${measured} | ${goal.verdict} |`);
      if (goal.verdict === 'FAIL') exitCode = exitCode || 3;
    }
  }
  for (const note of summary.notes) {
    log(`  note: ${note}`);
    md.push('', `Note: ${note}`);
  }
  const errors = [];
  summary.rounds.forEach((round, i) => {
    for (const [kind, figures] of Object.entries(round)) {
      for (const error of figures?.errors ?? [])
        errors.push(`round ${i + 1} ${kind}: ${error.split('\n')[0]}`);
    }
  });
  if (errors.length > 0) {
    log('\nErrors and failures:');
    for (const e of errors) log(`  ${e}`);
    md.push('', 'Errors and failures:', '', ...errors.map((e) => `- ${e}`));
  }
}

if (results.dataplane?.output) {
  md.push('', '#### Kernel data plane (issue 15)', '', '```', results.dataplane.output.trimEnd(), '```');
}

const outDir = join(here, 'results');
mkdirSync(outDir, { recursive: true });
const stamp = machine.date.replace(/[:.]/g, '-');
const tag = suites.join('+');
writeFileSync(join(outDir, `${stamp}-${tag}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `${stamp}-${tag}.md`), `${md.join('\n')}\n`);
writeFileSync(join(outDir, `latest-${tag}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `latest-${tag}.md`), `${md.join('\n')}\n`);
log(
  `\nwrote bench/results/${stamp}-${tag}.json and .md (also latest-${tag}.*); ${Math.round(results.elapsedSeconds)} s`,
);
process.exit(exitCode);

/**
 * The kernel data plane (issue 15) beside the others: bench/node/dataplane.mjs, which runs
 * itself in a network namespace of its own and so needs root, nft and unshare.
 */
function runDataplaneBench(log) {
  log(
    '\n== Kernel data plane (issue 15): harbor-node --dataplane nftables vs userspace, HAProxy, socat, direct ==',
  );
  const missing = ['nft', 'conntrack', 'unshare', 'iperf3'].filter((cmd) => !commandExists(cmd));
  if (process.getuid?.() !== 0 || missing.length > 0) {
    const why = process.getuid?.() !== 0 ? 'not root' : `missing ${missing.join(', ')}`;
    log(
      `  skipped (${why}): it needs root for its own network namespace; run npm run bench:dataplane as root`,
    );
    return { skipped: why };
  }
  const child = spawnSync(
    process.execPath,
    [join(here, 'node/dataplane.mjs'), '--rounds', String(rounds), '--seconds', String(seconds)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 },
  );
  for (const line of (child.stdout ?? '').trimEnd().split('\n')) log(line);
  if (child.status !== 0) exitCode = exitCode || 1;
  return { status: child.status, output: child.stdout ?? '' };
}
