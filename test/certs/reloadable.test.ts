import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createServer } from 'node:tls';
import t from 'tap';
import { type PairValue, ReloadablePair } from '../../src/certs/reloadable.js';
import { createServiceStats } from '../../src/stats/index.js';
import {
  captureLogger,
  OpensslFactory,
  openssl,
  opensslFingerprint,
  read,
} from '../fixtures/certs-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-reload-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const ssl = new OpensslFactory(root);

// Pairs made once by openssl; tests copy them into place as a user would.
const A = ssl.pair('a.test', { type: 'ec' }, { days: 200 });
const B = ssl.pair('b.test', { type: 'rsa', format: 'pkcs1' }, { days: 300 });
const C = ssl.pair('c.test', { type: 'ec', format: 'sec1' }, { days: 100 });
const EXPIRED = ssl.pair('old.test', {}, { startDate: '20200101000000Z', endDate: '20200201000000Z' });
const fp = (pair: { certFile: string }) => opensslFingerprint(pair.certFile);

let n = 0;
function appRoot(): string {
  const dir = join(root, `app${++n}`);
  mkdirSync(join(dir, 'certs'), { recursive: true });
  return dir;
}
function put(app: string, name: string, pair: { certFile: string; keyFile: string }): void {
  copyFileSync(pair.keyFile, join(app, 'certs', `${name}.key`));
  copyFileSync(pair.certFile, join(app, 'certs', `${name}.crt`));
}

function make(app: string, extra: Partial<Parameters<typeof ReloadablePair.create>[0]> = {}) {
  const log = captureLogger();
  const stats = createServiceStats();
  const changes: [PairValue, PairValue | undefined][] = [];
  const pair = ReloadablePair.create({
    source: { appRoot: app, service: 'shop-https' },
    logger: log.logger,
    stats,
    settleMs: 200,
    retryMs: 20,
    onChange: (next, prev) => changes.push([next, prev]),
    ...extra,
  });
  t.teardown(() => pair.close());
  return { pair, stats, changes, ...log };
}

/** The fingerprint a real TLS client is served, the server's context coming from pair.current() per handshake. */
async function served(pair: ReloadablePair): Promise<string> {
  const server = createServer({ SNICallback: (_name, cb) => cb(null, pair.current()!.secureContext) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false },
        () => {
          resolve(socket.getPeerCertificate().fingerprint256);
          socket.end();
        },
      );
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

t.test('create loads once; a real handshake is served from current().secureContext', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const { pair, lines } = make(app);
  t.equal(pair.state, 'serving');
  const value = pair.current()!;
  t.equal(value.reason, 'fallback harbor pair');
  t.equal(value.inspection.fingerprint256, fp(A));
  t.equal(value.valid, true);
  t.equal(await served(pair), fp(A));
  t.match(
    lines.find((l) => l.msg.includes('serving')),
    { level: 30, msg: /service shop-https: serving certs\/harbor.crt/ },
  );
  t.notOk(JSON.stringify(lines).includes('PRIVATE KEY'), 'no key material in the log');
});

t.test('a reload with nothing new is a no-op: no swap, no listener call, no count', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const { pair, stats, changes, errors } = make(app);
  const before = pair.current();
  const outcome = await pair.reload();
  t.match(outcome, { ok: true, changed: false });
  t.equal(pair.current(), before, 'same object');
  t.same(changes, []);
  t.equal(stats.reloadsSucceeded, 0);
  t.same(errors(), []);
});

