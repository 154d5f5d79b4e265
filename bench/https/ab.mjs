// npm run bench:ab -- --a DIST [--b DIST]: two builds of harbor-sidecar side by
// side in front of the same nginx origin, to tell whether a change to the proxy
// costs or saves CPU. Each round runs the same wrk client against each in turn
// (the order rotating) and reads each process's own CPU from /proc/PID/stat:
//   ka     CPU per keep-alive request (wrk -t1 -c50, a 14-byte body)
//   close  CPU per new TLS connection carrying one request (Connection: close,
//          no session resumption: handshake, request, answer, close)
// --path /1m.bin: the same with 1 MiB answers (the origin's large file) instead.
// Reported: each round's B/A ratio and their median. A and B are dist folders
// (`npm run build` output; copy one aside inside the repository, with package.json beside it, before changing the code: cp -r dist scratch/dist-a; cp package.json scratch/).
//   node bench/https/ab.mjs --a scratch/dist-a [--b dist] [--rounds 8] [--seconds 3] [--mode ka|close] [--path P]
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir, treeCpuSeconds } from '../lib/proc.mjs';
import { waitForOk } from '../lib/tls-probe.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SMALL_PATH, startOrigin, startSidecar } from './targets.mjs';

const { values } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: 'dist' },
    rounds: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'ka' },
    path: { type: 'string', default: SMALL_PATH },
  },
});
if (values.a === undefined || !['ka', 'close'].includes(values.mode)) {
  console.error(
    'usage: node bench/https/ab.mjs --a DIST [--b DIST] [--rounds N] [--seconds S] [--mode ka|close]',
  );
  process.exit(2);
}
const ROUNDS = Math.max(1, Math.min(30, Number(values.rounds)));
const SECONDS = Math.max(1, Math.min(30, Number(values.seconds)));
const CONNECTIONS = values.mode === 'ka' ? 50 : 8;
const HEADERS = values.mode === 'ka' ? [] : ['Connection: close'];
installCleanup();
const dir = makeTempDir('harbor-bench-ab-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir);
  const builds = [];
  for (const [name, dist] of [
    ['A', values.a],
    ['B', values.b],
  ]) {
    const cli = join(resolve(dist), 'cli', 'sidecar.js');
    const sidecar = await startSidecar(makeTempDir(`ab-${name}`), pair, origin.port, { cli });
    builds.push({ name, dist, sidecar });
  }
  const url = (s) => `https://127.0.0.1:${s.port}${values.path}`;
  for (const { sidecar } of builds) {
    await waitForOk(sidecar.port, SMALL_PATH);
    await runWrk(url(sidecar), { connections: CONNECTIONS, seconds: 1, headers: HEADERS }); // warm-up
  }
  const perRequest = async (sidecar) => {
    const cpu0 = treeCpuSeconds(sidecar.pid);
    const result = await runWrk(url(sidecar), {
      connections: CONNECTIONS,
      seconds: SECONDS,
      headers: HEADERS,
    });
    if (result.failed > 0) throw new Error(`${result.failed} failed requests`);
    return ((treeCpuSeconds(sidecar.pid) - cpu0) * 1e6) / Math.max(1, result.requests);
  };
  const ratios = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    const figures = {};
    for (const build of order) figures[build.name] = await perRequest(build.sidecar);
    ratios.push(figures.B / figures.A);
    console.log(
      `round ${round + 1}: A ${figures.A.toFixed(1)} us, B ${figures.B.toFixed(1)} us per ${values.mode === 'ka' ? 'keep-alive request' : 'connection + request'}, B/A ${(figures.B / figures.A).toFixed(3)}`,
    );
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  console.log(
    `B/A median ${sorted[Math.floor(sorted.length / 2)].toFixed(3)} over ${ROUNDS} rounds (range ${sorted[0].toFixed(3)}-${sorted.at(-1).toFixed(3)}); A ${values.a}, B ${values.b}; wrk -t1 -c${CONNECTIONS} -d${SECONDS}s${HEADERS.length > 0 ? ' -H "Connection: close"' : ''}`,
  );
  for (const { sidecar } of builds) await sidecar.stop();
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
