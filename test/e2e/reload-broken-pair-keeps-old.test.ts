import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';
import { servedFingerprint } from '../helpers/net.js';
import { echoBackendWithWs, servedWithin, spawnSidecar } from '../helpers/reload-harness.js';

// Issue 3, "Broken swaps": each broken change leaves the old certificate serving and logs exactly one error
// line (E_RELOAD, the underlying code in `reason`, naming the file); the same broken files seen again (SIGHUP)
// are not reported twice; the next good pair is picked up. Pairs made by openssl.

const root = mkdtempSync(join(tmpdir(), 'harbor-reload-broken-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const ssl = new OpensslFactory(root);
const certs = join(root, 'certs');
const crt = join(certs, 'shop-https.crt');
const key = join(certs, 'shop-https.key');
const pair = () => ssl.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'], days: 90 });

/** A good pair put in place atomically (temporary files, then rename), as a deploy tool would. */
function putGood(files: { certFile: string; keyFile: string }): string {
  copyFileSync(files.keyFile, `${key}.tmp`);
  copyFileSync(files.certFile, `${crt}.tmp`);
  renameSync(`${key}.tmp`, key);
  renameSync(`${crt}.tmp`, crt);
  return opensslFingerprint(files.certFile);
}

interface Breaker {
  readonly name: string;
  readonly reason: string;
  /** The file the error line must name. */
  readonly names: string;
  /** Also SIGHUP while broken: the same files re-read are refused without a second error line. */
  readonly repeat?: boolean;
  readonly run: (current: { certFile: string; keyFile: string }) => void;
}

const BREAKERS: readonly Breaker[] = [
  {
    name: 'mismatched key',
    reason: 'E_KEY_MISMATCH',
    names: 'shop-https.key',
    repeat: true,
    run: () => copyFileSync(pair().keyFile, key),
  },
  {
    name: 'garbage certificate',
    reason: 'E_CERT_PARSE',
    names: 'shop-https.crt',
    run: () => writeFileSync(crt, 'this is not a certificate\n'),
  },
  {
    name: 'truncated certificate',
    reason: 'E_CERT_PARSE',
    names: 'shop-https.crt',
    repeat: true,
    run: (current) => writeFileSync(crt, read(current.certFile).slice(0, 400)),
  },
  {
    name: 'half pair (new .crt, no .key)',
    reason: 'W_HALF_PAIR',
    names: 'shop-https.key',
    run: () => {
      rmSync(key);
      copyFileSync(pair().certFile, crt);
    },
  },
  {
    name: 'expired certificate',
    reason: 'E_CERT_EXPIRED',
    names: 'shop-https.crt',
    repeat: true,
    run: () => {
      const old = ssl.pair(
        'localhost',
        { type: 'ec' },
        { hosts: ['localhost'], startDate: '20240101000000Z', endDate: '20250101000000Z' },
      );
      copyFileSync(old.keyFile, key);
      copyFileSync(old.certFile, crt);
    },
  },
  {
    name: 'not yet valid certificate',
    reason: 'E_CERT_NOT_YET_VALID',
    names: 'shop-https.crt',
    run: () => {
      const early = ssl.pair(
        'localhost',
        { type: 'ec' },
        { hosts: ['localhost'], startDate: '20990101000000Z', endDate: '21000101000000Z' },
      );
      copyFileSync(early.keyFile, key);
      copyFileSync(early.certFile, crt);
    },
  },
];

t.test('broken swaps keep the old certificate and log one error each; a good pair then loads', async (t) => {
  mkdirSync(certs);
  let current = pair();
  let fingerprint = putGood(current);
  const backend = await echoBackendWithWs();
  t.teardown(() => backend.close());
  // Debug level: the "already reported" line shows that a repeat was seen and deliberately not logged again.
  const sidecar = await spawnSidecar({
    service: 'shop-https',
    certsDir: certs,
    backendPort: backend.port,
    logLevel: 'debug',
  });
  t.teardown(() => sidecar.child.kill('SIGKILL'));
  await sidecar.waitForLog((l) => l.msg === 'harbor-sidecar serving', 'serving');
  t.equal(await servedFingerprint(sidecar.port), fingerprint, 'the first pair is served');

  for (const breaker of BREAKERS) {
    const from = sidecar.lines.length;
    breaker.run(current);
    const error = await sidecar.waitForLog((l) => l.level >= 50, `error for ${breaker.name}`, from);
    t.match(
      error,
      { code: 'E_RELOAD', reason: breaker.reason, msg: new RegExp(breaker.names.replace('.', '\\.')) },
      `${breaker.name}: E_RELOAD (${breaker.reason}) naming ${breaker.names}`,
    );
    t.match(error.msg, new RegExp(`keeping ${fingerprint}`), `${breaker.name}: says it keeps the old one`);
    t.equal(
      await servedFingerprint(sidecar.port),
      fingerprint,
      `${breaker.name}: the old certificate serves`,
    );

    if (breaker.repeat) {
      // The same broken files again: refused, not reported again.
      const hupFrom = sidecar.lines.length;
      sidecar.child.kill('SIGHUP');
      await sidecar.waitForLog(
        (l) => l.trigger === 'SIGHUP' && /already reported/.test(l.msg),
        `SIGHUP repeat refused quietly (${breaker.name})`,
        hupFrom,
      );
      t.equal(
        await servedFingerprint(sidecar.port),
        fingerprint,
        `${breaker.name}: still the old one after SIGHUP`,
      );
    }

    current = pair();
    fingerprint = putGood(current);
    const served = await servedWithin(sidecar.port, fingerprint, performance.now());
    t.not(served.ms, -1, `${breaker.name}: the good pair afterwards is served`);
    const errors = sidecar.lines.slice(from).filter((l) => l.level >= 50);
    t.equal(errors.length, 1, `${breaker.name}: exactly one error line`);
  }
  t.equal(sidecar.errors().length, BREAKERS.length, 'one error line per broken change, no other');

  // The fallback pair in use and a per-service .crt appearing alone: nothing to swap, but it is said, once.
  const fallback = pair();
  copyFileSync(fallback.keyFile, join(certs, 'harbor.key'));
  copyFileSync(fallback.certFile, join(certs, 'harbor.crt'));
  rmSync(crt);
  rmSync(key);
  const fallbackPrint = opensslFingerprint(fallback.certFile);
  t.not(
    (await servedWithin(sidecar.port, fallbackPrint, performance.now())).ms,
    -1,
    'falls back to harbor.crt',
  );
  const from = sidecar.lines.length;
  const stray = pair();
  copyFileSync(stray.certFile, crt);
  const warning = await sidecar.waitForLog((l) => l.code === 'W_HALF_PAIR', 'W_HALF_PAIR', from);
  t.match(warning, { level: 40, msg: /shop-https\.crt has no .*shop-https\.key/ }, 'the half pair is named');
  sidecar.child.kill('SIGHUP');
  await sidecar.waitForLog(
    (l) => l.trigger === 'SIGHUP' && /certificate unchanged/.test(l.msg),
    'SIGHUP re-read',
    from,
  );
  t.equal(sidecar.lines.slice(from).filter((l) => l.code === 'W_HALF_PAIR').length, 1, 'said once');
  t.equal(await servedFingerprint(sidecar.port), fallbackPrint, 'the fallback pair keeps serving');
  copyFileSync(stray.keyFile, key);
  const strayPrint = opensslFingerprint(stray.certFile);
  t.not((await servedWithin(sidecar.port, strayPrint, performance.now())).ms, -1, 'its key arrives: served');
  t.equal(sidecar.errors().length, BREAKERS.length, 'no error line for any of that');
  sidecar.child.kill('SIGTERM');
  t.same(await sidecar.exit, { code: 0, signal: null });
});
