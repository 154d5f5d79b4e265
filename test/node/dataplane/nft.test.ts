// Running nft and conntrack: a run that never returns is killed at its time
// limit and the change fails with one line, instead of holding every later
// transaction of the node behind it. The programs here are shell scripts on a
// PATH of the test's own that hang as a wedged nft or conntrack would.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { isHarborError } from '../../../src/errors/index.js';
import { deleteUdpFlows, runNft } from '../../../src/node/dataplane/nft.js';

async function hangingPrograms(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'harbor-nft-'));
  const marker = join(dir, 'started');
  for (const name of ['nft', 'conntrack']) {
    // Says it started, then hangs (exec: the shell is the process that gets killed).
    await writeFile(join(dir, name), `#!/bin/sh\necho "$$" >> ${marker}\nexec sleep 60\n`);
    await chmod(join(dir, name), 0o755);
  }
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved}`;
  t.teardown(async () => {
    process.env.PATH = saved;
    await rm(dir, { recursive: true, force: true });
  });
  return marker;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('an nft run that never returns: killed at the time limit, the change fails in one line', async (t) => {
  const marker = await hangingPrograms(t);
  const started = Date.now();
  const error = await runNft('add table ip harbor\n', false, 300).catch((e: unknown) => e);
  t.ok(isHarborError(error) && error.code === 'E_DATAPLANE', 'E_DATAPLANE');
  t.equal((error as Error).message, 'nft did not finish within 300 ms');
  t.ok(Date.now() - started < 5000, 'not held until the program would have ended');
  const checkError = await runNft('add table ip harbor\n', true, 300).catch((e: unknown) => e);
  t.equal((checkError as Error).message, 'nft --check did not finish within 300 ms');
  const pids = (await readFile(marker, 'utf8')).trim().split('\n').map(Number);
  t.equal(pids.length, 2);
  t.notOk(pids.some(alive), 'the hung programs are gone');
});

t.test('a conntrack run that never returns fails; it is not taken for "nothing matched"', async (t) => {
  await hangingPrograms(t);
  const error = await deleteUdpFlows('ip', 5000, '127.0.0.1', 6000, 300).catch((e: unknown) => e);
  t.ok(error instanceof Error, `rejected (${String(error)})`);
  t.match((error as Error).message, /^conntrack -D .*did not finish within 300 ms$/);
});
