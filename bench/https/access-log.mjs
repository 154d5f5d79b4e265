// npm run bench:access-log (issue 14): what the access log costs. Three sidecars
// in front of the same nginx origin: one with --access-log json (or combined)
// to a file, two without. wrk keep-alive runs (-t1 -c50) go to each in turn,
// the order rotating each round; CPU per request of each from /proc/PID/stat.
// Reported: the median of the per-round ratios with / without, beside the
// same ratio between the two that log nothing (the noise floor: two identical
// processes differ by that much on this machine), and the CPU per line of the
// log's own code measured in-process (format, encode, hand to the writer).
// The peer in the same run: nginx as the same HTTPS proxy, with and without an
// access log of the same fields (json: a log_format with escape=json; combined:
// its own), buffered as the sidecar's (buffer=32k flush=100ms), what the
// sidecar's figure is read against.
//   node bench/https/access-log.mjs [--rounds 9] [--seconds 3] [--format json|combined]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makePair } from '../lib/certs.mjs';
import { installCleanup, makeTempDir, removeTempDir, treeCpuSeconds } from '../lib/proc.mjs';
import { waitForOk } from '../lib/tls-probe.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SMALL_PATH, startNginxProxy, startOrigin, startSidecar } from './targets.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
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
  const control = await startSidecar(makeTempDir('control'), pair, origin.port);
  const on = await startSidecar(makeTempDir('on'), pair, origin.port, {
    env: { HARBOR_ACCESS_LOG: values.format, HARBOR_ACCESS_LOG_FILE: join(dir, 'access.log') },
  });
  const nginxOff = await startNginxProxy(makeTempDir('nginx-off'), pair, origin.port);
  const nginxOn = await startNginxProxy(makeTempDir('nginx-on'), pair, origin.port, {
    accessLog: { file: join(dir, 'nginx-access.log'), format: values.format },
  });
  const url = (t) => `https://127.0.0.1:${t.port}${SMALL_PATH}`;
  for (const t of [off, control, on, nginxOff, nginxOn]) {
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
    const all = [off, control, on, nginxOff, nginxOn];
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)];
    const figures = new Map();
    for (const t of order) figures.set(t, await perRequest(t));
    rows.push({
      off: figures.get(off),
      control: figures.get(control),
      on: figures.get(on),
      nginxOff: figures.get(nginxOff),
      nginxOn: figures.get(nginxOn),
    });
    console.log(
      `round ${round + 1}: off ${figures.get(off).toFixed(1)} us/req, off again ${figures.get(control).toFixed(1)} us/req, ${values.format} ${figures.get(on).toFixed(1)} us/req; nginx off ${figures.get(nginxOff).toFixed(1)}, ${values.format} ${figures.get(nginxOn).toFixed(1)} us/req`,
    );
  }
  // Both logs were written (a silent misconfiguration would flatter the peer or the sidecar).
  await on.stop();
  await nginxOn.stop();
  for (const file of ['access.log', 'nginx-access.log']) {
    const lines = readFileSync(join(dir, file), 'utf8').split('\n').length - 1;
    if (lines < 1000) throw new Error(`${file}: ${lines} lines, the log was not written`);
    console.log(`${file}: ${lines} lines`);
  }
  const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  const ratio = median(rows.map((r) => (2 * r.on) / (r.off + r.control)));
  const noise = median(rows.map((r) => Math.max(r.off, r.control) / Math.min(r.off, r.control)));
  const nginxRatio = median(rows.map((r) => r.nginxOn / r.nginxOff));
  await lineCost(join(dir, 'lines.log'), values.format); // warm-up: compiled code, as in a running proxy
  const perLine = await lineCost(join(dir, 'lines.log'), values.format);
  console.log(
    `access log ${values.format} to a file: ${median(rows.map((r) => r.on)).toFixed(1)} us against ${median(rows.map((r) => (r.off + r.control) / 2)).toFixed(1)} us of sidecar CPU per keep-alive request; median of per-round ratios ${ratio.toFixed(3)}x, where two sidecars without it differ by ${noise.toFixed(3)}x (wrk -t1 -c50 -d${SECONDS}s, ${ROUNDS} rounds)`,
  );
  console.log(
    `nginx, the same proxy with an access log of the same fields (${values.format}, buffer=32k flush=100ms): ${median(rows.map((r) => r.nginxOn)).toFixed(1)} us against ${median(rows.map((r) => r.nginxOff)).toFixed(1)} us per request; median of per-round ratios ${nginxRatio.toFixed(3)}x`,
  );
  console.log(
    `the log's own code in-process: ${perLine.toFixed(2)} us of CPU per line (format, encode, write to a file), ${((100 * perLine) / median(rows.map((r) => r.off))).toFixed(1)}% of a request`,
  );
  await off.stop();
  await control.stop();
  await nginxOff.stop();
  await origin.stop?.();
} finally {
  removeTempDir(dir);
}

/** CPU per line of AccessLog.write (200,000 lines of a keep-alive GET, batches written as they fill). */
async function lineCost(file, format) {
  const { AccessLog } = await import('../../dist/https/access-log.js');
  const { Head, parseRequestHead } = await import('../../dist/https/head-parser.js');
  const log = new AccessLog({ format, file, keepQuery: false });
  const head = new Head();
  const raw = Buffer.from(
    `GET ${SMALL_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\n\r\n`,
    'latin1',
  );
  parseRequestHead(head, raw, 0, raw.length);
  const entry = {
    service: 'web-https',
    client: '127.0.0.1',
    head,
    protocol: 'HTTP/1.1',
    status: 200,
    bytesIn: 80,
    bytesOut: 250,
    startedAt: 0,
    backendAt: 0,
    tls: 'TLSv1.3',
    requestId: '0f8e2c1a-5b1d-4c0e-9d7e-1b2c3d4e5f60',
    reason: undefined,
  };
  const lines = 200_000;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) {
    entry.startedAt = performance.now() - 0.3 - (i % 1000) / 997;
    entry.backendAt = entry.startedAt + 0.2;
    log.write(entry);
    if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve)); // let written batches complete
  }
  await log.close();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / lines;
}
