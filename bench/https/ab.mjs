// npm run bench:ab -- --a DIST [--b DIST]: two builds of harbor-sidecar side by
// side in front of the same nginx origin, to tell whether a change to the proxy
// costs or saves CPU. Each round starts fresh processes (A, A again, B) and
// loads the three at once, one wrk each (why at once: loaded-together.mjs),
// reading each process's own CPU from /proc/PID/stat:
//   ka     CPU per keep-alive request (wrk -t1 -c8 each, a 14-byte body)
//   close  CPU per new TLS connection carrying one request (Connection: close,
//          no session resumption: handshake, request, answer, close)
//          wrk resumes some of its reconnects (how many depends on when each
//          server's TLS 1.3 tickets arrive), so this mixes full and resumed
//          handshakes; loaded at once, two identical builds differed by
//          1.02-1.28x over 4 rounds (2026-12-02). For full handshakes use the
//          suite's req-ecdsa / req-rsa steps (docs/benchmarks.md).
//   req    CPU per new connection carrying one request, full handshakes only
//          (bench/lib/handshake-client.mjs, --connections at a time): what
//          issue 12's new-connection goal measures. Three handshake clients
//          and three sidecars overload two cores (each spent 2-2.9 ms per
//          connection against ~1.2 alone) and two identical builds differed by
//          0.75-1.16x per round (2026-12-02): run many rounds.
//   h2     CPU per HTTP/2 request (h2load, --connections connections of 10
//          streams each, a 14-byte body). Far noisier than ka: two identical
//          builds differed by 0.65-1.30x per round (2026-12-02); run many rounds.
//   h2c    the same, the sidecars speaking HTTP/2 in clear text to the origin
//          (HARBOR_BACKEND_PROTOCOL=h2c, the origin's h2c listener)
// --path /1m.bin: the same with 1 MiB answers (the origin's large file) instead.
// --access-log json|combined: every sidecar (A, A again and B) writes its access log to
// a file of its own (to compare two builds of the log).
// --pin: one target at a time, alone on the last CPU with the load generator and
// the origin on the first (pinned.mjs), instead of the three loaded at once.
// Reported: each round's B/A ratio (against the mean of the two A), their
// median and range, beside the same for A again / A: the noise floor; then the
// same for each sidecar's serving thread alone (its main thread). A and B
// are dist folders (`npm run build` output; copy one aside inside the
// repository, with package.json beside it, before changing the code:
// cp -r dist scratch/dist-a; cp package.json scratch/).
//   node bench/https/ab.mjs --a scratch/dist-a [--b dist] [--rounds 9] [--seconds 3] [--mode ka|close|req|h2|h2c] [--path P] [--connections 8] [--access-log json|combined] [--pin]
import { join, resolve } from 'node:path';
import { parseOptions, usageError, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir } from '../lib/proc.mjs';
import { median, spread } from '../lib/report.mjs';
import { measurement } from './pinned.mjs';
import { SMALL_PATH, startOrigin, startSidecar } from './targets.mjs';

const USAGE =
  'usage: node bench/https/ab.mjs --a DIST [--b DIST] [--rounds 1-30] [--seconds 1-30] [--mode ka|close|req|h2|h2c] [--path P] [--connections 1-100] [--access-log json|combined] [--pin]';
const values = parseOptions(USAGE, {
  a: { type: 'string' },
  b: { type: 'string', default: 'dist' },
  rounds: { type: 'string', default: '9' },
  seconds: { type: 'string', default: '3' },
  mode: { type: 'string', default: 'ka' },
  path: { type: 'string', default: SMALL_PATH },
  connections: { type: 'string', default: '8' },
  pin: { type: 'boolean', default: false },
  'access-log': { type: 'string' },
});
const accessLog = values['access-log'];
if (values.a === undefined) usageError('--a: the build to compare against is missing', USAGE);
if (!['ka', 'close', 'req', 'h2', 'h2c'].includes(values.mode)) {
  usageError(`--mode: ${JSON.stringify(values.mode)} is not ka, close, req, h2 or h2c`, USAGE);
}
const h2c = values.mode === 'h2c';
if (accessLog !== undefined && !['json', 'combined'].includes(accessLog)) {
  usageError(`--access-log: ${JSON.stringify(accessLog)} is not json or combined`, USAGE);
}
const { measure, how } = measurement(values.pin, 'ab');
const ROUNDS = wholeNumber(values, 'rounds', 1, 30, USAGE);
const SECONDS = wholeNumber(values, 'seconds', 1, 30, USAGE);
const load = {
  path: values.path,
  connections: wholeNumber(values, 'connections', 1, 100, USAGE),
  seconds: SECONDS,
  headers: values.mode === 'close' ? ['Connection: close'] : [],
  h2: values.mode === 'h2' || h2c,
  fresh: values.mode === 'req',
};
const unit = {
  ka: 'keep-alive request',
  close: 'connection + request (wrk)',
  req: 'new connection + request',
  h2: 'HTTP/2 request',
  h2c: 'HTTP/2 request (h2c backend)',
}[values.mode];
installCleanup();
const dir = makeTempDir('harbor-bench-ab-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir, { h2c });
  const sidecar = (name, dist) => {
    const own = makeTempDir(name);
    const env = {
      ...(accessLog === undefined
        ? {}
        : { HARBOR_ACCESS_LOG: accessLog, HARBOR_ACCESS_LOG_FILE: join(own, 'access.log') }),
      ...(h2c ? { HARBOR_BACKEND_PROTOCOL: 'h2c' } : {}),
    };
    return startSidecar(own, pair, h2c ? origin.h2cPort : origin.port, {
      cli: join(resolve(dist), 'cli', 'sidecar.js'),
      env,
    });
  };
  const ratios = [];
  const noise = [];
  // The same for each sidecar's main thread alone, the one that serves (the access log formats
  // and writes on a thread of its own).
  const servingRatios = [];
  const servingNoise = [];
  for (let round = 0; round < ROUNDS; round++) {
    const perRequest = await measure(
      [() => sidecar('ab-a', values.a), () => sidecar('ab-a2', values.a), () => sidecar('ab-b', values.b)],
      { ...load, round },
    );
    const [a, again, b] = perRequest;
    const [aServing, againServing, bServing] = perRequest.mainThread;
    ratios.push((2 * b) / (a + again));
    noise.push(again / a);
    servingRatios.push((2 * bServing) / (aServing + againServing));
    servingNoise.push(againServing / aServing);
    console.log(
      `round ${round + 1}: A ${a.toFixed(1)} us, A again ${again.toFixed(1)} us, B ${b.toFixed(1)} us per ${unit}; B/A ${ratios.at(-1).toFixed(3)}; serving thread B/A ${servingRatios.at(-1).toFixed(3)}`,
    );
  }
  console.log(
    `B/A median ${median(ratios).toFixed(3)} over ${ROUNDS} rounds (range ${spread(ratios)}), where A again / A gives ${median(noise).toFixed(3)} (${spread(noise)}); A ${values.a}, B ${values.b}; ${load.h2 ? `h2load -c${load.connections} -m10` : load.fresh ? `handshake client, ${load.connections} at a time,` : `wrk -t1 -c${load.connections}`} -d${SECONDS}s each, ${how}${load.headers.length > 0 ? ', -H "Connection: close"' : ''}${accessLog === undefined ? '' : `; access log ${accessLog}`}`,
  );
  console.log(
    `the serving thread alone: B/A median ${median(servingRatios).toFixed(3)} (range ${spread(servingRatios)}), where A again / A gives ${median(servingNoise).toFixed(3)} (${spread(servingNoise)})`,
  );
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
