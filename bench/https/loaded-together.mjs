// Targets loaded at once: one client each, started together, so that every target
// shares whatever the machine does in that window (other work, frequency, the
// scheduler). Run one after the other, one process's CPU per request moved by
// 10-30% from run to run on the 2-core bench machines and two identical
// sidecars differed by up to 1.36x; loaded together with fresh processes each
// round, by 0.87-1.07x (docs/operations.md, the access log's cost). Used to
// compare builds (ab.mjs) and settings (access-log.mjs) of the same proxy.

import { runH2load } from '../lib/h2load.mjs';
import { mainThreadCpuSeconds, treeCpuSeconds } from '../lib/proc.mjs';
import { runHandshakes, waitForOk } from '../lib/tls-probe.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SMALL_PATH } from './targets.mjs';

/**
 * CPU per request (us, from /proc/PID/stat) of each target, in the order of `starters`
 * (functions that start one target each). The targets are started, warmed up together for 1 s,
 * then loaded together for `seconds` by wrk -t1 -c`connections` each (with `h2`: h2load,
 * `connections` connections of 10 streams each, HTTP/2; with `fresh`: the bench's handshake
 * client, `connections` at a time, each a new connection with a full handshake carrying one
 * request), and stopped. `round` rotates the order in which they are started and loaded, so
 * that no target is always first. `mainThread` holds the same for each target's main thread
 * alone (the serving thread of a Node target).
 * A failed request fails the run: a target that errors would look cheap.
 */
export async function cpuPerRequestLoadedTogether(starters, options = {}) {
  const { load, seconds, round } = loadOptions(options);
  const shift = round % starters.length;
  const order = starters.map((_, i) => (i + shift) % starters.length);
  const targets = [];
  try {
    for (const i of order) targets[i] = await starters[i]();
    const loadAll = (s) => Promise.all(order.map((i) => loadTarget(targets[i], load, s)));
    for (const i of order) await waitForOk(targets[i].port, SMALL_PATH, { h2: load.h2 });
    await loadAll(1);
    const cpu0 = targets.map((t) => treeCpuSeconds(t.pid));
    const main0 = targets.map((t) => mainThreadCpuSeconds(t.pid));
    const results = await loadAll(seconds); // in `order`
    const perRequest = Object.assign([], { mainThread: [] });
    for (const [k, i] of order.entries()) {
      if (results[k].failed > 0) throw new Error(`${targets[i].name}: ${results[k].failed} failed requests`);
      perRequest[i] = ((treeCpuSeconds(targets[i].pid) - cpu0[i]) * 1e6) / Math.max(1, results[k].requests);
      perRequest.mainThread[i] =
        ((mainThreadCpuSeconds(targets[i].pid) - main0[i]) * 1e6) / Math.max(1, results[k].requests);
    }
    return perRequest;
  } finally {
    await Promise.all(targets.filter(Boolean).map((t) => t.stop()));
  }
}

/** The load of each target (for loadTarget), how long it is measured, and the round, defaults filled in. */
export function loadOptions({
  path = SMALL_PATH,
  connections = 8,
  seconds = 3,
  headers = [],
  round = 0,
  h2 = false,
  fresh = false,
} = {}) {
  return { load: { path, connections, headers, h2, fresh }, seconds, round };
}

/**
 * One target's load for `seconds`: wrk -t1 -c`connections` (with `headers`), or with `h2`
 * h2load (`connections` connections of 10 streams each), or with `fresh` the handshake client
 * (`connections` at a time, each a new connection with a full handshake carrying one request).
 * Resolves to { requests, failed }.
 */
export async function loadTarget(target, { path, connections, headers, h2, fresh }, seconds) {
  // A target whose HTTP/2 listens on a port of its own (bare-node.mjs) says so in h2Port.
  const url = `https://127.0.0.1:${h2 ? (target.h2Port ?? target.port) : target.port}${path}`;
  if (h2) return runH2load(url, { connections, streams: 10, seconds });
  if (!fresh) return runWrk(url, { connections, seconds, headers });
  const r = await runHandshakes(target.port, { seconds, concurrency: connections, request: true });
  return { requests: r.completed, failed: r.errors };
}
