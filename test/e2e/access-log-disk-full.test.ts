// The access log on a full disk: its file is on a 64 KiB tmpfs of the
// sidecar's own (a private mount namespace, `unshare -m`) and a few hundred
// requests with long paths fill it. Every request is answered, the sidecar
// says once that lines are being lost (naming the file and ENOSPC), and serves
// on; what reached the file is whole lines, up to the one the disk cut.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startSidecarOnSmallDisk } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { httpsStatus as get, startEchoBackend } from '../https/fixtures/helpers.js';

const CERTS = new URL('../../certs-example/', import.meta.url).pathname;
const REQUESTS = 300;

t.test('a full disk loses access-log lines, never requests; one warning names the file', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'harbor-log-full-'));
  t.teardown(() => rmSync(folder, { recursive: true, force: true }));
  const file = join(folder, 'access.log');
  const app = await startEchoBackend();
  t.teardown(() => app.close());
  const intPort = await freePort();
  const { child, output } = await startSidecarOnSmallDisk(folder, '64k', {
    STACKATO_SERVICES: JSON.stringify({
      'web-https': { int_port: intPort, port: 35125, name: 'id-log-full' },
    }),
    HARBOR_BACKEND: `127.0.0.1:${(app.address as { port: number }).port}`,
    HARBOR_CERTS_DIR: CERTS,
    HARBOR_ACCESS_LOG: 'json',
    HARBOR_ACCESS_LOG_FILE: file,
    HARBOR_ACCESS_LOG_QUERY: 'keep',
    HARBOR_LOG_LEVEL: 'info',
  });
  t.teardown(() => child.kill('SIGKILL'));

  const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const long = 'q'.repeat(1500); // ~1.8 KB a line: 300 lines are ~8 times the disk
  const statuses: number[] = [];
  for (let i = 0; i < REQUESTS; i++) statuses.push(await get(agent, intPort, `/r/${i}?${long}`));
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    `all ${REQUESTS} requests answered 200`,
  );
  await waitFor(() => /access log lines are being lost/.test(output()), 'the warning line');
  const warnings = output()
    .split('\n')
    .filter((l) => l.includes('access log lines are being lost'));
  t.equal(warnings.length, 1, 'one warning while the disk stays full, not one per batch');
  t.match(JSON.parse(warnings[0]!), { code: 'ENOSPC', file });
  t.equal(await get(agent, intPort, '/after'), 200, 'serving goes on');
  t.equal(child.exitCode, null, 'the sidecar runs on');

  // The file as the sidecar sees it (its mount namespace, through /proc/PID/root).
  const written = readFileSync(`/proc/${child.pid}/root${file}`, 'utf8');
  t.ok(written.length > 0 && written.length <= 64 * 1024, `${written.length} bytes reached the disk`);
  const lines = written.split('\n');
  lines.pop(); // the line the disk cut, or '' after the last whole one
  t.ok(lines.length >= 10, `${lines.length} whole lines`);
  t.same(
    lines.map((l) => JSON.parse(l).path),
    lines.map((_, i) => `/r/${i}?${long}`),
    'the first lines, whole and in order',
  );
});
