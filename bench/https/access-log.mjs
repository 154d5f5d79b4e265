// npm run bench:access-log (issue 14): what the access log costs.
//
// Each round starts fresh processes: three sidecars in front of the same nginx
// origin, one with --access-log json (or combined) to a file and two without,
// and loads all three at once, one wrk each (-t1 -c8 keep-alive; why at once:
// loaded-together.mjs); fresh processes each round keep one process's own luck
// (where its heap and code landed) out of the median. CPU per request of each
// from /proc/PID/stat. Reported: the median of the per-round ratios with /
// without, beside the ratio between the two that log nothing (the noise floor),
// and the CPU per line of the log's own code measured in-process (capture,
// format, encode, hand to the writer).
// The peer in the same rounds: nginx as the same HTTPS proxy, with and without
// an access log of the same fields (json: a log_format with escape=json;
// combined: its own), buffered as the sidecar's (buffer=32k flush=100ms),
// loaded at once in the same way.
// --pin: one target at a time, alone on the last CPU with the load generators and
// the origin on the first (pinned.mjs), instead of loaded at once.
//   node bench/https/access-log.mjs [--rounds 9] [--seconds 3] [--format json|combined] [--connections 8] [--pin]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions, usageError, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir } from '../lib/proc.mjs';
import { median, spread } from '../lib/report.mjs';
import { lineCost } from './access-log-cost.mjs';
import { measurement } from './pinned.mjs';
import { startNginxProxy, startOrigin, startSidecar } from './targets.mjs';

const USAGE =
  'usage: node bench/https/access-log.mjs [--rounds 1-20] [--seconds 1-30] [--format json|combined] [--connections 1-200] [--pin]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '9' },
  seconds: { type: 'string', default: '3' },
  format: { type: 'string', default: 'json' },
  // 8 each: with 50 each, three loaded sidecars on two cores differed from round to round by
  // up to 0.58-1.27x between two identical ones; with 8, by 0.87-1.07x.
  connections: { type: 'string', default: '8' },
  pin: { type: 'boolean', default: false },
});
if (!['json', 'combined'].includes(values.format)) {
  usageError(`--format: ${JSON.stringify(values.format)} is not json or combined`, USAGE);
}
const { measure, how } = measurement(values.pin, 'access-log');
const ROUNDS = wholeNumber(values, 'rounds', 1, 20, USAGE);
const SECONDS = wholeNumber(values, 'seconds', 1, 30, USAGE);
const CONNECTIONS = wholeNumber(values, 'connections', 1, 200, USAGE);
installCleanup();
const dir = makeTempDir('harbor-bench-access-');
const sidecarLog = join(dir, 'access.log');
const nginxLog = join(dir, 'nginx-access.log');
try {
  // First, so that a log API the script no longer fits stops it before the rounds, not after.
  await lineCost(join(dir, 'lines.log'), values.format); // warm-up: compiled code, as in a running proxy
  const perLine = await lineCost(join(dir, 'lines.log'), values.format);
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir);
  const load = { connections: CONNECTIONS, seconds: SECONDS };
  const rows = [];
  for (let round = 0; round < ROUNDS; round++) {
    const sidecars = await measure(
      [
        () => startSidecar(makeTempDir('off'), pair, origin.port),
        () => startSidecar(makeTempDir('control'), pair, origin.port),
        () =>
          startSidecar(makeTempDir('on'), pair, origin.port, {
            env: { HARBOR_ACCESS_LOG: values.format, HARBOR_ACCESS_LOG_FILE: sidecarLog },
          }),
      ],
      { ...load, round },
    );
    const [off, control, on] = sidecars;
    const [offMain, controlMain, onMain] = sidecars.mainThread;
    const [nginxOff, nginxOn] = await measure(
      [
        () => startNginxProxy(makeTempDir('nginx-off'), pair, origin.port),
        () =>
          startNginxProxy(makeTempDir('nginx-on'), pair, origin.port, {
            accessLog: { file: nginxLog, format: values.format },
          }),
      ],
      { ...load, round },
    );
    rows.push({ off, control, on, offMain, controlMain, onMain, nginxOff, nginxOn });
    console.log(
      `round ${round + 1}: sidecar off ${off.toFixed(1)}, off again ${control.toFixed(1)}, ${values.format} ${on.toFixed(1)} us/req (serving thread ${offMain.toFixed(1)}, ${controlMain.toFixed(1)}, ${onMain.toFixed(1)}); nginx off ${nginxOff.toFixed(1)}, ${values.format} ${nginxOn.toFixed(1)} us/req`,
    );
  }
  // Both logs were written (a silent misconfiguration would flatter the peer or the sidecar).
  for (const file of [sidecarLog, nginxLog]) {
    // Counted in bytes: a long run's log is more text than one string may hold.
    const bytes = readFileSync(file);
    let lines = 0;
    for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) lines++;
    if (lines < 1000) throw new Error(`${file}: ${lines} lines, the log was not written`);
    console.log(`${file}: ${lines} lines`);
  }
  const ratios = rows.map((r) => (2 * r.on) / (r.off + r.control));
  const noise = rows.map((r) => r.control / r.off);
  const mainRatios = rows.map((r) => (2 * r.onMain) / (r.offMain + r.controlMain));
  const mainNoise = rows.map((r) => r.controlMain / r.offMain);
  const nginxRatios = rows.map((r) => r.nginxOn / r.nginxOff);
  const run = `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s each, ${how}, ${ROUNDS} rounds`;
  console.log(
    `access log ${values.format} to a file: ${median(rows.map((r) => r.on)).toFixed(1)} us against ${median(rows.map((r) => (r.off + r.control) / 2)).toFixed(1)} us of sidecar CPU per keep-alive request; median of per-round ratios ${median(ratios).toFixed(3)}x (${spread(ratios)}), where two sidecars without it differ by ${median(noise).toFixed(3)}x (${spread(noise)}) (${run})`,
  );
  console.log(
    `the sidecar's serving thread alone (its main thread; the log formats and writes on a thread of its own): ${median(rows.map((r) => r.onMain)).toFixed(1)} us against ${median(rows.map((r) => (r.offMain + r.controlMain) / 2)).toFixed(1)} us per request; median of per-round ratios ${median(mainRatios).toFixed(3)}x (${spread(mainRatios)}), where two sidecars without it differ by ${median(mainNoise).toFixed(3)}x (${spread(mainNoise)})`,
  );
  console.log(
    `nginx, the same proxy with an access log of the same fields (${values.format}, buffer=32k flush=100ms): ${median(rows.map((r) => r.nginxOn)).toFixed(1)} us against ${median(rows.map((r) => r.nginxOff)).toFixed(1)} us per request; median of per-round ratios ${median(nginxRatios).toFixed(3)}x (${spread(nginxRatios)})`,
  );
  console.log(
    `the log's own code in a loop of its own: ${perLine.serving.toFixed(2)} us of the serving thread's CPU per line (the fields copied into the ring), ${perLine.process.toFixed(2)} us of the process's (formatted, encoded and written to a file on the log's thread too), ${((100 * perLine.process) / median(rows.map((r) => r.off))).toFixed(1)}% of a request`,
  );
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
