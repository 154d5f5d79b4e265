import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadPair, validatePair } from '../../src/certs/validate.js';
import { isHarborError } from '../../src/errors/index.js';
import { OpensslFactory, openssl, opensslFingerprint, read } from '../fixtures/certs-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-validate-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const ssl = new OpensslFactory(root);
const app = join(root, 'app');
mkdirSync(join(app, 'certs'), { recursive: true });
const now = () => new Date();

/** Puts files into app/certs under the service's name, as a user would. */
function install(name: string, certFile: string, keyFile: string) {
  const crt = join(app, 'certs', `${name}.crt`);
  const key = join(app, 'certs', `${name}.key`);
  copyFileSync(certFile, crt);
  copyFileSync(keyFile, key);
  return { certFile: crt, keyFile: key };
}

const codes = (problems: readonly { code: string }[]) => problems.map((p) => p.code);

t.test('RSA and ECDSA pairs in every key format load and inspect', async (t) => {
  const cases = [
    { type: 'rsa', format: 'pkcs1', want: 'RSA 2048', begin: 'BEGIN RSA PRIVATE KEY' },
    { type: 'rsa', format: 'pkcs8', want: 'RSA 2048', begin: 'BEGIN PRIVATE KEY' },
    { type: 'ec', format: 'sec1', want: 'EC P-256', begin: 'BEGIN EC PRIVATE KEY' },
    { type: 'ec', format: 'pkcs8', want: 'EC P-256', begin: 'BEGIN PRIVATE KEY' },
  ] as const;
  for (const c of cases) {
    const made = ssl.pair(
      'shop.example.com',
      { type: c.type, format: c.format },
      {
        hosts: ['shop.example.com', '*.shop.example.com', '127.0.0.1', '::1'],
      },
    );
    t.match(read(made.keyFile), c.begin, `openssl wrote a ${c.format} key`);
    const files = install(`${c.type}-${c.format}-https`, made.certFile, made.keyFile);
    const result = validatePair(files, { now, displayRoot: app, hostnames: ['shop.example.com'] });
    t.same(codes(result.problems), ['W_SELF_SIGNED'], `${c.type} ${c.format}: only the self-signed warning`);
    const i = result.inspection!;
    t.equal(i.publicKey.description, c.want);
    t.equal(i.privateKey?.description, c.want);
    t.equal(i.keyMatches, true);
    t.equal(i.chainInOrder, true);
    t.equal(i.selfSigned, true);
    t.equal(i.subject, 'CN=shop.example.com');
    t.same(i.sans, { dns: ['shop.example.com', '*.shop.example.com'], ip: ['127.0.0.1', '::1'] });
    t.equal(i.fingerprint256, opensslFingerprint(made.certFile));
    t.ok(i.notAfter.getTime() > Date.now() + 29 * 86_400_000);
    t.ok(result.loaded, 'usable');
    t.match(result.loaded!.pem.key, /^-----BEGIN PRIVATE KEY-----/, 'key handed on as unencrypted PKCS#8');
    t.notOk(JSON.stringify(i).includes('PRIVATE KEY'), 'the inspection holds no key material');
    t.same(loadPair(files).inspection.fingerprint256, i.fingerprint256);
  }
});

t.test('a key from `openssl ecparam -genkey` (EC PARAMETERS block before the key) loads', async (t) => {
  const keyFile = join(root, 'ecparam.key');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-out', keyFile]);
  t.match(read(keyFile), /^-----BEGIN EC PARAMETERS-----/);
  const certFile = ssl.cert({ cn: 'ecparam.test', keyFile });
  const v = validatePair(install('ecparam-https', certFile, keyFile), { now });
  t.ok(v.loaded);
  t.equal(v.inspection?.privateKey?.description, 'EC P-256');
});

