// One node per state file (src/node/state-lock.ts): a second holder waits for the
// stale time and is refused, a lock left by a killed process is taken over once
// stale, a lost lock refuses writes, and a refused node removes nothing of the
// holder's.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isHarborError } from '../../src/errors/index.js';
import { StateFile } from '../../src/node/index.js';
import { lockPathOf, lockStateFile } from '../../src/node/state-lock.js';
import { waitFor } from '../helpers/wait.js';

/** The shortest stale time proper-lockfile takes: tests wait for it, not for the 10 s default. */
const STALE_MS = 2000;

async function folder(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'harbor-lock-'));
}

const code = (error: unknown): string => (isHarborError(error) ? error.code : String(error));

t.test(
  'a held lock: the second waits the stale time, then E_STATE_IN_USE naming file and lock',
  async (t) => {
    const path = join(await folder(), 'state.json');
    const release = await lockStateFile(path, {}, STALE_MS);
    t.teardown(release);
    const waits: string[] = [];
    const started = Date.now();
    const error = await lockStateFile(path, { onWait: (lock) => waits.push(lock) }, STALE_MS).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.equal(code(error), 'E_STATE_IN_USE');
    t.match((error as Error).message, `state file ${path} is in use by another harbor-node`);
    t.match((error as Error).message, `its lock ${lockPathOf(path)}`);
    t.match((error as Error).message, /--store redis:/);
    t.same(waits, [lockPathOf(path)], 'the wait was told once');
    t.ok(
      Date.now() - started >= STALE_MS,
      'it waited at least the stale time: a stopped holder would have let go',
    );
    // Refreshed all along: the holder still holds it, and lets go on release.
    await release();
    t.notOk(existsSync(lockPathOf(path)), 'released: the lock folder is gone');
    const next = await lockStateFile(path, {}, STALE_MS);
    await next();
  },
);

t.test('the lock of a killed process is taken over once stale', async (t) => {
  const path = join(await folder(), 'state.json');
  // A real process takes the lock, then is killed: nothing lets go of it.
  const module = fileURLToPath(new URL('../../dist/node/state-lock.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { lockStateFile } = await import(${JSON.stringify(module)});
       await lockStateFile(${JSON.stringify(path)}, {}, ${STALE_MS});
       process.stdout.write('locked\\n');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  await waitFor(() => out.includes('locked'), 'the child to hold the lock');
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.ok(existsSync(lockPathOf(path)), 'the killed process left its lock');
  let waited = false;
  const release = await lockStateFile(path, { onWait: () => (waited = true) }, STALE_MS);
  t.ok(waited, 'it was not taken while fresh');
  await release();
});

t.test('a node refused for a held file removes none of the holder files', async (t) => {
  const dir = await folder();
  const path = join(dir, 'state.json');
  const holder = new StateFile(path, { lockStaleMs: STALE_MS });
  await holder.prepare();
  t.teardown(() => holder.release());
  await holder.save({ services: [] });
  // What a holder's write in progress looks like (another pid's temporary file).
  const inProgress = `.state.json.${process.pid + 1}.tmp`;
  await writeFile(join(dir, inProgress), '{}');
  const second = new StateFile(path, { lockStaleMs: STALE_MS });
  const error = await second.prepare().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal(code(error), 'E_STATE_IN_USE');
  t.ok((await readdir(dir)).includes(inProgress), "the holder's temporary file is still there");
  // Once the holder lets go, a new node takes the file and clears what was left.
  await holder.release();
  t.same(await second.prepare(), [inProgress]);
  await second.release();
});

t.test('a lock lost while held: every later write is refused (E_STATE_WRITE), none lands', async (t) => {
  const dir = await folder();
  const path = join(dir, 'state.json');
  const lost: string[] = [];
  const file = new StateFile(path, { lockStaleMs: STALE_MS });
  await file.prepare({ onLost: (error) => lost.push(error.message) });
  t.teardown(() => file.release());
  await file.save({ services: [] });
  const saved = await file.load();
  // Someone removes the lock (or takes it over): the next refresh finds it gone.
  await rm(lockPathOf(path), { recursive: true, force: true });
  await waitFor(() => lost.length > 0, 'the loss to be told');
  const service = {
    id: '3f1c1d8e-0000-4000-8000-000000000001',
    name: 'tcp-late',
    port: 35001,
    intPort: 4100,
    createdAt: '2026-01-01T00:00:00.000Z',
    instances: [],
  };
  const error = await file.save({ services: [service] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal(code(error), 'E_STATE_WRITE');
  t.match((error as Error).message, /its lock was lost/);
  t.same(await file.load(), saved, 'the file holds what it held before');
});
