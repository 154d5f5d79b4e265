// An HTTP/2 upload without a length is held in a deleted file in TMPDIR
// (src/https/body-spool.ts). Here TMPDIR is a 1.5 MiB tmpfs of the sidecar's own
// (a private mount namespace, `unshare -m`): a 3 MiB upload fills it. The client
// gets a 500, the log names the folder and ENOSPC, the space comes back, and
// the sidecar serves on: the next uploads, in memory and in the file, go through.
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startSidecarOnSmallDisk } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { type Echo, startEchoBackend, writePaced } from '../https/fixtures/helpers.js';

const CERTS = new URL('../../certs-example/', import.meta.url).pathname;

function upload(port: number, bytes: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://localhost:${port}`, { rejectUnauthorized: false });
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/up' });
    let status = 0;
    let body = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => {
      body += c.toString();
    });
    stream.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    stream.on('error', reject);
    writePaced(stream, Buffer.alloc(bytes, 5));
  });
}

t.test('a full temp folder: 500 and a line naming it; the sidecar serves on', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'harbor-full-'));
  t.teardown(() => rmSync(folder, { recursive: true, force: true }));
  const app = await startEchoBackend();
  t.teardown(() => app.close());
  const intPort = await freePort();
  // TMPDIR is where the sidecar spools bodies: the small disk.
  const { child, output } = await startSidecarOnSmallDisk(folder, '1536k', {
    TMPDIR: folder,
    STACKATO_SERVICES: JSON.stringify({
      'web-https': { int_port: intPort, port: 35124, name: 'id-full' },
    }),
    HARBOR_BACKEND: `127.0.0.1:${(app.address as { port: number }).port}`,
    HARBOR_CERTS_DIR: CERTS,
    HARBOR_LOG_LEVEL: 'info',
  });
  t.teardown(() => child.kill('SIGKILL'));

  const full = await upload(intPort, 3 * 1024 * 1024);
  t.equal(full.status, 500, 'the client is told the proxy failed');
  t.match(full.body, /could not hold the request body/);
  await waitFor(() => /could not be held/.test(output()), 'the warning line');
  const line = JSON.parse(
    output()
      .split('\n')
      .find((l) => l.includes('could not be held')) ?? '{}',
  );
  t.equal(line.code, 'ENOSPC');
  t.equal(line.folder, folder, 'names the folder');

  const small = await upload(intPort, 1000);
  t.equal(small.status, 200, 'a body held in memory goes through');
  t.equal((JSON.parse(small.body) as Echo).bodyLength, 1000);
  const fits = await upload(intPort, 1024 * 1024 + 200_000);
  t.equal(fits.status, 200, 'the space came back: a body that fits the folder goes through');
  t.equal((JSON.parse(fits.body) as Echo).headers['content-length'], String(1024 * 1024 + 200_000));
  t.equal(child.exitCode, null, 'the sidecar runs on');
});