t.test('a new pair is swapped in, announced to listeners and logged with old and new', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const { pair, stats, changes, lines } = make(app);
  const old = pair.current();
  put(app, 'harbor', B);
  const outcome = await pair.reload('test');
  t.match(outcome, { ok: true, changed: true });
  t.equal(pair.current()?.inspection.fingerprint256, fp(B));
  t.equal(await served(pair), fp(B), 'new handshakes get the new certificate');
  t.equal(changes.length, 1);
  t.equal(changes[0]?.[0], pair.current());
  t.equal(changes[0]?.[1], old);
  t.equal(stats.reloadsSucceeded, 1);
  t.match(pair.lastReload, { ok: true, changed: true });
  const line = lines.find((l) => l.msg.includes('certificate reloaded'))!;
  t.match(line, {
    level: 30,
    trigger: 'test',
    old: { fingerprint: fp(A), subject: 'CN=a.test', sans: ['a.test'] },
    new: { fingerprint: fp(B), subject: 'CN=b.test', sans: ['b.test'] },
  });
  t.match(line.msg, `${fp(A)} -> certs/harbor.crt`);
});

t.test('broken swaps keep the old pair and log exactly one error each', async (t) => {
  const app = appRoot();
  put(app, 'shop-https', A);
  const { pair, stats, errors } = make(app);
  const dir = join(app, 'certs');
  const crt = join(dir, 'shop-https.crt');
  const key = join(dir, 'shop-https.key');
  const breakers: [string, () => void, string][] = [
    ['mismatched key', () => copyFileSync(B.keyFile, key), 'E_KEY_MISMATCH'],
    ['garbage certificate', () => writeFileSync(crt, 'garbage'), 'E_CERT_PARSE'],
    ['truncated key', () => writeFileSync(key, read(A.keyFile).slice(0, 100)), 'E_KEY_PARSE'],
    ['half pair', () => rmSync(key), 'W_HALF_PAIR'],
    ['expired pair', () => put(app, 'shop-https', EXPIRED), 'E_CERT_EXPIRED'],
  ];
  let failures = 0;
  for (const [what, breakIt, reason] of breakers) {
    put(app, 'shop-https', A);
    breakIt();
    const outcome = await pair.reload();
    t.match(outcome, { ok: false, changed: false, error: { code: 'E_RELOAD' } }, what);
    t.equal(pair.current()?.inspection.fingerprint256, fp(A), `${what}: the old pair stays`);
    await pair.reload(); // the same broken state again, as a second watcher event would
    failures++;
    t.equal(errors().length, failures, `${what}: one error logged`);
    const last = errors().at(-1)!;
    t.match(last, { code: 'E_RELOAD', reason }, what);
    t.match(
      last.msg,
      /^service shop-https: certificate reload refused, keeping [0-9A-F:]+ \(certs\/shop-https.crt\): certs\/shop-https/,
    );
    t.equal(stats.reloadsFailed, failures, `${what}: counted once`);
    t.match(pair.lastReload, { ok: false, error: { code: 'E_RELOAD' } });
  }
  t.equal(await served(pair), fp(A));
  put(app, 'shop-https', C);
  t.match(await pair.reload(), { ok: true, changed: true }, 'the next good pair goes in');
  t.equal(stats.reloadsSucceeded, 1);
});

t.test(
  'key then certificate written 300 ms apart: the settle window waits for the pair to match',
  async (t) => {
    const app = appRoot();
    put(app, 'shop-https', A);
    const { pair, errors, changes } = make(app, { settleMs: 1000 });
    copyFileSync(B.keyFile, join(app, 'certs', 'shop-https.key'));
    const reloading = pair.reload('key written');
    await sleep(300);
    copyFileSync(B.certFile, join(app, 'certs', 'shop-https.crt'));
    t.match(await reloading, { ok: true, changed: true });
    t.equal(pair.current()?.inspection.fingerprint256, fp(B));
    t.same(errors(), [], 'no error');
    t.equal(changes.length, 1, 'one swap, no intermediate state');

    // And the reverse order.
    copyFileSync(C.certFile, join(app, 'certs', 'shop-https.crt'));
    const again = pair.reload('cert written');
    await sleep(300);
    copyFileSync(C.keyFile, join(app, 'certs', 'shop-https.key'));
    t.match(await again, { ok: true, changed: true });
    t.equal(pair.current()?.inspection.fingerprint256, fp(C));
    t.same(errors(), []);
  },
);