t.test('encrypted keys: PKCS#8 and legacy PEM, right, wrong and missing passphrase', async (t) => {
  for (const legacy of [false, true]) {
    const made = ssl.pair('enc.test', { type: legacy ? 'rsa' : 'ec', passphrase: 's3cret-pass', legacy });
    t.match(read(made.keyFile), legacy ? 'Proc-Type: 4,ENCRYPTED' : 'BEGIN ENCRYPTED PRIVATE KEY');
    const files = install(`enc-${legacy}-https`, made.certFile, made.keyFile);
    const ok = validatePair(files, { now, passphrase: 's3cret-pass' });
    t.ok(ok.loaded, 'right passphrase loads');
    t.equal(ok.inspection?.keyMatches, true);
    for (const passphrase of [undefined, 'wrong-pass']) {
      const bad = validatePair(files, { now, passphrase, displayRoot: app });
      t.same(
        codes(bad.problems).filter((c) => c.startsWith('E_')),
        ['E_KEY_PARSE'],
      );
      const message = bad.problems[0]!.message;
      t.match(message, `certs/enc-${legacy}-https.key`);
      t.match(message, passphrase ? /cannot decrypt/ : /no passphrase/);
      t.notMatch(message, 's3cret');
      t.notMatch(message, 'wrong-pass');
      t.ok(bad.inspection, 'the certificate is still inspected');
      t.equal(bad.inspection?.keyMatches, undefined);
      t.throws(() => loadPair(files, { passphrase }), { code: 'E_KEY_PARSE' });
    }
  }
});

t.test('a chain: in order passes, out of order is E_CHAIN_ORDER', async (t) => {
  const { root: rootCa, intermediate, leaf } = ssl.chain('chain.test');
  const inOrder = join(root, 'in-order.crt');
  writeFileSync(inOrder, read(leaf.certFile) + read(intermediate.certFile));
  const files = install('chain-https', inOrder, leaf.keyFile);
  const good = validatePair(files, { now, hostnames: ['chain.test'] });
  t.same(codes(good.problems), []);
  t.equal(good.inspection?.chain.length, 2);
  t.equal(good.inspection?.chainInOrder, true);
  t.equal(good.inspection?.selfSigned, false);
  t.equal(good.inspection?.issuer, 'CN=chain.test Intermediate CA');
  t.equal(
    good.loaded?.pem.cert,
    read(leaf.certFile) + read(intermediate.certFile),
    'chain kept as in the file',
  );

  const outOfOrder = join(root, 'out-of-order.crt');
  writeFileSync(outOfOrder, read(intermediate.certFile) + read(leaf.certFile));
  const badFiles = install('chain-bad-https', outOfOrder, leaf.keyFile);
  const bad = validatePair(badFiles, { now, displayRoot: app });
  t.ok(codes(bad.problems).includes('E_CHAIN_ORDER'));
  t.ok(codes(bad.problems).includes('E_KEY_MISMATCH'), 'the first certificate is then not the key’s');
  t.equal(bad.inspection?.chainInOrder, false);
  t.notOk(bad.loaded);

  // Leaf + root, skipping the intermediate: each is a real cert, the order is wrong.
  const skipped = join(root, 'skipped.crt');
  writeFileSync(skipped, read(leaf.certFile) + read(rootCa.certFile));
  const skip = validatePair(install('chain-skip-https', skipped, leaf.keyFile), { now, displayRoot: app });
  t.same(codes(skip.problems), ['E_CHAIN_ORDER']);
  t.match(
    skip.problems[0]!.message,
    /certs\/chain-skip-https\.crt: certificate 2 \(CN=chain.test Root CA\) did not issue certificate 1/,
  );
  t.throws(() => loadPair(install('chain-skip-https', skipped, leaf.keyFile)), { code: 'E_CHAIN_ORDER' });
});

t.test('a key of another type or another key: E_KEY_MISMATCH naming both files and both keys', async (t) => {
  const rsa = ssl.pair('mix.test', { type: 'rsa' });
  const ecKey = ssl.key({ type: 'ec' });
  const files = install('shop-https', rsa.certFile, ecKey);
  const result = validatePair(files, { now, displayRoot: app });
  t.same(codes(result.problems), ['E_KEY_MISMATCH', 'W_SELF_SIGNED']);
  t.equal(
    result.problems[0]!.message,
    'certs/shop-https.key does not match certs/shop-https.crt (key is EC P-256, certificate is RSA 2048)',
  );
  const other = install('same-type-https', rsa.certFile, ssl.key({ type: 'rsa' }));
  const same = validatePair(other, { now, displayRoot: app });
  t.match(same.problems[0]!.message, '(both RSA 2048, different keys)');
  t.throws(() => loadPair(other), { code: 'E_KEY_MISMATCH' });
});

