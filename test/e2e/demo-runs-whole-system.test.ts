import { execSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { exited, waitForOutput } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

t.test(
  'npm run demo: the printed curl works as printed, both instances answer, Ctrl-C stops it cleanly',
  async (t) => {
    // Another demo or test suite on this machine may hold the demo's usual int_port (4100 on
    // the instance addresses) and admin port (9701): hold them here, and the demo must pick others.
    const heldHere = new Set<number>();
    for (const [host, port] of [
      ['127.0.0.11', 4100],
      ['127.0.0.1', 9701],
    ] as const) {
      const holder = createServer();
      const held = await new Promise<boolean>((resolve) => {
        holder.once('error', () => resolve(false)); // already held by someone else: the same case
        holder.listen(port, host, () => resolve(true));
      });
      if (held) {
        heldHere.add(port);
        t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
      }
    }
    const demo = spawn(process.execPath, ['dist/demo/index.js'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => demo.kill('SIGKILL'));
    let printed = '';
    demo.stdout.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
    });
    const line = await waitForOutput(demo, /^\s+try:\s+curl /);
    const command = line.replace(/^\s+try:\s+/, '');
    t.match(command, /^curl --cacert certs-example\/harbor\.crt https:\/\/localhost:\d+\/$/);
    const answered = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const body = execSync(`${command} --silent --show-error --max-time 5`, { cwd: ROOT, encoding: 'utf8' });
      t.match(body, /x-forwarded-proto: https/);
      answered.add(/^instance: (.*)$/m.exec(body)?.[1] ?? '');
    }
    t.same([...answered].sort(), ['instance-0 (127.0.0.11)', 'instance-1 (127.0.0.12)']);
    // A browser's page explains itself: what answered, why it sticks, the dashboard, the warning.
    const appPage = execSync(`${command} --silent --show-error --max-time 5 -H 'Accept: text/html'`, {
      cwd: ROOT,
      encoding: 'utf8',
    });
    t.match(appPage, /<h1>Answered by instance-\d \(127\.0\.0\.1[12]\)<\/h1>/);
    t.match(appPage, /harbor-sidecar<\/b> of this instance on 127\.0\.0\.1[12]:\d+/);
    t.match(appPage, /Why reloading shows the same instance/);
    t.match(appPage, /<a href="http:\/\/127\.0\.0\.1:\d+\/">dashboard<\/a>/);
    t.match(appPage, /The certificate warning/);
    t.match(
      printed,
      /It also warns about\nthe certificate: it is self-signed/,
      'the banner names the warning',
    );
    const admin = /admin: curl (http:\/\/127\.0\.0\.1:(\d+)\/status)/.exec(printed);
    // Held by another process when the test began (a second suite's run of this test), the port
    // may have been let go since: the demo may then take it.
    if (heldHere.has(9701)) t.not(admin?.[2], '9701', 'the admin port held here was not taken');
    const status = execSync(`curl --silent --show-error --max-time 5 ${admin?.[1]}`, { encoding: 'utf8' });
    t.match(JSON.parse(status), { services: [{ name: 'demo-https' }] }, 'the printed admin address answers');
    const dashboard = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/) /.exec(printed);
    t.ok(dashboard, 'the dashboard address is printed');
    const page = execSync(`curl --silent --show-error --max-time 5 ${dashboard?.[1]}`, { encoding: 'utf8' });
    t.match(page, /<title>harbor-node<\/title>/, 'and serves the page');
    demo.kill('SIGINT');
    t.same(await exited(demo), { code: 0, signal: null });
  },
);
