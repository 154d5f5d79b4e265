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
// above the floor goes.
// With --h2, the same for HTTP/2 (h2load, --connections connections of 10
// streams each): nginx's http2, bare Node's own HTTP/2 server answering by
// itself (bare-node.mjs: no backend at all), the HTTP/2 floor (h2-relay.mjs:
// bare Node's HTTP/2 plus a pooled HTTP/1.1 backend leg, nothing more), and
// the sidecar.
// With --h2c (npm run bench:h2c), HTTP/2 clients forwarded to a backend that speaks
// HTTP/2 in clear text (--backend-protocol h2c, what a gRPC app needs): nginx's
// grpc_pass to the origin's h2c listener (the peer an operator would use), the
// sidecar with HARBOR_BACKEND_PROTOCOL=h2c to the same listener, and the sidecar
// as by default (HTTP/1.1 to the origin).
// --pin: one target at a time, alone on the last CPU (pinned.mjs), instead of
// loaded at once. Reported: medians of the per-round ratios to the run's first
// target.
//   node bench/https/floor.mjs [--rounds 7] [--seconds 3] [--connections 8] [--pieces | --h2 | --h2c] [--pin]
import { parseOptions, usageError, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir } from '../lib/proc.mjs';
import { median, spread } from '../lib/report.mjs';
import { measurement } from './pinned.mjs';
import {
  startBareNode,
  startH2Relay,
  startNginxProxy,
  startOrigin,
  startRelay,
  startSidecar,
} from './targets.mjs';

const USAGE =
  'usage: node bench/https/floor.mjs [--rounds 1-30] [--seconds 1-30] [--connections 1-100] [--pieces | --h2 | --h2c] [--pin]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '7' },
  seconds: { type: 'string', default: '3' },
  connections: { type: 'string', default: '8' },
  pieces: { type: 'boolean', default: false },
  h2: { type: 'boolean', default: false },
  h2c: { type: 'boolean', default: false },
  pin: { type: 'boolean', default: false },
});
if ([values.pieces, values.h2, values.h2c].filter(Boolean).length > 1) {
  usageError('--pieces, --h2 and --h2c: one run at a time', USAGE);
}
const { measure, how } = measurement(values.pin, 'floor');
const h2 = values.h2 || values.h2c;
const unit = h2 ? 'HTTP/2 request' : 'keep-alive request';
const ROUNDS = wholeNumber(values, 'rounds', 1, 30, USAGE);
const SECONDS = wholeNumber(values, 'seconds', 1, 30, USAGE);
const CONNECTIONS = wholeNumber(values, 'connections', 1, 100, USAGE);
installCleanup();
const dir = makeTempDir('harbor-bench-floor-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir, { h2c: values.h2c });
  // Three targets at once at most: four Node processes and their four wrk on two cores measured
  // far noisier (one piece against the relay: 0.78-1.89x per round). --h2 has four: pin it.
  const relay = (flags) => () => startRelay(pair, origin.port, { flags });
  const nginx = () => startNginxProxy(makeTempDir('floor-nginx'), pair, origin.port);
  const sidecar = () => startSidecar(makeTempDir('floor-sidecar'), pair, origin.port);
  const runs = values.h2c
    ? [
        {
          base: 'nginx',
          targets: {
            nginx: () => startNginxProxy(makeTempDir('floor-nginx'), pair, origin.h2cPort, { h2c: true }),
            'sidecar h2c': () =>
              startSidecar(makeTempDir('floor-sidecar'), pair, origin.h2cPort, {
                env: { HARBOR_BACKEND_PROTOCOL: 'h2c' },
              }),
            'sidecar http1': sidecar,
          },
        },
      ]
    : values.pieces
      ? ['timeouts', 'parse', 'string'].map((piece) => ({
          base: 'relay',
          targets: { relay: relay([]), 'relay again': relay([]), [`+${piece}`]: relay([piece]) },
        }))
      : values.h2
        ? [
            {
              base: 'nginx',
              targets: {
                nginx,
                'bare node': () => startBareNode(makeTempDir('floor-bare'), pair),
                'h2 relay': () => startH2Relay(pair, origin.port),
                sidecar,
              },
            },
          ]
        : [
            {
              base: 'nginx',
              targets: {
                nginx,
                relay: relay([]),
                sidecar,
              },
            },
          ];
  for (const { base, targets } of runs) {
    const names = Object.keys(targets);
    const rows = [];
    for (let round = 0; round < ROUNDS; round++) {
      const perRequest = await measure(Object.values(targets), {
        connections: CONNECTIONS,
        seconds: SECONDS,
        round,
        h2,
      });
      rows.push(perRequest);
      console.log(
        `round ${round + 1}: ${names.map((name, i) => `${name} ${perRequest[i].toFixed(1)}`).join(', ')} us per ${unit}`,
      );
    }
    for (const [i, name] of names.entries()) {
      const ratios = rows.map((row) => row[i] / row[0]);
      console.log(
        `${name}: ${median(rows.map((row) => row[i])).toFixed(1)} us of CPU per ${unit}; ` +
          `${median(ratios).toFixed(3)}x ${base} (${spread(ratios)})`,
      );
    }
  }
  const load = h2 ? `h2load -c${CONNECTIONS} -m10` : `wrk -t1 -c${CONNECTIONS}`;
  console.log(`${load} -d${SECONDS}s each, ${how}, ${ROUNDS} rounds`);
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
