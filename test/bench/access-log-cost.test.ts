// The access-log benchmark's loop of its own (bench/https/access-log-cost.mjs) against this
// checkout's build: it must keep up with the log's API (a signature it no longer fits once
// wrote lines with an invalid time and crashed the benchmark after its rounds).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../..', import.meta.url));
const LINES = 3000;

for (const format of ['json', 'combined'] as const) {
  t.test(`${format}: every line written, whole, and a cost per line`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-line-cost-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'lines.log');
    const script = `import { lineCost } from './bench/https/access-log-cost.mjs';
      console.log(JSON.stringify(await lineCost(${JSON.stringify(file)}, ${JSON.stringify(format)}, ${LINES})));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    t.equal(result.status, 0, `exit 0 (stderr: ${result.stderr.split('\n')[0]})`);
    const perLine = JSON.parse(result.stdout.trim() || '{}');
    t.ok(
      perLine.serving > 0 && perLine.process > perLine.serving,
      `a positive cost per line, the serving thread's part of the process's (${result.stdout.trim()})`,
    );
    const lines = readFileSync(file, 'utf8').split('\n');
    t.equal(lines.pop(), '', 'the file ends with a whole line');
    t.equal(lines.length, LINES, 'one line per call');
    const wrong =
      format === 'json'
        ? lines.findIndex((l) => JSON.parse(l).status !== 200)
        : lines.findIndex(
            (l) => !/^127\.0\.0\.1 - - \[[^\]]+\] "GET \/\S+ HTTP\/1\.1" 200 100 "-" "wrk" /.test(l),
          );
    t.equal(wrong, -1, 'each line as the format writes it');
  });
}