t.test('a broken change undone: one info line says the files are usable again', async (t) => {
  const app = appRoot();
  put(app, 'shop-https', A);
  const { pair, lines } = make(app);
  const key = join(app, 'certs', 'shop-https.key');
  copyFileSync(B.keyFile, key);
  t.match(await pair.reload(), { ok: false });
  const before = lines.length;
  put(app, 'shop-https', A);
  t.match(await pair.reload(), { ok: true, changed: false });
  const said = lines.slice(before).filter((l) => l.level >= 30);
  t.equal(said.length, 1, 'one line');
  t.match(said[0], {
    level: 30,
    msg: new RegExp(
      `^service shop-https: certificate files usable again; still serving ${fp(A)} \\(certs/shop-https.crt\\)$`,
    ),
  });
  const quiet = lines.length;
  await pair.reload();
  t.equal(lines.slice(quiet).filter((l) => l.level >= 30).length, 0, 'and only once');
});

t.test('reloads are serialised: one running, at most one queued', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const { pair } = make(app, { settleMs: 300 });
  rmSync(join(app, 'certs', 'harbor.key')); // keeps the first reload retrying for the whole window
  const first = pair.reload();
  const second = pair.reload();
  const third = pair.reload();
  t.not(first, second);
  t.equal(second, third, 'later calls share the queued reload');
  put(app, 'harbor', B);
  t.match(await first, { ok: true, changed: true }, 'the running one sees the files that appear');
  t.match(await second, { ok: true, changed: false }, 'the queued one runs after it');
  t.equal(pair.current()?.inspection.fingerprint256, fp(B));
});

t.test('a per-service pair appearing or disappearing changes which pair applies', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const { pair, changes, lines } = make(app);
  t.equal(pair.current()?.reason, 'fallback harbor pair');
  put(app, 'shop-https', B);
  t.match(await pair.reload(), { changed: true });
  t.equal(pair.current()?.reason, 'per-service pair');
  t.equal(pair.current()?.inspection.fingerprint256, fp(B));
  rmSync(join(app, 'certs', 'shop-https.crt'));
  rmSync(join(app, 'certs', 'shop-https.key'));
  t.match(await pair.reload(), { changed: true });
  t.equal(pair.current()?.reason, 'fallback harbor pair');
  t.equal(pair.current()?.inspection.fingerprint256, fp(A));
  t.equal(changes.length, 2);
  t.ok(
    lines.some((l) => l.code === 'W_CERT_EXPIRES_SOONER'),
    'A expires before B: a warning',
  );
});

t.test('an expired pair at start is served with an error; only a pair as bad may replace it', async (t) => {
  const app = appRoot();
  put(app, 'harbor', EXPIRED);
  const { pair, errors, lines } = make(app);
  t.equal(pair.state, 'serving');
  t.equal(pair.current()?.valid, false);
  t.match(errors(), [
    { code: 'E_CERT_EXPIRED', msg: /certs\/harbor.crt expired on 2020-02-01T00:00:00Z; serving it anyway/ },
  ]);
  t.equal(await served(pair), fp(EXPIRED));
  put(app, 'harbor', A);
  t.match(await pair.reload(), { ok: true, changed: true });
  t.equal(pair.current()?.valid, true);
  t.notOk(lines.some((l) => l.code === 'W_CERT_EXPIRES_SOONER'));
});

t.test('a not-yet-valid pair does not replace a valid one', async (t) => {
  const app = appRoot();
  put(app, 'harbor', A);
  const future = ssl.pair('future.test', {}, { startDate: '20991201000000Z', endDate: '21000101000000Z' });
  const { pair, errors } = make(app);
  put(app, 'harbor', future);
  t.match(await pair.reload(), { ok: false });
  t.equal(pair.current()?.inspection.fingerprint256, fp(A));
  t.match(errors(), [{ code: 'E_RELOAD', reason: 'E_CERT_NOT_YET_VALID' }]);
});

