// Medians, ratios, goals and the printed / markdown / JSON report.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** "min-max" of a list of ratios, three decimals: how far apart the rounds were. */
export function spread(values) {
  return `${Math.min(...values).toFixed(3)}-${Math.max(...values).toFixed(3)}`;
}

export function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 ? a / b : null;
}

export function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  if (typeof value !== 'number') return String(value);
  const abs = Math.abs(value);
  if (abs >= 10_000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  return value.toFixed(digits);
}

export function fmtRatio(value) {
  return value === null || value === undefined ? 'n/a' : `${value.toFixed(2)}x`;
}

/**
 * A goal: { label, value (a ratio or a count), op '<=' | '>=' | '==', limit }.
 * Missing values are "n/a" (not a pass).
 */
export function judge(goal) {
  const { value, op, limit } = goal;
  let verdict = 'n/a';
  if (typeof value === 'number' && Number.isFinite(value)) {
    const ok = op === '<=' ? value <= limit : op === '>=' ? value >= limit : value === limit;
    verdict = ok ? 'PASS' : 'FAIL';
  }
  return { ...goal, verdict };
}

/**
 * Goals declared as data: { label, subject, peer, key, op, limit } compares
 * median(subject.key) / median(peer.key); { label, subject, key: 'failed_total',
 * count: true } sums a count. Each goal also gets the same ratio round by round
 * (how much the rounds agree).
 */
export function evaluateGoals(specs, medians, rounds) {
  return specs.map((spec) => {
    if (spec.count) return judge({ ...spec, value: medians[spec.subject]?.[spec.key] ?? null });
    const value = ratio(medians[spec.subject]?.[spec.key], medians[spec.peer]?.[spec.key]);
    const perRound = rounds.map((r) => ratio(r[spec.subject]?.[spec.key], r[spec.peer]?.[spec.key]));
    // The verdict is on the ratio of the medians (the issue's wording); the
    // median of the per-round ratios (each pair measured seconds apart) is
    // shown beside it as the steadier estimate on a shared machine.
    return judge({ ...spec, value, perRound, medianOfRatios: median(perRound) });
  });
}

/** "1.97x (rounds: 2.05, 1.81, 1.97; median of round ratios 1.97x)" or a count. */
export function formatGoalValue(goal) {
  if (goal.value === null || goal.value === undefined) return 'n/a';
  if (goal.count) return String(goal.value);
  const rounds = (goal.perRound ?? []).map((v) => (v === null ? 'n/a' : v.toFixed(2))).join(', ');
  const paired =
    typeof goal.medianOfRatios === 'number'
      ? `; median of round ratios ${goal.medianOfRatios.toFixed(2)}x`
      : '';
  return `${goal.value.toFixed(2)}x${rounds ? ` (rounds: ${rounds}${paired})` : ''}`;
}

export function machineInfo() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const match = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) cpuModel = match[1].trim();
  } catch {
    // keep os.cpus()
  }
  const version = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 5000 })
        .split('\n')[0]
        .trim();
    } catch (error) {
      return (error.stderr ?? '').toString().split('\n')[0].trim() || 'missing';
    }
  };
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  return {
    date: new Date().toISOString(),
    nproc: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    cpuModel,
    memGiB: Math.round(
      Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) / 1048576,
    ),
    kernel: version('uname', ['-r']),
    node: process.version,
    commit,
    tools: {
      nginx: version('nginx', ['-v']),
      haproxy: version('haproxy', ['-v']),
      socat:
        version('socat', ['-V']).replace(/^socat by .*/, '') || version('sh', ['-c', 'socat -V | sed -n 2p']),
      wrk: version('sh', ['-c', 'wrk -v 2>&1 | head -1']),
      iperf3: version('iperf3', ['--version']),
      openssl: version('openssl', ['version']),
    },
  };
}

/** A markdown table from a header row and rows of cells. */
export function markdownTable(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The same table, padded for a terminal. */
export function textTable(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  const line = (cells) => cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
