// npm run bench:websocket: what a WebSocket costs the proxy, over its own TLS
// connection (HTTP/1.1 Upgrade) and as a stream of an HTTP/2 connection the
// browser already has (RFC 8441), against nginx (HTTP/1.1 only: it does not
// allow WebSockets over HTTP/2). One session (ws-client.mjs): the handshake
// (for h1 a full TLS handshake, no session offered), one 32-byte message and
// its echo, the close frames both ways, the end. Figure: each proxy's own CPU
// (/proc/PID/stat, nginx's master and worker together) per session, while one
// client runs it `--concurrency` sessions at a time for `--seconds` (at most
// 20,000 sessions). The targets are loaded one after the other, in a rotating
// order each round; fresh processes each round.
//   node bench/https/websocket.mjs [--rounds 5] [--seconds 3] [--concurrency 16]
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import { makePair } from '../lib/certs.mjs';
import {
  commandExists,
  freePort,
  installCleanup,
  makeTempDir,
  measureDuring,
  removeTempDir,
  startProcess,
  waitForPort,
} from '../lib/proc.mjs';
import { median } from '../lib/report.mjs';
import { sidecarAvailable, startNginxWebSocketProxy, startSidecar } from './targets.mjs';

const USAGE = 'usage: node bench/https/websocket.mjs [--rounds 1-30] [--seconds 1-30] [--concurrency 1-100]';
const values = parseOptions(USAGE, {
  rounds: { type: 'string', default: '5' },
  seconds: { type: 'string', default: '3' },
  concurrency: { type: 'string', default: '16' },
});
const rounds = wholeNumber(values, 'rounds', 1, 30, USAGE);
const seconds = wholeNumber(values, 'seconds', 1, 30, USAGE);
const concurrency = wholeNumber(values, 'concurrency', 1, 100, USAGE);
if (!sidecarAvailable()) {
  process.stderr.write('bench: dist/cli/sidecar.js is missing: run npm run build first\n');
  process.exit(1);
}
const withNginx = commandExists('nginx');

installCleanup();
const here = import.meta.dirname;
const dir = makeTempDir('ws');
const pair = await makePair(dir, 'ws', 'ecdsa');

/** One client run against `port`; the session count and `pid`'s CPU seconds meanwhile. */
async function load(pid, port, mode) {
  const { result, cpuSeconds } = await measureDuring(pid, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(here, 'ws-client.mjs'), JSON.stringify({ port, mode, concurrency, seconds })],
      { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
    );
    return JSON.parse(stdout);
  });
  if (result.completed === 0)
    throw new Error(`${mode} on port ${port}: no session completed (${result.lastError})`);
  return { ...result, usPerSession: (cpuSeconds * 1e6) / result.completed };
}

const ROWS = [
  { id: 'sidecar-h1', label: 'sidecar, a TLS connection per WebSocket (HTTP/1.1)' },
  { id: 'sidecar-h2', label: 'sidecar, a stream per WebSocket (HTTP/2, RFC 8441)' },
  ...(withNginx ? [{ id: 'nginx-h1', label: 'nginx, a TLS connection per WebSocket (HTTP/1.1)' }] : []),
];
const figures = Object.fromEntries(ROWS.map((row) => [row.id, []]));
const errors = Object.fromEntries(ROWS.map((row) => [row.id, 0]));

for (let round = 0; round < rounds; round++) {
  const originPort = await freePort();
  const origin = startProcess(process.execPath, [join(here, 'ws-origin.mjs'), String(originPort)], {
    name: 'ws origin',
  });
  await waitForPort(originPort, { proc: origin });
  const sidecar = await startSidecar(dir, pair, originPort);
  const nginx = withNginx ? await startNginxWebSocketProxy(dir, pair, originPort) : null;
  const runs = {
    'sidecar-h1': () => load(sidecar.pid, sidecar.port, 'h1'),
    'sidecar-h2': () => load(sidecar.pid, sidecar.port, 'h2'),
    'nginx-h1': () => load(nginx.pid, nginx.port, 'h1'),
  };
  const order = ROWS.map((row) => row.id);
  for (let i = 0; i < round % order.length; i++) order.push(order.shift());
  const line = [];
  for (const id of order) {
    const run = await runs[id]();
    figures[id].push(run.usPerSession);
    errors[id] += run.errors;
    line.push(`${id} ${run.usPerSession.toFixed(0)} us (${run.completed} sessions)`);
  }
  process.stdout.write(`round ${round + 1}: ${line.join(', ')}\n`);
  await sidecar.stop();
  await nginx?.stop();
  await origin.stop();
}

process.stdout.write(
  `\nCPU per WebSocket session (handshake, one message echoed, close), median (range) of ${rounds} rounds:\n`,
);
for (const row of ROWS) {
  const low = Math.min(...figures[row.id]);
  const high = Math.max(...figures[row.id]);
  process.stdout.write(
    `  ${row.label}: ${median(figures[row.id]).toFixed(0)} us (${low.toFixed(0)}-${high.toFixed(0)})${errors[row.id] > 0 ? `, ${errors[row.id]} failed sessions` : ''}\n`,
  );
}
const perRound = figures['sidecar-h2'].map((h2, i) => h2 / figures['sidecar-h1'][i]);
process.stdout.write(`  sidecar h2 / sidecar h1, median of rounds: ${median(perRound).toFixed(3)}x\n`);
removeTempDir(dir);
