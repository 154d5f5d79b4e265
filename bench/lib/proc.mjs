// Child processes, temp dirs and /proc readings for the bench.
// Every child is spawned in its own process group and remembered, so that one
// cleanup (normal end, error, Ctrl-C) kills every group and removes every temp
// dir; nothing started by the bench outlives it.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const children = new Set();
const tempDirs = new Set();
let cleaned = false;

/** Kills every child group still running and removes every temp dir (sync: usable from 'exit'). */
export function cleanupAll() {
  for (const child of children) killGroup(child, 'SIGKILL');
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

export function installCleanup() {
  const onSignal = (signal) => {
    if (!cleaned) {
      cleaned = true;
      process.stderr.write(`\nbench: ${signal}, stopping every child\n`);
      cleanupAll();
    }
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', () => cleanupAll());
}

export function makeTempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `harbor-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Starts a long-running child in its own process group. stdout/stderr are kept
 * (bounded) for error messages. Returns { child, pid, output(), stop() }.
 */
export function startProcess(cmd, args, options = {}) {
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const keep = (chunk) => {
    out += chunk.toString();
    if (out.length > 20000) out = out.slice(-10000);
    if (options.echo) process.stderr.write(chunk);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (error) => {
      children.delete(child);
      out += `\nspawn error: ${error.message}`;
      resolve({ code: -1, signal: null, error });
    });
  });
  return {
    child,
    pid: child.pid,
    name: options.name ?? cmd,
    exited,
    output: () => out,
    alive: () => child.exitCode === null && child.signalCode === null,
    /** SIGTERM (or the given signal), then SIGKILL of the group after graceMs. */
    async stop(signal = 'SIGTERM', graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      killGroup(child, signal);
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      // Workers of a master (nginx) share the group: make sure none is left.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // group empty
      }
      return result;
    },
  };
}

/** Runs a command to completion (bounded by timeoutMs); resolves { code, stdout, stderr, ms }. */
export function runCommand(cmd, args, options = {}) {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      if (stdout.length < 4_000_000) stdout += c;
    });
    child.stderr.on('data', (c) => {
      if (stderr.length < 200_000) stderr += c;
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${options.timeoutMs} ms)`;
      killGroup(child, 'SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      stderr += `spawn error: ${error.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms: performance.now() - started });
    });
  });
}

export function commandExists(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** A port that was free a moment ago on 127.0.0.1 (tcp; also checked for udp when asked). */
export async function freePort({ udp = false } = {}) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });
    if (!udp || (await udpFree(port))) return port;
  }
  throw new Error('no free port found');
}

async function udpFree(port) {
  const dgram = await import('node:dgram');
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/** Waits (bounded) until a TCP connect to host:port succeeds. */
export async function waitForPort(port, { host = '127.0.0.1', timeoutMs = 10_000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && !proc.alive()) {
      throw new Error(`${proc.name} exited before listening on ${port}:\n${proc.output().slice(-2000)}`);
    }
    const ok = await new Promise((resolve) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(
    `nothing listening on ${host}:${port} after ${timeoutMs} ms${proc ? `:\n${proc.output().slice(-2000)}` : ''}`,
  );
}

// --- /proc readings -------------------------------------------------------

/**
 * CPU seconds of a process's main thread alone (a Node process's serving thread, without its
 * worker threads, libuv's thread pool or V8's helpers), from /proc/PID/task/PID/stat.
 */
export function mainThreadCpuSeconds(pid) {
  const stat = readStat(`${pid}/task/${pid}`);
  return stat ? (stat.utime + stat.stime) / TICKS_PER_SECOND : 0;
}

/** Fields of /proc/PATH/stat, PATH a pid (or `pid/task/tid`); null when it is gone. */
function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, and
    // cutime 16 + cstime 17 hold children already reaped (socat's forks).
    return {
      ppid: Number(fields[1]),
      utime: Number(fields[11]),
      stime: Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return null;
  }
}

/** The pid and every descendant (nginx master + workers, a node process + children). */
export function processTree(rootPid) {
  const parents = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat) parents.set(Number(entry), stat.ppid);
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/**
 * CPU seconds (utime + stime, all threads) summed over the process tree,
 * plus what reaped children spent (a forking proxy's finished connections).
 */
export function treeCpuSeconds(rootPid) {
  return treeCpu(rootPid).total;
}

/** { user, system, total } CPU seconds of the tree (reaped children counted in total only). */
export function treeCpu(rootPid) {
  let user = 0;
  let system = 0;
  let reaped = 0;
  for (const pid of processTree(rootPid)) {
    const stat = readStat(pid);
    if (!stat) continue;
    user += stat.utime;
    system += stat.stime;
    reaped += stat.reaped;
  }
  return {
    user: user / TICKS_PER_SECOND,
    system: system / TICKS_PER_SECOND,
    total: (user + system + reaped) / TICKS_PER_SECOND,
  };
}

/** Context switches of every thread of the tree: { voluntary, involuntary }. */
export function treeSwitches(rootPid) {
  let voluntary = 0;
  let involuntary = 0;
  for (const pid of processTree(rootPid)) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        voluntary += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(text)?.[1] ?? 0);
        involuntary += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(text)?.[1] ?? 0);
      } catch {
        // thread gone
      }
    }
  }
  return { voluntary, involuntary };
}