t.test('waiting for a folder that does not exist yet, then serving', async (t) => {
  const app = join(root, 'late-app');
  mkdirSync(app);
  t.throws(() => make(app), { code: 'E_NO_PAIR' }, 'without waitForPair a missing pair is fatal');
  const { pair, changes, lines, errors } = make(app, { waitForPair: true });
  t.equal(pair.state, 'waiting');
  t.equal(pair.current(), undefined);
  t.match(lines[0], { level: 30, code: 'E_NO_PAIR', msg: /waiting for a pair to appear/ });
  t.match(await pair.reload(), { ok: false, changed: false });
  t.same(errors(), [], 'still waiting is not an error');
  mkdirSync(join(app, 'cert'));
  copyFileSync(A.keyFile, join(app, 'cert', 'harbor.key'));
  copyFileSync(A.certFile, join(app, 'cert', 'harbor.crt'));
  t.match(await pair.reload('folder appeared'), { ok: true, changed: true });
  t.equal(pair.state, 'serving');
  t.equal(changes[0]?.[1], undefined);
  t.ok(lines.some((l) => /certificate pair found, starts serving cert\/harbor.crt/.test(l.msg)));
  t.equal(await served(pair), fp(A));
});

t.test('start-up refuses a broken pair; a client CA goes into the context', async (t) => {
  const app = appRoot();
  copyFileSync(A.certFile, join(app, 'certs', 'harbor.crt'));
  copyFileSync(B.keyFile, join(app, 'certs', 'harbor.key'));
  t.throws(() => make(app), { code: 'E_KEY_MISMATCH' });
  put(app, 'harbor', A);
  copyFileSync(C.certFile, join(app, 'certs', 'harbor.ca'));
  const { pair } = make(app);
  t.equal(pair.current()?.files.caFile, join(app, 'certs', 'harbor.ca'));
  t.equal(pair.current()?.contextOptions.ca, read(C.certFile));
  t.same(
    pair.current()?.inspection.clientCa?.map((c) => c.subject),
    ['CN=c.test'],
  );
});

t.test(
  'a pair OpenSSL refuses for TLS (RSA 512) is E_CERT_UNUSABLE; base context options are merged',
  async (t) => {
    const app = appRoot();
    const weakKey = join(root, 'weak.key');
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:512', '-out', weakKey]);
    put(app, 'harbor', { keyFile: weakKey, certFile: ssl.cert({ cn: 'weak.test', keyFile: weakKey }) });
    t.throws(() => make(app), {
      code: 'E_CERT_UNUSABLE',
      message: /certs\/harbor.crt: OpenSSL refused the pair for TLS \(.*key too small/,
    });
    put(app, 'harbor', A);
    const { pair, errors } = make(app, { contextOptions: { minVersion: 'TLSv1.3' } });
    t.equal(pair.current()?.contextOptions.minVersion, 'TLSv1.3');
    put(app, 'harbor', { keyFile: weakKey, certFile: ssl.cert({ cn: 'weak.test', keyFile: weakKey }) });
    t.match(await pair.reload(), { ok: false });
    t.match(errors(), [{ code: 'E_RELOAD', reason: 'E_CERT_UNUSABLE' }]);
    t.equal(pair.current()?.inspection.fingerprint256, fp(A));
  },
);

t.test(
  'a weak key is served, and the log says clients refuse it (W_WEAK_KEY), at start and on reload',
  async (t) => {
    const weak = ssl.pair('weak.test', { type: 'rsa', bits: 1024 });
    const app = appRoot();
    put(app, 'shop-https', weak);
    const { pair, lines } = make(app);
    const warned = () => lines.filter((l) => l.code === 'W_WEAK_KEY');
    t.equal(await served(pair), fp(weak), 'served: clients that allow it still connect');
    t.equal(warned().length, 1, 'warned at start');
    t.match(warned()[0]!.msg, /certs\/shop-https\.crt: its key is RSA 1024, which clients .* refuse/);
    put(app, 'shop-https', A);
    await pair.reload('test');
    put(app, 'shop-https', weak);
    await pair.reload('test');
    t.equal(warned().length, 2, 'warned again when a weak pair comes back, not for a strong one');
  },
);
