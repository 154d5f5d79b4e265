import { execSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { exited, waitForOutput } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

t.test(
  'npm run demo: the printed curl works as printed, both instances answer, Ctrl-C stops it cleanly',
  async (t) => {
    const demo = spawn(process.execPath, ['dist/demo/index.js'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => demo.kill('SIGKILL'));
    const line = await waitForOutput(demo, /^\s+try:\s+curl /, 30_000);
    const command = line.replace(/^\s+try:\s+/, '');
    t.match(command, /^curl --cacert certs-example\/harbor\.crt https:\/\/localhost:\d+\/$/);
    const answered = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const body = execSync(`${command} --silent --show-error --max-time 5`, { cwd: ROOT, encoding: 'utf8' });
      t.match(body, /x-forwarded-proto: https/);
      answered.add(/^instance: (.*)$/m.exec(body)?.[1] ?? '');
    }
    t.same([...answered].sort(), ['instance-0 (127.0.0.11)', 'instance-1 (127.0.0.12)']);
    demo.kill('SIGINT');
    t.same(await exited(demo), { code: 0, signal: null });
  },
);