/** Resident set size in MiB summed over the process tree (VmRSS). */
export function treeRssMiB(rootPid) {
  let kib = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) kib += Number(match[1]);
    } catch {
      // exited meanwhile
    }
  }
  return kib / 1024;
}

/**
 * Samples the tree's RSS every intervalMs while `work` runs; returns
 * { result, cpuSeconds, systemSeconds, peakRssMiB, machineBusy, switches }:
 * the CPU time the tree spent during it (and the kernel's part), the whole
 * machine's busy fraction, and the tree's context switches.
 */
export async function measureDuring(rootPid, work, { intervalMs = 200 } = {}) {
  const machineBefore = machineCpu();
  if (!rootPid) {
    const result = await work();
    return {
      result,
      cpuSeconds: null,
      systemSeconds: null,
      peakRssMiB: null,
      machineBusy: machineBusy(machineBefore),
      switches: null,
    };
  }
  const before = treeCpu(rootPid);
  const switchesBefore = treeSwitches(rootPid);
  let peakRssMiB = treeRssMiB(rootPid);
  const timer = setInterval(() => {
    peakRssMiB = Math.max(peakRssMiB, treeRssMiB(rootPid));
  }, intervalMs);
  try {
    const result = await work();
    const after = treeCpu(rootPid);
    const switchesAfter = treeSwitches(rootPid);
    peakRssMiB = Math.max(peakRssMiB, treeRssMiB(rootPid));
    return {
      result,
      cpuSeconds: after.total - before.total,
      systemSeconds: after.system - before.system,
      peakRssMiB,
      machineBusy: machineBusy(machineBefore),
      switches: {
        voluntary: switchesAfter.voluntary - switchesBefore.voluntary,
        involuntary: switchesAfter.involuntary - switchesBefore.involuntary,
      },
    };
  } finally {
    clearInterval(timer);
  }
}

/** Idle and total jiffies of the whole machine (first line of /proc/stat). */
export function machineCpu() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) };
}

/** `work`'s result and the whole machine's busy CPU seconds while it ran (kernel work included). */
export async function machineSecondsDuring(work) {
  const before = machineCpu();
  const result = await work();
  const after = machineCpu();
  return { result, seconds: (after.total - after.idle - (before.total - before.idle)) / TICKS_PER_SECOND };
}

/** Fraction of the whole machine's CPU busy since `before` (everything: bench, peers, other users). */
export function machineBusy(before) {
  const now = machineCpu();
  const total = now.total - before.total;
  return total > 0 ? 1 - (now.idle - before.idle) / total : null;
}

/**
 * Waits (bounded) until the tree uses less than `busyFraction` of a core over
 * a window: a forwarder still relaying a backlog after its load stopped.
 * Resolves { ms, cpuSeconds }: the time waited (the quiet window excluded)
 * and the CPU the tree spent meanwhile.
 */
export async function waitQuiet(rootPid, { busyFraction = 0.03, windowMs = 250, timeoutMs = 20_000 } = {}) {
  const started = performance.now();
  const first = treeCpu(rootPid).total;
  while (performance.now() - started < timeoutMs) {
    const before = treeCpu(rootPid).total;
    await sleep(windowMs);
    const after = treeCpu(rootPid).total;
    if ((after - before) * 1000 < busyFraction * windowMs) {
      return { ms: Math.max(0, performance.now() - started - windowMs), cpuSeconds: after - first };
    }
  }
  return { ms: timeoutMs, cpuSeconds: treeCpu(rootPid).total - first };
}

/** Load averages, to record how busy the machine was. */
export function machineLoad() {
  const [one, five] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return { load1: one, load5: five };
}

export { sleep };

/**
 * Runs this script again in a network namespace of its own with loopback up (`unshare -n`,
 * as root), unless it already is there, and exits with that run's status. `what` names the
 * bench in the error when unshare cannot run.
 */
export function inOwnNetworkNamespace(what) {
  if (process.env.HARBOR_BENCH_NETNS === '1') return;
  const result = spawnSync(
    'unshare',
    [
      '-n',
      '--',
      'sh',
      '-c',
      'ip link set lo up && exec "$@"',
      'sh',
      process.execPath,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, HARBOR_BENCH_NETNS: '1' } },
  );
  if (result.error) process.stderr.write(`${what} needs root and unshare -n: ${result.error.message}\n`);
  process.exit(result.status ?? 1);
}
