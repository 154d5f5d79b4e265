import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { runSidecar } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-check-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);

/** An app root with certs/ holding the given files (name -> source path). */
function appWith(files: Record<string, string>): string {
  const app = mkdtempSync(join(root, 'app-'));
  mkdirSync(join(app, 'certs'));
  for (const [name, source] of Object.entries(files)) copyFileSync(source, join(app, 'certs', name));
  return app;
}

const services = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    [name]: {
      int_port: 4100,
      port: 35001,
      hostname: 'localhost',
      ext_hostname: 'ports.example.com',
      ...extra,
    },
    'udp-stats': { int_port: 4101, port: 35002 },
  });

const check = (app: string, name: string, args: string[] = [], env: Record<string, string> = {}) =>
  runSidecar(['check', ...args], {
    STACKATO_SERVICES: services(name),
    PORT: '8080',
    HARBOR_APP_ROOT: app,
    ...env,
  });

t.test(
  'a good pair: every service listed with what users reach, the pair and why, its inspection',
  async (t) => {
    const pair = factory.pair(
      'ports.example.com',
      { type: 'ec' },
      { hosts: ['ports.example.com', 'localhost'] },
    );
    const app = appWith({ 'shop-https.crt': pair.certFile, 'shop-https.key': pair.keyFile });
    const result = check(app, 'shop-https');
    t.equal(result.status, 0, result.stdout + result.stderr);
    t.match(result.stdout, /shop-https {2}https {2}int_port 4100 {2}\(\$STACKATO_HARBOR_SHOP_HTTPS\)/);
    t.match(result.stdout, 'users reach: ports.example.com:35001');
    t.match(result.stdout, 'backend: 127.0.0.1:8080');
    t.match(result.stdout, /pair: certs\/shop-https.crt \+ certs\/shop-https.key \(per-service pair\)/);
    t.match(result.stdout, /key: EC P-256, matches the certificate; chain of 1 in order/);
    t.match(result.stdout, /udp-stats {2}udp {2}int_port 4101/);
    t.match(result.stdout, /warning: .*self-signed/);
    const json = JSON.parse(check(app, 'shop-https', ['--json']).stdout);
    t.equal(json.ok, true);
    t.equal(json.services[0].inspection.keyMatches, true);
    t.equal(json.services[0].pair.reason, 'per-service pair');
  },
);

t.test('the fallback harbor pair, RSA from openssl, PKCS#1, with a half pair reported', async (t) => {
  const pair = factory.pair('localhost', { type: 'rsa', format: 'pkcs1' }, { hosts: ['localhost'] });
  const app = appWith({
    'harbor.crt': pair.certFile,
    'harbor.key': pair.keyFile,
    'shop-https.crt': pair.certFile,
  });
  const result = check(app, 'shop-https');
  t.equal(result.status, 0, result.stdout);
  t.match(result.stdout, /pair: certs\/harbor.crt \+ certs\/harbor.key \(fallback harbor pair\)/);
  t.match(
    result.stdout,
    /warning: service shop-https: certs\/shop-https.crt has no certs\/shop-https.key beside it/,
  );
  t.match(result.stdout, /RSA 2048/);
});

t.test('an encrypted key needs HARBOR_KEY_PASSPHRASE, which never appears in output', async (t) => {
  const pair = factory.pair(
    'localhost',
    { type: 'ec', passphrase: 'open sesame 42' },
    { hosts: ['localhost'] },
  );
  const app = appWith({ 'harbor.crt': pair.certFile, 'harbor.key': pair.keyFile });
  const without = check(app, 'shop-https');
  t.equal(without.status, 1);
  t.match(without.stdout, /E_KEY_PARSE/);
  const withIt = check(app, 'shop-https', [], { HARBOR_KEY_PASSPHRASE: 'open sesame 42' });
  t.equal(withIt.status, 0, withIt.stdout);
  const wrong = check(app, 'shop-https', [], { HARBOR_KEY_PASSPHRASE: 'wrong-guess-99' });
  t.equal(wrong.status, 1);
  for (const r of [without, withIt, wrong]) {
    t.notMatch(r.stdout + r.stderr, /open sesame 42|wrong-guess-99/);
  }
});

