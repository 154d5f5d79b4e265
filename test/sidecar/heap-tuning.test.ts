// The serving process's heap setting, observed in a real V8: once many Duplex
// streams have outlived young collections (TLS connections), short-lived
// Duplex streams (HTTP/2 streams) must not be built in old space afterwards.
// Each probe runs in a child process of its own (the setting is process-wide)
// with a young generation at its largest from the start: V8 pretenures a site
// only when the young generation is at its maximum, as it is in a sidecar
// under load.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const TUNING = fileURLToPath(new URL('../../dist/sidecar/heap-tuning.js', import.meta.url));

/** Old-space growth in bytes while 50,000 short-lived Duplex streams are built after long-lived ones. */
function oldSpaceGrowth(tuned: boolean): number {
  const script = `
    import { Duplex } from 'node:stream';
    import { getHeapSpaceStatistics } from 'node:v8';
    if (${tuned}) (await import(${JSON.stringify(TUNING)})).tuneHeapForServing();
    const make = () => new Duplex({ read() {}, write(chunk, encoding, done) { done(); } });
    const oldSpaceUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    const kept = [];
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 500; i++) kept.push(make());
      globalThis.gc({ type: 'minor' });
    }
    kept.length = 0;
    globalThis.gc();
    const before = oldSpaceUsed();
    let writable = 0;
    for (let i = 0; i < 50000; i++) writable += make().writable ? 1 : 0;
    process.stdout.write(JSON.stringify({ grew: oldSpaceUsed() - before, writable }));
  `;
  const result = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '--min-semi-space-size=16',
      '--max-semi-space-size=16',
      '--input-type=module',
      '--eval',
      script,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (result.status !== 0) throw new Error(`probe failed (${result.status}): ${result.stderr}`);
  return (JSON.parse(result.stdout) as { grew: number }).grew;
}

t.test(
  'without the setting, V8 builds short-lived streams in old space (the probe sees what it looks for)',
  async (t) => {
    t.ok(oldSpaceGrowth(false) > 1_000_000, 'short-lived streams were built in old space');
  },
);

t.test('with the setting, the same streams stay young', async (t) => {
  t.ok(oldSpaceGrowth(true) < 500_000, 'old space did not grow with short-lived streams');
});
