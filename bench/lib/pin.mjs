// Pinning for benchmarks (--pin): the bench itself, its load generators and the
// origin on the first CPU, each measured target (every process and thread of
// it) alone on the last. On a two-core machine that keeps wrk and the origin
// from preempting the target and filling its caches, and the target saturates
// its own core: its CPU per request is then what one core of it costs, and two
// identical builds differ far less from round to round than unpinned.
// Linux only (taskset, util-linux): pinBenchOrExit() says so where it cannot be done.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { processTree } from './proc.mjs';

/**
 * The machine's CPUs, whatever this process's own affinity (availableParallelism() counts only
 * the CPUs this process may run on: 1 once pinBenchOrExit() has run).
 */
const CPU_COUNT = cpus().length;

/** Why pinning cannot be done here, or null when it can. */
function pinUnavailable() {
  if (CPU_COUNT < 2) return `--pin needs two CPUs; this machine has ${CPU_COUNT}`;
  if (spawnSync('taskset', ['-V']).status !== 0) return '--pin needs taskset (apt-get install -y util-linux)';
  return null;
}

/** The CPU the load generators and the origin use, and the one each measured target has alone. */
const LOAD_CPU = 0;
const TARGET_CPU = CPU_COUNT - 1;

/**
 * For --pin: this process and every thread of it (and so the processes it starts from now on)
 * onto the load CPU, or why it cannot be done (`program: why`) and exit 2.
 */
export function pinBenchOrExit(program) {
  const why = pinUnavailable();
  if (why !== null) {
    process.stderr.write(`${program}: ${why}\n`);
    process.exit(2);
  }
  taskset(process.pid, LOAD_CPU);
}

/** Every process of the tree under `rootPid`, with all their threads, onto the target CPU. */
export function pinTargetTree(rootPid) {
  for (const pid of processTree(rootPid)) taskset(pid, TARGET_CPU);
}

function taskset(pid, cpu) {
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
  } catch (error) {
    // A process of the tree may have exited between the listing and the call: nothing to pin.
    if (existsPid(pid)) throw error;
  }
}

function existsPid(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
