import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ReloadablePair } from '../../src/certs/reloadable.js';
import { watchPair } from '../../src/certs/watch.js';
import { createServiceStats } from '../../src/stats/index.js';
import { captureLogger, OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';

// Broken swaps through the real trigger path: file events, debounce and the poll all fire, and still each
// broken state is logged and counted once while the old pair keeps serving.

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-watch-broken-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const ssl = new OpensslFactory(root);
const GOOD = ssl.pair('good.test', { type: 'ec' }, { days: 100 });
const OTHER = ssl.pair('other.test', { type: 'ec' }, { days: 100 });
const EXPIRED = ssl.pair('old.test', {}, { startDate: '20200101000000Z', endDate: '20200201000000Z' });
const GOOD_FP = opensslFingerprint(GOOD.certFile);

async function until(condition: () => boolean, limitMs = 8000): Promise<boolean> {
  const end = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

t.test('mismatched key, garbage, truncated, half pair, expired: old pair kept, one error each', async (t) => {
  const appRoot = join(root, 'app');
  const dir = join(appRoot, 'certs');
  mkdirSync(dir, { recursive: true });
  const crt = join(dir, 'shop-https.crt');
  const key = join(dir, 'shop-https.key');
  const putGood = () => {
    copyFileSync(GOOD.keyFile, key);
    copyFileSync(GOOD.certFile, crt);
  };
  putGood();
  const { logger, errors } = captureLogger();
  const stats = createServiceStats();
  const pair = ReloadablePair.create({
    source: { appRoot, service: 'shop-https' },
    logger,
    stats,
    settleMs: 300,
  });
  const watcher = watchPair(pair, { logger, debounceMs: 100, pollMs: 250 });
  t.teardown(async () => {
    pair.close();
    await watcher.close();
  });
  await watcher.ready();

  const breakers: [string, () => void, string][] = [
    ['mismatched key', () => copyFileSync(OTHER.keyFile, key), 'E_KEY_MISMATCH'],
    ['garbage', () => writeFileSync(crt, 'this is not a certificate\n'), 'E_CERT_PARSE'],
    ['truncated', () => writeFileSync(crt, read(GOOD.certFile).slice(0, 300)), 'E_CERT_PARSE'],
    ['half pair', () => rmSync(key), 'W_HALF_PAIR'],
    [
      'expired',
      () => {
        copyFileSync(EXPIRED.keyFile, key);
        copyFileSync(EXPIRED.certFile, crt);
      },
      'E_CERT_EXPIRED',
    ],
  ];
  let expected = 0;
  for (const [what, breakIt, reason] of breakers) {
    const mark = new Date();
    putGood();
    t.ok(await until(() => (pair.lastReload?.at ?? mark) > mark), `${what}: good pair back`);
    await sleep(300);
    breakIt();
    expected++;
    t.ok(await until(() => errors().length === expected), `${what}: refused`);
    await sleep(700); // more events and a few polls
    t.equal(errors().length, expected, `${what}: exactly one error`);
    t.match(errors().at(-1), { code: 'E_RELOAD', reason }, what);
    t.equal(stats.reloadsFailed, expected, `${what}: counted once`);
    t.equal(pair.current()?.inspection.fingerprint256, GOOD_FP, `${what}: the old pair keeps serving`);
  }
  t.equal(stats.reloadsSucceeded, 0, 'the good pair was never replaced');
});
