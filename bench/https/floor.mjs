// npm run bench:floor (issue 12): where the sidecar's CPU per keep-alive request
// stands between nginx and the floor of any Node proxy built as it is. Each round
// starts fresh processes and loads them at once, one wrk each (-t1 -c8; why at
// once: loaded-together.mjs), reading each process's own CPU from /proc/PID/stat:
//   nginx     nginx as the same HTTPS proxy (the issue's reference)
//   relay     a Node TLS server piping each client connection to a backend
//             connection of its own, no HTTP logic (relay.mjs): the floor
//   sidecar   harbor-sidecar
// With --pieces, one run per piece of the sidecar's work (timeouts, parse,
// string: relay.mjs says what each is): the relay, the relay again (the noise
// floor) and the relay with that piece added, to tell where the sidecar's cost
// above the floor goes. Reported: medians of the per-round ratios to the
// run's first target.
//   node bench/https/floor.mjs [--rounds 7] [--seconds 3] [--connections 8] [--pieces]
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir } from '../lib/proc.mjs';
import { median, spread } from '../lib/report.mjs';
import { cpuPerRequestLoadedTogether } from './loaded-together.mjs';
import { startNginxProxy, startOrigin, startRelay, startSidecar } from './targets.mjs';

const USAGE =
  'usage: node bench/https/floor.mjs [--rounds 1-30] [--seconds 1-30] [--connections 1-100] [--pieces]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '7' },
  seconds: { type: 'string', default: '3' },
  connections: { type: 'string', default: '8' },
  pieces: { type: 'boolean', default: false },
});
const ROUNDS = wholeNumber(values, 'rounds', 1, 30, USAGE);
const SECONDS = wholeNumber(values, 'seconds', 1, 30, USAGE);
const CONNECTIONS = wholeNumber(values, 'connections', 1, 100, USAGE);
installCleanup();
const dir = makeTempDir('harbor-bench-floor-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir);
  // Three targets at once at most: four Node processes and their four wrk on two cores measured
  // far noisier (one piece against the relay: 0.78-1.89x per round).
  const relay = (flags) => () => startRelay(pair, origin.port, { flags });
  const runs = values.pieces
    ? ['timeouts', 'parse', 'string'].map((piece) => ({
        base: 'relay',
        targets: { relay: relay([]), 'relay again': relay([]), [`+${piece}`]: relay([piece]) },
      }))
    : [
        {
          base: 'nginx',
          targets: {
            nginx: () => startNginxProxy(makeTempDir('floor-nginx'), pair, origin.port),
            relay: relay([]),
            sidecar: () => startSidecar(makeTempDir('floor-sidecar'), pair, origin.port),
          },
        },
      ];
  for (const { base, targets } of runs) {
    const names = Object.keys(targets);
    const rows = [];
    for (let round = 0; round < ROUNDS; round++) {
      const perRequest = await cpuPerRequestLoadedTogether(Object.values(targets), {
        connections: CONNECTIONS,
        seconds: SECONDS,
        round,
      });
      rows.push(perRequest);
      console.log(
        `round ${round + 1}: ${names.map((name, i) => `${name} ${perRequest[i].toFixed(1)}`).join(', ')} us per keep-alive request`,
      );
    }
    for (const [i, name] of names.entries()) {
      const ratios = rows.map((row) => row[i] / row[0]);
      console.log(
        `${name}: ${median(rows.map((row) => row[i])).toFixed(1)} us of CPU per keep-alive request; ` +
          `${median(ratios).toFixed(3)}x ${base} (${spread(ratios)})`,
      );
    }
  }
  console.log(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s each, loaded at once, ${ROUNDS} rounds`);
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
