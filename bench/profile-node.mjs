// Where harbor-node's CPU goes while it forwards: starts harbor-node with one
// service in front of iperf3 (tcp, udp) or the echo server (conn), warms it
// up, then records a V8 CPU profile of the measured window (or, with --perf,
// perf samples by library), and prints the same summary as bench/profile.mjs.
//
//   node bench/profile-node.mjs [--scenario tcp|udp|conn] [--seconds 5] [--perf] [--top N]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOptions, usageError, wholeNumber } from './lib/args.mjs';
import { summarisePerf, summariseProfile } from './lib/cpuprofile.mjs';
import { inspectorSession } from './lib/inspector.mjs';
import {
  commandExists,
  freePort,
  installCleanup,
  makeTempDir,
  measureDuring,
  runCommand,
  sleep,
  startProcess,
} from './lib/proc.mjs';
import { fmt } from './lib/report.mjs';
import { connectRun, tcpRun, udpRun } from './node/suite.mjs';
import { nodeAvailable, startEchoServer, startHarborNode, startIperfServer } from './node/targets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const USAGE =
  'usage: node bench/profile-node.mjs [--scenario tcp|udp|conn] [--seconds 1-60] [--perf] [--top N]';
const values = parseOptions(USAGE, {
  scenario: { type: 'string', default: 'tcp' },
  seconds: { type: 'string', default: '5' },
  perf: { type: 'boolean', default: false },
  top: { type: 'string', default: '30' },
});
const seconds = wholeNumber(values, 'seconds', 1, 60, USAGE);
const top = wholeNumber(values, 'top', 1, 1000, USAGE);
if (!['tcp', 'udp', 'conn'].includes(values.scenario)) {
  usageError(`--scenario: ${JSON.stringify(values.scenario)} is not tcp, udp or conn`, USAGE);
}
if (!nodeAvailable()) {
  process.stderr.write('profile-node: dist/cli/node.js does not exist; run npm run build first\n');
  process.exit(1);
}
installCleanup();
const log = (line) => process.stdout.write(`${line}\n`);

const dir = makeTempDir('profile-node');
const backend = values.scenario === 'conn' ? await startEchoServer() : await startIperfServer();
const inspectPort = await freePort();
const nodeArgs = [
  `--inspect=127.0.0.1:${inspectPort}`,
  ...(values.perf ? ['--perf-basic-prof-only-functions'] : []),
];
const node = await startHarborNode(
  dir,
  { backendPort: backend.port, udp: values.scenario === 'udp' },
  { extraNodeArgs: nodeArgs },
);
const load = {
  tcp: async () => {
    const r = await tcpRun(node.port, seconds);
    return { ...r, operations: r.bytes / 1e9, unit: 'GB' };
  },
  udp: async () => {
    const r = await udpRun(node.port, seconds, 0, backend, node.pid);
    return { ...r, operations: r.delivered, unit: 'datagram' };
  },
  conn: async () => {
    const r = await connectRun(node.port, seconds);
    return { ...r, operations: r.completed, unit: 'connection' };
  },
}[values.scenario];

try {
  log(`harbor-node pid ${node.pid}, service port ${node.port}; warming up (${values.scenario})`);
  if (values.scenario === 'tcp') await tcpRun(node.port, 1);
  if (values.scenario === 'udp') await udpRun(node.port, 1, 20_000, backend, node.pid);
  if (values.scenario === 'conn') await connectRun(node.port, 1);

  const usePerf = values.perf && commandExists('perf');
  const perfData = join(dir, 'perf.data');
  let perf = null;
  let session = null;
  if (usePerf) {
    perf = startProcess('perf', ['record', '-F', '999', '-p', String(node.pid), '-o', perfData], {
      name: 'perf',
    });
    await sleep(300);
  } else {
    session = await inspectorSession(inspectPort);
    await session.send('Profiler.enable');
    await session.send('Profiler.setSamplingInterval', { interval: 200 });
    await session.send('Profiler.start');
  }
  const measured = await measureDuring(node.pid, load);
  const profile = session ? (await session.send('Profiler.stop')).profile : null;
  session?.close();
  if (perf) await perf.stop('SIGINT', 10_000);

  const r = measured.result;
  const usPerOp = (measured.cpuSeconds * 1e6) / Math.max(1e-9, r.operations);
  log(
    `\nload: ${values.scenario}, ${fmt(r.operations, 2)} ${r.unit}(s); harbor-node CPU ${fmt(measured.cpuSeconds, 2)} s ` +
      `(${fmt((measured.systemSeconds / measured.cpuSeconds) * 100)}% in the kernel) = ${fmt(usPerOp, 2)} us per ${r.unit}`,
  );
  if (profile) {
    const out = join(here, 'results');
    mkdirSync(out, { recursive: true });
    const file = join(
      out,
      `harbor-node-${values.scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`,
    );
    writeFileSync(file, JSON.stringify(profile));
    log(summariseProfile(profile, { top, usPerOp }));
    log(`\nprofile written to ${file}`);
  }
  if (perf) {
    const symbols = await runCommand(
      'perf',
      [
        'report',
        '-i',
        perfData,
        '--no-children',
        '--sort',
        'dso,sym',
        '--stdio',
        '-g',
        'none',
        '--percent-limit',
        '0',
      ],
      { timeoutMs: 120_000 },
    );
    log(summarisePerf(symbols.stdout, top));
  }
} finally {
  await node.stop();
  await backend.stop();
  rmSync(`/tmp/perf-${node.pid}.map`, { force: true });
}
process.exit(0);
