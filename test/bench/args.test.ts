// The benchmark scripts' command lines (bench/lib/args.mjs): a bad option or value ends the
// script at once with exit 2 and a first line that names the option, before anything starts.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../..', import.meta.url));

function run(script: string, args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [script, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stderr: result.stderr };
}

const cases: [script: string, args: string[], firstLine: RegExp][] = [
  ['bench/run.mjs', ['--no-such-option'], /^Unknown option '--no-such-option'/],
  ['bench/run.mjs', ['--rounds', 'x'], /^--rounds: "x" is not a whole number from 1 to 20$/],
  ['bench/run.mjs', ['--seconds', '2.5'], /^--seconds: "2\.5" is not a whole number from 1 to 60$/],
  ['bench/https/ab.mjs', ['--a', 'dist', '--rounds'], /^Option '--rounds <value>' argument missing/],
  ['bench/https/ab.mjs', ['--a', 'dist', '--connections', '0'], /^--connections: "0" is not a whole/],
  ['bench/https/ab.mjs', ['--rounds', '3'], /^--a: the build to compare against is missing$/],
  ['bench/https/access-log.mjs', ['--format', 'xml'], /^--format: "xml" is not json or combined$/],
  ['bench/cluster/run.mjs', ['--rounds', '99'], /^--rounds: "99" is not a whole number from 1 to 9$/],
  ['bench/profile.mjs', ['--type', 'dsa'], /^--type: "dsa" is not ecdsa or rsa$/],
];

for (const [script, args, firstLine] of cases) {
  t.test(`${script} ${args.join(' ')}`, async (t) => {
    const { status, stderr } = run(script, args);
    t.equal(status, 2, 'a usage error');
    const lines = stderr.split('\n');
    t.match(lines[0], firstLine, 'the first line names the option');
    t.match(lines[1], /^usage: /, 'then the usage line');
    t.notMatch(stderr, /\n\s+at /, 'no stack trace');
  });
}
