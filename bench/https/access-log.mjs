// npm run bench:access-log (issue 14): what the access log costs. Two sidecars
// in front of the same nginx origin, one with --access-log json to a file, one
// without; wrk keep-alive runs (-t1 -c50) alternate between them, the order
// flipping each round; CPU per request of each from /proc/PID/stat; reported as
// the median of the per-round ratios (with / without).
//   node bench/https/access-log.mjs [--rounds 6] [--seconds 3] [--format json|combined]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir, treeCpuSeconds } from '../lib/proc.mjs';
import { waitForOk } from '../lib/tls-probe.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SMALL_PATH, startOrigin, startSidecar } from './targets.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '3' },
    format: { type: 'string', default: 'json' },
  },
});
const ROUNDS = Math.max(1, Math.min(20, Number(values.rounds)));
const SECONDS = Math.max(1, Math.min(30, Number(values.seconds)));
installCleanup();
const dir = makeTempDir('harbor-bench-access-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir);
  const off = await startSidecar(makeTempDir('off'), pair, origin.port);
  const on = await startSidecar(makeTempDir('on'), pair, origin.port, {
    env: { HARBOR_ACCESS_LOG: values.format, HARBOR_ACCESS_LOG_FILE: join(dir, 'access.log') },
  });
  const url = (t) => `https://127.0.0.1:${t.port}${SMALL_PATH}`;
  for (const t of [off, on]) {
    await waitForOk(t.port, SMALL_PATH);
    await runWrk(url(t), { connections: 50, seconds: 1 }); // warm-up
  }
  const perRequest = async (t) => {
    const cpu0 = treeCpuSeconds(t.pid);
    const result = await runWrk(url(t), { connections: 50, seconds: SECONDS });
    return ((treeCpuSeconds(t.pid) - cpu0) * 1e6) / Math.max(1, result.requests);
  };
  const rows = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [off, on] : [on, off];
    const figures = new Map();
    for (const t of order) figures.set(t, await perRequest(t));
    rows.push({ off: figures.get(off), on: figures.get(on) });
    console.log(
      `round ${round + 1}: off ${figures.get(off).toFixed(1)} us/req, ${values.format} ${figures.get(on).toFixed(1)} us/req`,
    );
  }
  const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  console.log(
    `access log ${values.format} to a file: ${median(rows.map((r) => r.on)).toFixed(1)} us against ${median(rows.map((r) => r.off)).toFixed(1)} us of sidecar CPU per keep-alive request; median of per-round ratios ${median(rows.map((r) => r.on / r.off)).toFixed(2)}x (wrk -t1 -c50 -d${SECONDS}s, ${ROUNDS} rounds)`,
  );
  await off.stop();
  await on.stop();
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
