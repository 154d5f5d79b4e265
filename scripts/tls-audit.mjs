// npm run audit:tls: testssl.sh (Debian's testssl.sh) against what harbor serves over TLS:
// a sidecar with an ECDSA pair and HSTS on, and harbor-node's API with an RSA pair. Every
// finding of severity LOW or above fails the audit, except the ones a self-made test
// certificate or an API on a port must have (listed in EXPECTED, with why), which are
// printed as such. Everything runs in a network namespace of its own (unshare -n, as
// root) with DNS lookups off (--nodns none): no packet leaves loopback. About 3 minutes
// per target.
//
//   node scripts/tls-audit.mjs [--target sidecar|node|both] [--keep]
//
// --keep: leave the temporary folder (testssl's JSON and text output per target) and
// print where it is.
import { readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { repoRoot, startSidecar } from '../bench/https/targets.mjs';
import { parseOptions, usageError } from '../bench/lib/args.mjs';
import { makePair } from '../bench/lib/certs.mjs';
import {
  commandExists,
  freePort,
  inOwnNetworkNamespace,
  installCleanup,
  makeTempDir,
  removeTempDir,
  runCommand,
  startProcess,
  waitForPort,
} from '../bench/lib/proc.mjs';

const USAGE = 'usage: node scripts/tls-audit.mjs [--target sidecar|node|both] [--keep]';
const values = parseOptions(USAGE, {
  target: { type: 'string', default: 'both' },
  keep: { type: 'boolean', default: false },
});
if (!['sidecar', 'node', 'both'].includes(values.target)) {
  usageError(`--target: "${values.target}" is not sidecar, node or both`, USAGE);
}
if (!commandExists('testssl')) {
  process.stderr.write('audit:tls needs testssl.sh (Debian: apt-get install testssl.sh)\n');
  process.exit(1);
}
inOwnNetworkNamespace('audit:tls');

/**
 * Findings a self-made certificate or a node's API must have: [testssl id, pattern of its
 * finding, targets it is expected of, why].
 */
const EXPECTED = [
  [
    'cert_chain_of_trust',
    /self signed|CA not trusted|failed/,
    ['sidecar', 'node'],
    'a test certificate no public CA signed',
  ],
  [
    'cert_revocation',
    /Neither CRL nor OCSP URI/,
    ['sidecar', 'node'],
    'a test certificate names no CRL or OCSP responder',
  ],
  ['DNS_CAArecord', /./, ['sidecar', 'node'], 'no DNS on loopback (--nodns none)'],
  [
    'HSTS',
    /not offered/,
    ['node'],
    "HSTS covers every port of a host: the node's API must not force it on the apps' ports",
  ],
  ['security_headers', /--/, ['sidecar', 'node'], "the app's own headers (X-Frame-Options...), not TLS"],
];
const FLAGGED = new Set(['LOW', 'MEDIUM', 'HIGH', 'CRITICAL']);

installCleanup();
const dir = makeTempDir('tls-audit-');
const verdicts = [];
try {
  const targets = values.target === 'both' ? ['sidecar', 'node'] : [values.target];
  for (const target of targets) {
    const port = target === 'sidecar' ? await startSidecarTarget() : await startNodeTarget();
    verdicts.push(await audit(target, port));
  }
} finally {
  if (values.keep) process.stdout.write(`testssl output kept in ${dir}\n`);
  else removeTempDir(dir);
}
const failed = verdicts.filter((v) => !v.ok);
process.stdout.write(
  failed.length === 0
    ? `audit:tls: PASS (${verdicts.map((v) => v.target).join(', ')})\n`
    : `audit:tls: FAIL (${failed.map((v) => v.target).join(', ')})\n`,
);
process.exit(failed.length === 0 ? 0 : 1);

/** A sidecar (ECDSA pair, --hsts) in front of a plain HTTP server answering "ok". */
async function startSidecarTarget() {
  const origin = http.createServer((_req, res) => res.end('ok\n'));
  await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve));
  process.on('exit', () => origin.close());
  const pair = await makePair(dir, 'sidecar', 'ecdsa', 'localhost');
  const sidecar = await startSidecar(dir, pair, origin.address().port, {
    env: { HARBOR_HSTS: '31536000,includeSubDomains' },
  });
  return sidecar.port;
}

/** harbor-node with its API over TLS (RSA pair), on loopback, with a token. */
async function startNodeTarget() {
  const pair = await makePair(dir, 'node', 'rsa', 'localhost');
  const api = await freePort();
  const first = await freePort();
  startProcess(
    process.execPath,
    [
      join(repoRoot, 'dist', 'cli', 'node.js'),
      '--api',
      `127.0.0.1:${api}`,
      '--api-cert',
      pair.cert,
      '--api-key',
      pair.key,
      '--ports',
      `${first}-${first}`,
      '--listen',
      '127.0.0.1',
      '--host',
      '127.0.0.1',
    ],
    {
      name: 'harbor-node',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HARBOR_NODE_TOKEN: 'tls-audit-token' },
      cwd: dir,
    },
  );
  await waitForPort(api, { timeoutMs: 15_000 });
  return api;
}

/** Runs testssl against 127.0.0.1:`port` and judges its findings. */
async function audit(target, port) {
  const json = join(dir, `${target}.json`);
  process.stdout.write(`${target}: testssl against 127.0.0.1:${port} (about 3 minutes)\n`);
  const { code, stdout } = await runCommand(
    'testssl',
    [
      '--quiet',
      '--color',
      '0',
      '--warnings',
      'off',
      '--nodns',
      'none',
      '--ip',
      '127.0.0.1',
      '--jsonfile',
      json,
      `localhost:${port}`,
    ],
    { timeoutMs: 15 * 60_000 },
  );
  writeFileSync(join(dir, `${target}.txt`), stdout);
  let findings;
  try {
    findings = JSON.parse(readFileSync(json, 'utf8'));
  } catch (error) {
    process.stdout.write(`${target}: testssl wrote no findings (exit ${code}): ${error.message}\n`);
    return { target, ok: false };
  }
  let ok = findings.some((f) => f.id === 'protocol_negotiated' || f.id === 'TLS1_3');
  if (!ok) process.stdout.write(`${target}: testssl did not get to negotiate (exit ${code})\n`);
  for (const f of findings) {
    if (!FLAGGED.has(f.severity)) continue;
    const expected = EXPECTED.find(
      ([id, pattern, targets]) => id === f.id && pattern.test(f.finding) && targets.includes(target),
    );
    if (expected === undefined) ok = false;
    process.stdout.write(
      `  ${expected === undefined ? 'FLAGGED ' : 'expected'} ${f.severity.padEnd(8)} ${f.id}: ${f.finding}${expected === undefined ? '' : ` (${expected[3]})`}\n`,
    );
  }
  process.stdout.write(`${target}: ${ok ? 'nothing flagged beyond the expected' : 'FLAGGED'}\n`);
  return { target, ok };
}