t.test('expired, not yet valid, expiring soon: judged by the injected clock', async (t) => {
  const expired = ssl.pair('old.test', {}, { startDate: '20200101000000Z', endDate: '20200201000000Z' });
  const files = install('old-https', expired.certFile, expired.keyFile);
  const result = validatePair(files, { now, displayRoot: app });
  t.same(codes(result.problems), ['E_CERT_EXPIRED', 'W_SELF_SIGNED']);
  t.equal(result.problems[0]!.message, 'certs/old-https.crt expired on 2020-02-01T00:00:00Z');
  t.ok(result.loaded, 'an expired pair still loads (it is served anyway at start-up)');
  t.same(codes(validatePair(files, { now: () => new Date('2020-01-15T00:00:00Z') }).problems), [
    'W_CERT_EXPIRING',
    'W_SELF_SIGNED',
  ]);
  t.same(codes(validatePair(files, { now: () => new Date('2019-06-01T00:00:00Z') }).problems), [
    'E_CERT_NOT_YET_VALID',
    'W_SELF_SIGNED',
  ]);

  const future = ssl.pair('future.test', {}, { startDate: '20991201000000Z', endDate: '21000101000000Z' });
  const fut = validatePair(install('future-https', future.certFile, future.keyFile), {
    now,
    displayRoot: app,
  });
  t.same(codes(fut.problems), ['E_CERT_NOT_YET_VALID', 'W_SELF_SIGNED']);
  t.match(fut.problems[0]!.message, 'certs/future-https.crt is not valid until 2099-12-01T00:00:00Z');

  const soon = ssl.pair('soon.test', {}, { days: 10 });
  const s = validatePair(install('soon-https', soon.certFile, soon.keyFile), { now, displayRoot: app });
  t.same(codes(s.problems), ['W_CERT_EXPIRING', 'W_SELF_SIGNED']);
  t.match(s.problems[0]!.message, /certs\/soon-https.crt expires in 9 days/);
  t.same(
    codes(validatePair(install('soon-https', soon.certFile, soon.keyFile), { now, warnDays: 5 }).problems),
    ['W_SELF_SIGNED'],
  );
});

t.test('SAN coverage: wildcards one label deep, IPs against IP SANs only', async (t) => {
  const made = ssl.pair(
    'names.test',
    {},
    { hosts: ['names.test', '*.apps.example.com', '10.1.2.3', '2001:db8::1'] },
  );
  const files = install('names-https', made.certFile, made.keyFile);
  const warns = (hostnames: string[]) =>
    codes(validatePair(files, { now, hostnames }).problems).filter((c) => c === 'W_SAN_MISMATCH');
  t.same(warns(['names.test']), []);
  t.same(warns(['shop.apps.example.com']), [], 'wildcard covers one label');
  t.same(warns(['a.b.apps.example.com']), ['W_SAN_MISMATCH'], 'wildcard does not cover two labels');
  t.same(warns(['apps.example.com']), ['W_SAN_MISMATCH'], 'wildcard does not cover the bare domain');
  t.same(warns(['10.1.2.3']), []);
  t.same(warns(['2001:db8:0::1']), [], 'IPv6 compared as addresses');
  t.same(warns(['[2001:db8::1]']), []);
  t.same(warns(['10.1.2.4', 'other.test']), ['W_SAN_MISMATCH']);
  t.same(warns(['other.test', 'names.test']), [], 'one covered name is enough');
  t.same(warns([]), [], 'no names given, nothing to check');
  const msg = validatePair(files, { now, hostnames: ['x.test'], displayRoot: app }).problems.find(
    (p) => p.code === 'W_SAN_MISMATCH',
  )!.message;
  t.equal(
    msg,
    'certs/names-https.crt names none of x.test (it names DNS:names.test, DNS:*.apps.example.com, IP:10.1.2.3, IP:2001:db8::1)',
  );
});

