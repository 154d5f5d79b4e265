import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { candidateFiles, resolveCertsDir, selectPair } from '../../src/certs/select.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-select-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A fresh app root holding the given files (contents do not matter to selection). */
function app(files: string[]): string {
  const dir = join(root, `app${++n}`);
  mkdirSync(dir);
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), 'x');
  }
  return dir;
}

t.test('folder: explicit, else certs/ if it exists, else cert/', async (t) => {
  const both = app(['certs/harbor.crt', 'cert/harbor.crt']);
  t.same(resolveCertsDir({ appRoot: both }), {
    dir: join(both, 'certs'),
    reason: 'certs folder',
    exists: true,
    candidates: [join(both, 'certs'), join(both, 'cert')],
  });
  const certOnly = app(['cert/harbor.crt']);
  t.equal(resolveCertsDir({ appRoot: certOnly }).dir, join(certOnly, 'cert'));
  t.equal(resolveCertsDir({ appRoot: certOnly }).reason, 'cert folder');
  const none = app([]);
  t.match(resolveCertsDir({ appRoot: none }), { dir: join(none, 'cert'), exists: false });
  t.match(resolveCertsDir({ appRoot: both, certsDir: '/elsewhere/tls' }), {
    dir: '/elsewhere/tls',
    reason: 'explicit',
    exists: false,
    candidates: ['/elsewhere/tls'],
  });
  t.equal(
    resolveCertsDir({ appRoot: both, certsDir: 'cert' }).dir,
    join(both, 'cert'),
    'relative to the app root',
  );
});

t.test('per-service pair first, then harbor pair', async (t) => {
  const a = app(['certs/shop-https.crt', 'certs/shop-https.key', 'certs/harbor.crt', 'certs/harbor.key']);
  t.match(selectPair({ appRoot: a, service: 'shop-https' }), {
    certFile: join(a, 'certs/shop-https.crt'),
    keyFile: join(a, 'certs/shop-https.key'),
    reason: 'per-service pair',
    warnings: [],
  });
  t.match(selectPair({ appRoot: a, service: 'other-https' }), {
    certFile: join(a, 'certs/harbor.crt'),
    keyFile: join(a, 'certs/harbor.key'),
    reason: 'fallback harbor pair',
    warnings: [],
  });
});

t.test('the seed example: one file of each of two services is two half pairs', async (t) => {
  const a = app([
    'certs/harbor-https-custom-1.crt',
    'certs/harbor-https-custom-2.key',
    'certs/harbor.crt',
    'certs/harbor.key',
  ]);
  const one = selectPair({ appRoot: a, service: 'harbor-https-custom-1' });
  t.equal(one.reason, 'fallback harbor pair');
  t.same(one.halfPair, {
    present: join(a, 'certs/harbor-https-custom-1.crt'),
    missing: join(a, 'certs/harbor-https-custom-1.key'),
  });
  t.same(one.warnings, [
    {
      code: 'W_HALF_PAIR',
      message:
        'service harbor-https-custom-1: certs/harbor-https-custom-1.crt has no certs/harbor-https-custom-1.key beside it; using certs/harbor.crt and certs/harbor.key',
    },
  ]);
  const two = selectPair({ appRoot: a, service: 'harbor-https-custom-2' });
  t.equal(two.warnings[0]?.code, 'W_HALF_PAIR');
  t.match(two.warnings[0]?.message, 'certs/harbor-https-custom-2.key has no certs/harbor-https-custom-2.crt');
});

t.test('no pair at all: E_NO_PAIR says what was looked for and where', async (t) => {
  const half = app(['certs/shop-https.crt', 'certs/harbor.key']);
  t.throws(() => selectPair({ appRoot: half, service: 'shop-https' }), {
    code: 'E_NO_PAIR',
    message:
      'service shop-https: no certificate pair in certs (looked for shop-https.crt + shop-https.key, then harbor.crt + harbor.key); certs/shop-https.crt has no partner; certs/harbor.key has no partner',
  });
  const none = app([]);
  t.throws(() => selectPair({ appRoot: none, service: 'shop-https' }), {
    code: 'E_NO_PAIR',
    message:
      'service shop-https: no certificate pair: neither certs nor cert exists (looked for shop-https.crt + shop-https.key, then harbor.crt + harbor.key)',
  });
  t.throws(
    () => selectPair({ appRoot: none, service: '../evil' }),
    { code: 'E_NO_PAIR' },
    'odd names never become paths',
  );
});

t.test('cert/ is used when certs/ is absent; certs/ wins when both exist', async (t) => {
  const a = app(['cert/harbor.crt', 'cert/harbor.key']);
  t.equal(selectPair({ appRoot: a, service: 's-https' }).certFile, join(a, 'cert/harbor.crt'));
  const b = app(['cert/harbor.crt', 'cert/harbor.key', 'certs/harbor.crt', 'certs/harbor.key']);
  t.equal(selectPair({ appRoot: b, service: 's-https' }).certFile, join(b, 'certs/harbor.crt'));
});

t.test('client CA: explicit, else S.ca, else harbor.ca', async (t) => {
  const a = app(['certs/harbor.crt', 'certs/harbor.key', 'certs/s-https.ca', 'certs/harbor.ca']);
  t.match(selectPair({ appRoot: a, service: 's-https' }), {
    caFile: join(a, 'certs/s-https.ca'),
    caReason: 'per-service CA',
  });
  t.match(selectPair({ appRoot: a, service: 'x-https' }), {
    caFile: join(a, 'certs/harbor.ca'),
    caReason: 'fallback harbor CA',
  });
  t.match(selectPair({ appRoot: a, service: 's-https', clientCa: '/etc/ca.pem' }), {
    caFile: '/etc/ca.pem',
    caReason: 'explicit client CA',
  });
  const b = app(['certs/harbor.crt', 'certs/harbor.key']);
  t.equal(selectPair({ appRoot: b, service: 's-https' }).caFile, undefined);
});

t.test('candidate files cover both folders, both names, and the CA', async (t) => {
  const a = app([]);
  const files = candidateFiles({ appRoot: a, service: 's-https', clientCa: 'ca.pem' });
  t.ok(files.includes(join(a, 'certs/s-https.key')));
  t.ok(files.includes(join(a, 'cert/harbor.crt')));
  t.ok(files.includes(join(a, 'certs/harbor.ca')));
  t.ok(files.includes(join(a, 'ca.pem')));
});
