// npm run bench:h2c: HTTP/2 clients forwarded to a backend that speaks HTTP/2 in
// clear text (--backend-protocol h2c, what a gRPC app needs), against the
// peer an operator would use for it: nginx's grpc_pass. Each round starts fresh
// processes; h2load (--connections connections of 10 streams each, GET /small)
// loads each target, and each process's own CPU comes from /proc/PID/stat:
//   nginx           nginx as the HTTPS proxy, grpc_pass to the origin's h2c listener
//   sidecar h2c     harbor-sidecar, HARBOR_BACKEND_PROTOCOL=h2c, to the same listener
//   sidecar http1   harbor-sidecar as by default, HTTP/1.1 to the origin's HTTP/1.1 listener
// The origin is one nginx serving both. A figure is CPU per request: the TLS,
// the HTTP/2 framing both ways and the backend leg, for a request already on an
// open connection (connections are opened during the 2 s of warm-up).
// --pin: one target at a time, alone on the last CPU (pinned.mjs).
//   node bench/https/h2c.mjs [--rounds 5] [--seconds 3] [--connections 8] [--pin]
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir } from '../lib/proc.mjs';
import { median, spread } from '../lib/report.mjs';
import { measurement } from './pinned.mjs';
import { startNginxProxy, startOrigin, startSidecar } from './targets.mjs';

const USAGE =
  'usage: node bench/https/h2c.mjs [--rounds 1-30] [--seconds 1-30] [--connections 1-100] [--pin]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '5' },
  seconds: { type: 'string', default: '3' },
  connections: { type: 'string', default: '8' },
  pin: { type: 'boolean', default: false },
});
const { measure, how } = measurement(values.pin, 'h2c');
const ROUNDS = wholeNumber(values, 'rounds', 1, 30, USAGE);
const SECONDS = wholeNumber(values, 'seconds', 1, 30, USAGE);
const CONNECTIONS = wholeNumber(values, 'connections', 1, 100, USAGE);
installCleanup();
const dir = makeTempDir('harbor-bench-h2c-');
try {
  const pair = await makePair(dir, 'bench', 'ecdsa');
  const origin = await startOrigin(dir, { h2c: true });
  const targets = {
    nginx: () => startNginxProxy(makeTempDir('h2c-nginx'), pair, origin.h2cPort, { h2c: true }),
    'sidecar h2c': () =>
      startSidecar(makeTempDir('h2c-sidecar'), pair, origin.h2cPort, {
        env: { HARBOR_BACKEND_PROTOCOL: 'h2c' },
      }),
    'sidecar http1': () => startSidecar(makeTempDir('h2c-sidecar-h1'), pair, origin.port),
  };
  const names = Object.keys(targets);
  const rows = [];
  for (let round = 0; round < ROUNDS; round++) {
    const perRequest = await measure(Object.values(targets), {
      connections: CONNECTIONS,
      seconds: SECONDS,
      round,
      h2: true,
    });
    rows.push(perRequest);
    console.log(
      `round ${round + 1}: ${names.map((name, i) => `${name} ${perRequest[i].toFixed(1)}`).join(', ')} us per HTTP/2 request`,
    );
  }
  for (const [i, name] of names.entries()) {
    const ratios = rows.map((row) => row[i] / row[0]);
    console.log(
      `${name}: ${median(rows.map((row) => row[i])).toFixed(1)} us of CPU per HTTP/2 request; ` +
        `${median(ratios).toFixed(3)}x nginx (${spread(ratios)})`,
    );
  }
  console.log(`h2load -c${CONNECTIONS} -m10 -d${SECONDS}s each, ${how}, ${ROUNDS} rounds`);
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}