t.test(
  'a certificate naming no host in subjectAltName, only a CN: W_NO_SAN, whatever the hostnames',
  async (t) => {
    const certFile = join(root, 'cn-only.crt');
    const keyFile = join(root, 'cn-only.key');
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '90',
      '-subj',
      '/CN=cn-only.test',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
    const files = install('cn-https', certFile, keyFile);
    for (const hostnames of [[], ['cn-only.test'], ['other.test']]) {
      const problems = validatePair(files, { now, hostnames, displayRoot: app }).problems;
      t.same(
        codes(problems).filter((c) => c.startsWith('W_') && c !== 'W_SELF_SIGNED'),
        ['W_NO_SAN'],
        hostnames.join() || 'no names',
      );
      t.equal(
        problems.find((p) => p.code === 'W_NO_SAN')?.message,
        'certs/cn-https.crt names no host in subjectAltName, only its subject (CN=cn-only.test): browsers refuse it',
      );
    }
  },
);

t.test('unreadable, empty, garbage and truncated files: one problem per file, all at once', async (t) => {
  const made = ssl.pair('broken.test');
  const dir = join(app, 'certs');
  const missing = validatePair(
    { certFile: join(dir, 'nope.crt'), keyFile: join(dir, 'nope.key') },
    { now, displayRoot: app },
  );
  t.same(codes(missing.problems), ['E_CERT_READ', 'E_CERT_READ']);
  t.equal(missing.problems[0]!.message, 'certs/nope.crt: cannot read certificate (ENOENT)');
  t.equal(missing.problems[1]!.message, 'certs/nope.key: cannot read key (ENOENT)');

  writeFileSync(join(dir, 'g.crt'), 'garbage\n');
  writeFileSync(join(dir, 'g.key'), '');
  const garbage = validatePair(
    { certFile: join(dir, 'g.crt'), keyFile: join(dir, 'g.key') },
    { now, displayRoot: app },
  );
  t.same(codes(garbage.problems), ['E_CERT_PARSE', 'E_KEY_PARSE']);
  t.equal(garbage.problems[0]!.message, 'certs/g.crt: holds no PEM CERTIFICATE block');
  t.equal(garbage.problems[1]!.message, 'certs/g.key: file is empty');

  const crt = read(made.certFile);
  const key = read(made.keyFile);
  writeFileSync(join(dir, 't.crt'), crt.slice(0, crt.length / 2));
  writeFileSync(join(dir, 't.key'), key.slice(0, key.length - 40));
  const truncated = validatePair({ certFile: join(dir, 't.crt'), keyFile: join(dir, 't.key') }, { now });
  t.same(codes(truncated.problems), ['E_CERT_PARSE', 'E_KEY_PARSE']);

  // A corrupted body inside intact BEGIN/END lines.
  writeFileSync(join(dir, 'c.crt'), crt.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA'));
  const corrupt = validatePair(
    { certFile: join(dir, 'c.crt'), keyFile: made.keyFile },
    { now, displayRoot: app },
  );
  t.same(codes(corrupt.problems), ['E_CERT_PARSE']);
  t.equal(corrupt.problems[0]!.message, 'certs/c.crt: certificate 1 of 1 does not parse');

  try {
    loadPair({ certFile: join(dir, 'g.crt'), keyFile: join(dir, 'g.key') }, { displayRoot: app });
    t.fail('should throw');
  } catch (error) {
    t.ok(isHarborError(error, 'E_CERT_PARSE'));
    t.match((error as Error).message, 'and 1 more: certs/g.key: file is empty');
  }
});

t.test('a client CA bundle is read and inspected; a bad one is E_CA_READ', async (t) => {
  const { root: rootCa, leaf } = ssl.chain('ca.test');
  const files = { ...install('ca-https', leaf.certFile, leaf.keyFile), caFile: rootCa.certFile };
  const v = validatePair(files, { now });
  t.same(
    v.inspection?.clientCa?.map((c) => c.subject),
    ['CN=ca.test Root CA'],
  );
  t.match(v.loaded?.pem.ca, /BEGIN CERTIFICATE/);
  const bad = validatePair({ ...files, caFile: join(root, 'none.ca') }, { now });
  t.ok(codes(bad.problems).includes('E_CA_READ'));
  t.throws(() => loadPair({ ...files, caFile: join(root, 'none.ca') }), { code: 'E_CA_READ' });
});

t.test('a private key others can read is warned about, with the fix; 0600 is not', async (t) => {
  const made = ssl.pair('perm.test', { type: 'ec' });
  const files = install('perm-https', made.certFile, made.keyFile);
  for (const [mode, who] of [
    [0o644, /anyone on the machine \(mode 0644\)/],
    [0o640, /its group \(mode 0640\)/],
  ] as const) {
    chmodSync(files.keyFile, mode);
    const problems = validatePair(files, { now, displayRoot: app }).problems;
    const warning = problems.find((p) => p.code === 'W_KEY_READABLE');
    t.match(warning?.message, who, `mode ${mode.toString(8)}: warned`);
    t.match(warning?.message, /certs\/perm-https\.key .*chmod 600/, 'naming the file and the fix');
  }
  chmodSync(files.keyFile, 0o600);
  t.notOk(codes(validatePair(files, { now }).problems).includes('W_KEY_READABLE'), '0600: no warning');
});

t.test(
  'weak keys and SHA-1 signatures are warned about, as clients refuse them; strong ones are not',
  async (t) => {
    const ca = ssl.key({ type: 'rsa' });
    const caCert = ssl.cert({ cn: 'Weak Test CA', keyFile: ca, ca: true });
    const issuer = { certFile: caCert, keyFile: ca };
    const small = ssl.key({ type: 'rsa', bits: 1024 });
    const rsa = ssl.key({ type: 'rsa' });
    const ec = ssl.key({ type: 'ec' });
    const cases = [
      {
        name: 'small-https',
        cert: ssl.cert({ cn: 'localhost', keyFile: small }),
        key: small,
        want: ['W_WEAK_KEY'],
      },
      {
        name: 'sha1-https',
        cert: ssl.cert({ cn: 'localhost', keyFile: rsa, issuer, digest: 'sha1' }),
        key: rsa,
        want: ['W_WEAK_SIGNATURE'],
      },
      // Its own signature is not checked by a client that trusts it.
      {
        name: 'self-sha1-https',
        cert: ssl.cert({ cn: 'localhost', keyFile: ec, digest: 'sha1' }),
        key: ec,
        want: [],
      },
      { name: 'strong-https', cert: ssl.cert({ cn: 'localhost', keyFile: rsa, issuer }), key: rsa, want: [] },
    ];
    for (const c of cases) {
      const files = install(c.name, c.cert, c.key);
      const { loaded, problems } = validatePair(files, { now, displayRoot: app });
      t.ok(loaded, `${c.name}: still loads (it serves; clients judge it)`);
      const weak = problems.filter((p) => p.code === 'W_WEAK_KEY' || p.code === 'W_WEAK_SIGNATURE');
      t.same(codes(weak), c.want, c.name);
      if (c.want[0] === 'W_WEAK_KEY') {
        t.match(
          weak[0]!.message,
          /^certs\/small-https\.crt: its key is RSA 1024, which clients .* refuse; use RSA 2048/,
        );
      }
      if (c.want[0] === 'W_WEAK_SIGNATURE') {
        t.match(
          weak[0]!.message,
          /^certs\/sha1-https\.crt: signed with sha1WithRSAEncryption, .* issued again with SHA-256/,
        );
      }
    }
    // What the warnings say of clients, said by OpenSSL itself at security level 2.
    const verify = (cert: string, trusted: string): string => {
      try {
        return openssl(['verify', '-auth_level', '2', '-CAfile', trusted, cert]);
      } catch (error) {
        return (
          String((error as { stdout?: string }).stdout ?? '') +
          String((error as { stderr?: string }).stderr ?? '')
        );
      }
    };
    const smallCert = join(app, 'certs', 'small-https.crt');
    t.match(verify(smallCert, smallCert), /key too weak|too small/i);
    t.match(verify(join(app, 'certs', 'sha1-https.crt'), caCert), /digest algorithm too weak|md too weak/i);
    t.match(verify(join(app, 'certs', 'strong-https.crt'), caCert), /: OK/);
  },
);