t.test(
  'every problem at once, exit 1: mismatched key, expired, chain out of order, no backend',
  async (t) => {
    const a = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost'] });
    const b = factory.pair('localhost', { type: 'rsa' }, { hosts: ['localhost'] });
    const expired = factory.pair(
      'localhost',
      { type: 'ec' },
      { hosts: ['localhost'], startDate: '20200101000000Z', endDate: '20210101000000Z' },
    );
    const { leaf, intermediate } = factory.chain('localhost');
    const outOfOrder = join(root, 'out-of-order.crt');
    writeFileSync(outOfOrder, read(intermediate.certFile) + read(leaf.certFile));
    const app = appWith({
      'a-https.crt': a.certFile,
      'a-https.key': b.keyFile,
      'b-https.crt': expired.certFile,
      'b-https.key': expired.keyFile,
      'c-https.crt': outOfOrder,
      'c-https.key': leaf.keyFile,
    });
    const env = {
      STACKATO_SERVICES: JSON.stringify({
        'a-https': { int_port: 4100 },
        'b-https': { int_port: 4101 },
        'c-https': { int_port: 4102 },
      }),
      HARBOR_APP_ROOT: app,
    };
    const result = runSidecar(['check'], env);
    t.equal(result.status, 1);
    t.match(
      result.stdout,
      /error: certs\/a-https.key does not match certs\/a-https.crt .*\[E_KEY_MISMATCH\]/,
    );
    t.match(result.stdout, /error: .*b-https.crt .*expired.*\[E_CERT_EXPIRED\]/);
    t.match(result.stdout, /\[E_CHAIN_ORDER\]/);
    t.match(result.stdout, /error: service "a-https": no backend to forward HTTPS to.*\[E_BACKEND\]/);
    const json = JSON.parse(runSidecar(['check', '--json'], env).stdout);
    t.equal(json.ok, false);
    t.ok(json.problems.length >= 6);
  },
);

t.test('a chain in order (leaf, intermediate) passes', async (t) => {
  const { leaf, intermediate } = factory.chain('localhost');
  const bundle = join(root, 'bundle.crt');
  writeFileSync(bundle, read(leaf.certFile) + read(intermediate.certFile));
  const app = appWith({ 'harbor.crt': bundle, 'harbor.key': leaf.keyFile });
  const result = check(app, 'x-https');
  t.match(result.stdout, /chain of 2 in order/);
  t.notMatch(result.stdout, /E_CHAIN_ORDER/);
});

t.test('no pair, --require with no service, and warnings for names and expiry', async (t) => {
  const empty = mkdtempSync(join(root, 'empty-'));
  const none = check(empty, 'shop-https');
  t.equal(none.status, 1);
  t.match(none.stdout, /E_NO_PAIR/);
  t.equal(runSidecar(['check'], { HARBOR_APP_ROOT: empty }).status, 0);
  const required = runSidecar(['check', '--require'], { HARBOR_APP_ROOT: empty });
  t.equal(required.status, 1);
  t.match(required.stdout, /no Harbor service found .*\[E_NO_SERVICE\]/);
  const soon = factory.pair('other.example', { type: 'ec' }, { hosts: ['other.example'], days: 10 });
  const app = appWith({ 'harbor.crt': soon.certFile, 'harbor.key': soon.keyFile });
  const warned = check(app, 'shop-https');
  t.equal(warned.status, 0);
  t.match(warned.stdout, /\[W_CERT_EXPIRING\]/);
  t.match(warned.stdout, /\[W_SAN_MISMATCH\]/);
  t.notMatch(check(app, 'shop-https', ['--warn-days', '5']).stdout, /W_CERT_EXPIRING/);
});

t.test('a configuration that cannot be read exits 78, still listing everything', async (t) => {
  const result = runSidecar(['check'], { STACKATO_SERVICES: '{' });
  t.equal(result.status, 78);
  t.match(result.stdout, /STACKATO_SERVICES is not valid JSON/);
});

t.test('a timeout no timer can wait stops run and check with exit 78, naming the flag', async (t) => {
  const debugShell = [
    '--service',
    'shop-https',
    '--int-port',
    '4443',
    '--backend',
    '127.0.0.1:1',
    '--admin',
    'off',
  ];
  // 1000h is past 2^31-1 ms: Node would fire the timer after 1 ms and cut slow clients at once.
  const run = runSidecar(['run', ...debugShell, '--idle-timeout', '1000h']);
  t.equal(run.status, 78);
  t.match(
    run.stderr,
    /^error: --idle-timeout must be at most 596h \(about 24\.8 days, the longest a timer can wait\), not "1000h" \[E_SETTING\]\n$/m,
  );
  t.notMatch(run.stderr, /TimeoutOverflowWarning/);
  const check = runSidecar(['check', ...debugShell], { HARBOR_HEADER_TIMEOUT: '0' });
  t.equal(check.status, 78);
  t.match(check.stdout, /HARBOR_HEADER_TIMEOUT must be longer than 0, not "0" \[E_SETTING\]/);
});
