// Targets loaded one at a time, each alone on a CPU of its own (--pin): the
// bench, its load generator and the origin run on the first CPU (pin.mjs), the
// target with every thread on the last, and the load saturates it. Loaded at
// once (loaded-together.mjs), three targets and three clients share two cores
// and preempt each other; pinned, the target runs undisturbed, and two
// identical builds differ much less from round to round (docs/benchmarks.md,
// "Pinned runs and fixed rates").
import { pinBenchOrExit, pinTargetTree } from '../lib/pin.mjs';
import { mainThreadCpuSeconds, treeCpuSeconds } from '../lib/proc.mjs';
import { waitForOk } from '../lib/tls-probe.mjs';
import { cpuPerRequestLoadedTogether, loadOptions, loadTarget } from './loaded-together.mjs';
import { SMALL_PATH } from './targets.mjs';

/**
 * CPU per request (us, from /proc/PID/stat) of each target, in the order of `starters`, each
 * started, pinned, warmed up for 2 s with its own load, measured for `seconds` and stopped
 * before the next starts; the options are those of cpuPerRequestLoadedTogether, and `round`
 * rotates the order. The caller has pinned itself (pinBenchOrExit()). `mainThread` holds the
 * same for each target's main thread alone (the serving thread of a Node target).
 * A failed request fails the run: a target that errors would look cheap.
 */
export async function cpuPerRequestPinned(starters, options = {}) {
  const { load, seconds, round } = loadOptions(options);
  const shift = round % starters.length;
  const perRequest = Object.assign([], { mainThread: [] });
  for (let k = 0; k < starters.length; k++) {
    const i = (k + shift) % starters.length;
    const target = await starters[i]();
    try {
      pinTargetTree(target.pid);
      await waitForOk(target.port, SMALL_PATH, { h2: load.h2 });
      await loadTarget(target, load, 2);
      const cpu0 = treeCpuSeconds(target.pid);
      const main0 = mainThreadCpuSeconds(target.pid);
      const result = await loadTarget(target, load, seconds);
      if (result.failed > 0) throw new Error(`${target.name}: ${result.failed} failed requests`);
      perRequest[i] = ((treeCpuSeconds(target.pid) - cpu0) * 1e6) / Math.max(1, result.requests);
      perRequest.mainThread[i] =
        ((mainThreadCpuSeconds(target.pid) - main0) * 1e6) / Math.max(1, result.requests);
    } finally {
      await target.stop();
    }
  }
  return perRequest;
}

/**
 * How a bench that takes --pin measures: `measure` (cpuPerRequestPinned or
 * cpuPerRequestLoadedTogether) and `how`, the words for its report. With `pin` the bench pins
 * itself first, or says why it cannot (`program: why`) and exits 2.
 */
export function measurement(pin, program) {
  if (!pin) return { measure: cpuPerRequestLoadedTogether, how: 'loaded at once' };
  pinBenchOrExit(program);
  return { measure: cpuPerRequestPinned, how: 'one at a time, pinned' };
}
