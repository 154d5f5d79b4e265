// The claim on a network namespace's data plane (src/node/dataplane/owner.ts),
// with real processes: a second claimant is refused naming the holder's pid, the
// claim goes the moment its holder is killed, and release lets another take it.
// Each test uses an abstract name of its own, so that other test files running
// nodes in this namespace at the same time are not disturbed.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { isHarborError } from '../../../src/errors/index.js';
import { claimDataplane, dataplaneHolder } from '../../../src/node/dataplane/owner.js';
import { exited, waitForOutput } from '../../helpers/cli.js';

const OWNER = fileURLToPath(new URL('../../../dist/node/dataplane/owner.js', import.meta.url));

let names = 0;
const uniqueName = (): string => `\0harbor-test/${process.pid}/${++names}`;

/** A process that holds the claim `name` until killed. */
async function holder(t: Test, name: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { claimDataplane } = await import(${JSON.stringify(OWNER)});
       await claimDataplane(${JSON.stringify(name)});
       process.stdout.write('claimed\\n');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /claimed/);
  return child;
}

t.test('a claim held by another process: E_DATAPLANE naming its pid and command', async (t) => {
  const name = uniqueName();
  const child = await holder(t, name);
  t.equal(await dataplaneHolder(name), child.pid);
  const error = await claimDataplane(name).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isHarborError(error) && error.code === 'E_DATAPLANE', String(error));
  t.match(
    (error as Error).message,
    new RegExp(`another harbor-node, pid ${child.pid} \\(.*--input-type=module`),
  );
  t.match((error as Error).message, /--dataplane userspace/);
  // Killed, it lets go at once: no stale claim to wait out.
  child.kill('SIGKILL');
  await exited(child);
  t.equal(await dataplaneHolder(name), null);
  const claim = await claimDataplane(name);
  await claim.release();
});

t.test('released, a claim is free for the next node', async (t) => {
  const name = uniqueName();
  t.equal(await dataplaneHolder(name), null, 'nobody holds it yet');
  const claim = await claimDataplane(name);
  t.equal(await dataplaneHolder(name), process.pid);
  await claim.release();
  t.equal(await dataplaneHolder(name), null);
  const again = await claimDataplane(name);
  await again.release();
});
