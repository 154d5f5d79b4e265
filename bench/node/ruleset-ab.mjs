// What each part of the kernel data plane costs, with everything else held
// still (issue 15): one harbor-node with --dataplane nftables and one service
// is started once; its rule set is read back, and each round loads variants of
// it by hand, with the node running or frozen (SIGSTOP: no probes, no
// readings), against one hand-written DNAT rule. All in a private network
// namespace (re-run under `unshare -n` as root).
//
//   npm run bench:ruleset -- [--measure udp|tcp|http] [--rounds 5] [--seconds 3]
//     [--variants running,frozen,frozen-no-accounting,frozen-no-nat-pre-post,frozen-dnat]
//
//   udp:  iperf3 -u -l 64 -b 0, datagrams the server received per second
//   tcp:  iperf3, one stream, Gbit/s received
//   http: new connections each carrying one HTTP request (wrk -t1 -c32, Connection: close,
//         an nginx origin), the whole machine's busy CPU per connection from /proc/stat
// Each variant's figure is set over the same round's first variant's; the median of those.
import { execFileSync, spawnSync } from 'node:child_process';
import { startOrigin } from '../https/targets.mjs';
import { parseOptions, wholeNumber } from '../lib/args.mjs';
import { inOwnNetworkNamespace, installCleanup, makeTempDir, removeTempDir, sleep } from '../lib/proc.mjs';
import { fmt, median } from '../lib/report.mjs';
import { httpConnectionsRun, tcpRun, udpRun } from './suite.mjs';
import { addDnatRule, startHarborNode, startIperfServer } from './targets.mjs';

inOwnNetworkNamespace('bench:ruleset');

const USAGE =
  'usage: npm run bench:ruleset -- [--measure udp|tcp|http] [--rounds 1-20] [--seconds 1-60] [--variants a,b]';
const values = parseOptions(USAGE, {
  measure: { type: 'string', default: 'udp' },
  rounds: { type: 'string', default: '5' },
  seconds: { type: 'string', default: '3' },
  variants: {
    type: 'string',
    default: 'running,frozen,frozen-no-accounting,frozen-no-nat-pre-post,frozen-dnat',
  },
});
/** A variant: the node running with its own table, or frozen with a table loaded by hand. */
const VARIANTS = {
  running: null,
  frozen: (rules) => rules,
  'frozen-no-accounting': (rules) => withoutChains(rules, ['accounting']),
  'frozen-no-nat-pre-post': (rules) => withoutChains(rules, ['prerouting', 'postrouting']),
  'frozen-dnat': null,
};
const variants = values.variants.split(',');
for (const variant of variants) {
  if (!(variant in VARIANTS)) {
    console.error(`--variants: no variant ${variant} (${Object.keys(VARIANTS).join(', ')})`);
    process.exit(2);
  }
}
if (!['udp', 'tcp', 'http'].includes(values.measure)) {
  console.error(`--measure: ${values.measure} is not udp, tcp or http`);
  process.exit(2);
}
const udp = values.measure === 'udp';
/** The figure is a rate (compared by ratio), not a cost per connection (compared by difference). */
const rate = values.measure !== 'http';
const rounds = wholeNumber(values, 'rounds', 1, 20, USAGE);
const seconds = wholeNumber(values, 'seconds', 1, 60, USAGE);
installCleanup();

function withoutChains(rules, names) {
  let text = rules;
  for (const name of names) text = text.replace(new RegExp(`\\tchain ${name} \\{[^}]*\\}\\n`, 's'), '');
  return text;
}

const nft = (input) => execFileSync('nft', ['-f', '-'], { input });
const dir = makeTempDir('harbor-bench-ruleset-');
const backend = values.measure === 'http' ? await startOrigin(dir) : await startIperfServer();
const node = await startHarborNode(
  dir,
  { backendPort: backend.port, udp },
  { nodeFlags: ['--dataplane', 'nftables'] },
);
const rules = await programmedRules();

/**
 * The node's table once the kernel forwards the service: the node checks an instance before it
 * takes traffic, and until then the port is in the `userspace` set (a frozen node would hold it).
 */
async function programmedRules() {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = execFileSync('nft', ['list', 'table', 'ip', 'harbor']).toString();
    const userspace = /set userspace \{[^}]*\}/s.exec(text)?.[0] ?? '';
    if (text.includes(`:${backend.port}`) && !userspace.includes(String(node.port))) return text;
    if (Date.now() > deadline)
      throw new Error(`the node never forwarded port ${node.port} in the kernel:\n${text}`);
    await sleep(200);
  }
}

/** Removes the one-DNAT-rule table when a variant put it in place. */
let removeDnat = () => {};

/** Puts the variant's table in place, the node running or frozen. */
async function enter(variant) {
  removeDnat();
  if (variant === 'running') {
    nft(`table ip harbor\ndelete table ip harbor\n${rules}`);
    process.kill(node.pid, 'SIGCONT');
    await sleep(500);
    return;
  }
  process.kill(node.pid, 'SIGSTOP');
  spawnSync('nft', ['delete', 'table', 'ip', 'harbor']);
  if (variant === 'frozen-dnat') removeDnat = addDnatRule(node.port, backend.port);
  else nft(VARIANTS[variant](rules));
}

async function measure() {
  if (udp) {
    await udpRun(node.port, 1, 20_000, backend).catch(() => {});
    return (await udpRun(node.port, seconds, 0, backend)).deliveredPps;
  }
  if (rate) {
    await tcpRun(node.port, 1);
    return (await tcpRun(node.port, seconds)).gbps;
  }
  await httpConnectionsRun(node.port, 1);
  return (await httpConnectionsRun(node.port, seconds)).machineUs;
}

const unit = udp ? 'datagrams/s' : rate ? 'Gbit/s' : 'us of machine CPU per connection';
const digits = udp ? 0 : rate ? 2 : 1;
const figures = Object.fromEntries(variants.map((v) => [v, []]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants) {
      await enter(variant);
      spawnSync('conntrack', ['-F'], { stdio: 'ignore' });
      let figure;
      let error = '';
      try {
        figure = await measure();
      } catch (failure) {
        error = `  (${failure.message.split('\n')[0]})`;
      }
      figures[variant].push(figure);
      console.log(
        `round ${round + 1}/${rounds}  ${variant.padEnd(24)} ${fmt(figure, digits)} ${unit}${error}`,
      );
    }
  }
} finally {
  process.kill(node.pid, 'SIGCONT');
  removeDnat();
  await node.stop();
  spawnSync('nft', ['delete', 'table', 'ip', 'harbor']);
  await backend.stop();
  removeTempDir(dir);
}

const first = variants[0];
console.log(`\nmedians of ${rounds} rounds (${unit}); against ${first}, the median of per-round pairs`);
for (const variant of variants) {
  const pairs = figures[variant].map((f, r) => {
    const base = figures[first][r];
    if (f === undefined || base === undefined) return undefined;
    return rate ? f / base : f - base;
  });
  console.log(
    `${variant.padEnd(24)} ${fmt(median(figures[variant]), digits).padStart(9)}   ${rate ? `${fmt(median(pairs), 3)}x` : `${fmt(median(pairs), 1)} us`}`,
  );
}
