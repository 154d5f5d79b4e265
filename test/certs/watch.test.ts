import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { ReloadablePair } from '../../src/certs/reloadable.js';
import { watchPair } from '../../src/certs/watch.js';
import { createServiceStats } from '../../src/stats/index.js';
import { captureLogger, OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-watch-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const ssl = new OpensslFactory(root);
const PAIRS = [0, 1, 2, 3].map((i) => ssl.pair(`p${i}.test`, { type: 'ec' }, { days: 100 + i }));
const fp = PAIRS.map((p) => opensslFingerprint(p.certFile));
const P = (i: number) => PAIRS[i]!;

/** Waits for a condition, bounded in time; the assertion is the condition, not the time. */
async function until(condition: () => boolean, limitMs = 8000): Promise<boolean> {
  const end = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

let n = 0;
interface Setup {
  readonly dir: string;
  readonly appRoot: string;
  certsDir?: string;
  pollMs?: number;
  fileEvents?: boolean;
  waitForPair?: boolean;
}

async function start(t: Test, setup: Setup) {
  const log = captureLogger();
  const stats = createServiceStats();
  const pair = ReloadablePair.create({
    source: { appRoot: setup.appRoot, certsDir: setup.certsDir, service: 'shop-https' },
    logger: log.logger,
    stats,
    waitForPair: setup.waitForPair,
  });
  const watcher = watchPair(pair, {
    logger: log.logger,
    debounceMs: 100,
    pollMs: setup.pollMs ?? 60_000,
    fileEvents: setup.fileEvents,
  });
  t.teardown(async () => {
    pair.close();
    await watcher.close();
  });
  await watcher.ready();
  const fingerprint = () => pair.current()?.inspection.fingerprint256;
  return { pair, watcher, stats, fingerprint, ...log };
}

function freshApp(): Setup {
  const appRoot = join(root, `app${++n}`);
  const dir = join(appRoot, 'certs');
  mkdirSync(dir, { recursive: true });
  return { dir, appRoot };
}

function put(dir: string, name: string, pair: { certFile: string; keyFile: string }): void {
  copyFileSync(pair.keyFile, join(dir, `${name}.key`));
  copyFileSync(pair.certFile, join(dir, `${name}.crt`));
}

t.test('each way of replacing files triggers a reload to the new pair, with no error', async (t) => {
  const s = freshApp();
  put(s.dir, 'harbor', P(0));
  const w = await start(t, s);
  t.equal(w.fingerprint(), fp[0]);
  const crt = join(s.dir, 'harbor.crt');
  const key = join(s.dir, 'harbor.key');

  // Overwrite in place.
  writeFileSync(key, read(P(1).keyFile));
  writeFileSync(crt, read(P(1).certFile));
  t.ok(await until(() => w.fingerprint() === fp[1]), 'overwrite in place');

  // Write a temporary file, then rename it over the old one.
  writeFileSync(`${key}.tmp`, read(P(2).keyFile));
  writeFileSync(`${crt}.tmp`, read(P(2).certFile));
  renameSync(`${key}.tmp`, key);
  renameSync(`${crt}.tmp`, crt);
  t.ok(await until(() => w.fingerprint() === fp[2]), 'temp + rename');

  // Delete, then create.
  rmSync(crt);
  rmSync(key);
  await sleep(50);
  put(s.dir, 'harbor', P(3));
  t.ok(await until(() => w.fingerprint() === fp[3]), 'delete then create');

  // Key first, certificate 300 ms later; then the reverse.
  writeFileSync(key, read(P(0).keyFile));
  await sleep(300);
  writeFileSync(crt, read(P(0).certFile));
  t.ok(await until(() => w.fingerprint() === fp[0]), 'key before certificate');
  writeFileSync(crt, read(P(1).certFile));
  await sleep(300);
  writeFileSync(key, read(P(1).keyFile));
  t.ok(await until(() => w.fingerprint() === fp[1]), 'certificate before key');

  t.same(w.errors(), [], 'no error on the way');
  t.ok(w.stats.reloadsSucceeded >= 5);
});

t.test('a per-service pair appearing and disappearing switches pairs', async (t) => {
  const s = freshApp();
  put(s.dir, 'harbor', P(0));
  const w = await start(t, s);
  put(s.dir, 'shop-https', P(1));
  t.ok(await until(() => w.fingerprint() === fp[1]), 'per-service pair appeared');
  t.equal(w.pair.current()?.reason, 'per-service pair');
  rmSync(join(s.dir, 'shop-https.crt'));
  rmSync(join(s.dir, 'shop-https.key'));
  t.ok(await until(() => w.fingerprint() === fp[0]), 'per-service pair gone: back to harbor.crt');
  t.same(w.errors(), []);
});

t.test('Kubernetes-style secret volume: ..data symlink swapped by rename, three times', async (t) => {
  const secret = join(root, `secret${++n}`);
  mkdirSync(secret);
  let generation = 0;
  const publish = (pair: { certFile: string; keyFile: string }) => {
    const data = join(secret, `..2026_11_24_00_00_0${++generation}`);
    mkdirSync(data);
    copyFileSync(pair.keyFile, join(data, 'harbor.key'));
    copyFileSync(pair.certFile, join(data, 'harbor.crt'));
    symlinkSync(data.split('/').pop()!, join(secret, '..data_tmp'));
    renameSync(join(secret, '..data_tmp'), join(secret, '..data'));
    return data;
  };
  let old = publish(P(0));
  symlinkSync('..data/harbor.crt', join(secret, 'harbor.crt'));
  symlinkSync('..data/harbor.key', join(secret, 'harbor.key'));
  const w = await start(t, { dir: secret, appRoot: root, certsDir: secret });
  t.equal(w.fingerprint(), fp[0]);
  for (const i of [1, 2, 3]) {
    const next = publish(P(i));
    rmSync(old, { recursive: true }); // the kubelet removes the old generation afterwards
    old = next;
    t.ok(
      await until(() => w.fingerprint() === fp[i]),
      `swap ${i} seen through file events (the poll is off)`,
    );
    await w.watcher.ready();
    t.ok(w.watcher.watching.includes(next), 're-armed on the new data folder');
  }
  t.same(w.errors(), []);
});

t.test(
  'a folder that does not exist at start: waiting, then serving once a valid pair appears',
  async (t) => {
    const appRoot = join(root, `late${++n}`);
    mkdirSync(appRoot);
    const w = await start(t, { dir: '', appRoot, waitForPair: true });
    t.equal(w.pair.state, 'waiting');
    t.ok(w.watcher.watching.includes(appRoot), 'watching the nearest existing ancestor');
    const dir = join(appRoot, 'certs');
    mkdirSync(dir);
    await sleep(150);
    put(dir, 'harbor', P(2));
    t.ok(await until(() => w.fingerprint() === fp[2]), 'serving the pair that appeared');
    t.equal(w.pair.state, 'serving');
    t.ok(
      w.lines.some((l) => /starts serving certs\/harbor.crt/.test(l.msg)),
      'and says so',
    );
    t.same(w.errors(), []);
  },
);

t.test('the certs folder deleted and made again: later changes are still seen at once', async (t) => {
  // Issue 9, item 21: the watch stayed on the deleted folder's inode, and only the poll (here
  // a minute, so it cannot help) saw later changes.
  const s = freshApp();
  put(s.dir, 'harbor', P(0));
  const w = await start(t, { ...s, pollMs: 60_000 });
  rmSync(s.dir, { recursive: true, force: true });
  mkdirSync(s.dir);
  put(s.dir, 'harbor', P(1));
  t.ok(await until(() => w.fingerprint() === fp[1], 30_000), 'the pair in the new folder is served');
  await w.watcher.ready();
  put(s.dir, 'harbor', P(2));
  t.ok(await until(() => w.fingerprint() === fp[2], 30_000), 'and a later change in it too');
  t.same(w.errors(), []);
});

t.test('the stat poll alone catches a change (file events off)', async (t) => {
  const s = freshApp();
  put(s.dir, 'harbor', P(0));
  const w = await start(t, { ...s, fileEvents: false, pollMs: 200 });
  put(s.dir, 'harbor', P(1));
  t.ok(await until(() => w.fingerprint() === fp[1]), 'poll saw the new files');
  t.same(w.errors(), []);
});

t.test(
  'a broken swap through the watcher: the old pair stays, one error, retried on the next change',
  async (t) => {
    const s = freshApp();
    put(s.dir, 'harbor', P(0));
    const w = await start(t, { ...s, pollMs: 300 });
    copyFileSync(P(1).keyFile, join(s.dir, 'harbor.key')); // a key that does not match the certificate
    t.ok(await until(() => w.errors().length > 0), 'the refusal is logged');
    await sleep(1000); // events and several polls later...
    t.equal(w.errors().length, 1, '...still exactly one error');
    t.match(w.errors()[0], { code: 'E_RELOAD', reason: 'E_KEY_MISMATCH' });
    t.equal(w.fingerprint(), fp[0], 'the old pair keeps serving');
    t.equal(w.stats.reloadsFailed, 1);
    copyFileSync(P(1).certFile, join(s.dir, 'harbor.crt'));
    t.ok(await until(() => w.fingerprint() === fp[1]), 'the next change completes the pair');
    t.match(w.pair.lastReload, { ok: true, changed: true });
  },
);

t.test('close leaves no watcher or timer behind', async (t) => {
  const watching = () =>
    process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap' || r === 'Timeout').length;
  const before = watching();
  const s = freshApp();
  put(s.dir, 'harbor', P(0));
  const log = captureLogger();
  const pair = ReloadablePair.create({
    source: { appRoot: s.appRoot, service: 'x-https' },
    logger: log.logger,
  });
  const watcher = watchPair(pair, { logger: log.logger, pollMs: 100 });
  await watcher.ready();
  put(s.dir, 'harbor', P(1));
  await sleep(50); // a debounce timer is pending now
  const during = watching();
  await watcher.close();
  pair.close();
  await sleep(50);
  t.ok(during > before, 'the watcher holds fs watches and timers while open');
  const after = watching();
  t.ok(after <= before, `none left after close (${after} <= ${before})`);
  t.ok(after < during);
});
