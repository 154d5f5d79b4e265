// OCSP stapling against real tools on loopback: `openssl ocsp` as the
// responder the certificate names, `openssl s_client -status` as the client,
// the real sidecar in between. The answer is stapled; the responder going away
// leaves the last good one stapled; /status says so.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'harbor-ocsp-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a leaf it signed naming `responderPort` as its OCSP responder, the CA's index saying it is good. */
function makePki(responderPort: number): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    '/CN=Harbor Test CA',
    '-days',
    '2',
  );
  openssl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  writeFileSync(
    join(dir, 'ext.cnf'),
    `subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:${responderPort}\n`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'leaf.crt',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  );
  const serial = execFileSync('openssl', ['x509', '-in', 'leaf.crt', '-noout', '-serial'], { cwd: dir })
    .toString()
    .trim()
    .split('=')[1];
  const expiry = `${new Date(Date.now() + 2 * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
  writeFileSync(join(dir, 'index.txt'), `V\t${expiry}\t\t${serial}\tunknown\t/CN=localhost\n`);
  mkdirSync(join(dir, 'certs'), { recursive: true });
  // The chain as served: the leaf, then its issuer (what a responder request needs).
  writeFileSync(
    join(dir, 'certs', 'web-https.crt'),
    readFileSync(join(dir, 'leaf.crt'), 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8'),
  );
  writeFileSync(join(dir, 'certs', 'web-https.key'), readFileSync(join(dir, 'leaf.key')));
}

function responder(port: number): ChildProcess {
  const child = spawn(
    'openssl',
    [
      'ocsp',
      '-index',
      'index.txt',
      '-port',
      String(port),
      '-rsigner',
      'ca.crt',
      '-rkey',
      'ca.key',
      '-CA',
      'ca.crt',
      '-nmin',
      '10',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  return child;
}

/** What `openssl s_client -status` prints for a handshake with the sidecar (its stdin closed at once: it exits after the handshake). */
async function stapled(port: number): Promise<string> {
  const pending = run(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-status',
      '-CAfile',
      join(dir, 'ca.crt'),
    ],
    { timeout: 20_000 },
  );
  pending.child.stdin?.end();
  const { stdout } = await pending.catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return String(stdout);
}

t.test(
  'stapled from the responder the certificate names; kept through its outage; shown in /status',
  async (t) => {
    const responderPort = await freePort();
    makePki(responderPort);
    let ocsp = responder(responderPort);
    t.teardown(() => ocsp.kill('SIGKILL'));
    const httpsPort = await freePort();
    const adminPort = await freePort();
    const sidecar = startSidecar(
      [
        'run',
        '--service',
        'web-https',
        '--int-port',
        String(httpsPort),
        '--backend',
        '127.0.0.1:9',
        '--listen',
        '127.0.0.1',
        '--admin',
        `127.0.0.1:${adminPort}`,
      ],
      { HARBOR_CERTS_DIR: join(dir, 'certs') },
    );
    t.teardown(() => sidecar.kill('SIGKILL'));
    await waitForOutput(sidecar, /harbor-sidecar serving/);
    const status = async () =>
      (
        JSON.parse(await (await fetch(`http://127.0.0.1:${adminPort}/status`)).text()) as {
          services: { ocsp: Record<string, unknown> }[];
        }
      ).services[0]!.ocsp;
    await waitFor(async () => (await status()).state === 'stapled', 'the answer fetched');
    t.match(await status(), {
      state: 'stapled',
      responder: `http://127.0.0.1:${responderPort}`,
      certStatus: 'good',
      nextUpdate: /^\d{4}-/,
    });
    const first = await stapled(httpsPort);
    t.match(first, /OCSP Response Status: successful/, 'a client asking gets the answer stapled');
    t.match(first, /Cert Status: good/);

    const checked = await run(process.execPath, [
      new URL('../../dist/cli/sidecar.js', import.meta.url).pathname,
      'check',
      '--service',
      'web-https',
      '--int-port',
      '4443',
      '--backend',
      '127.0.0.1:9',
      '--certs-dir',
      join(dir, 'certs'),
    ]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    t.match(
      String(checked.stdout),
      `ocsp: stapled, fetched in the background from http://127.0.0.1:${responderPort}`,
      'check says so too',
    );

    ocsp.kill('SIGKILL');
    t.match(
      await stapled(httpsPort),
      /Cert Status: good/,
      'the responder gone: the last good answer stays stapled',
    );
    ocsp = responder(responderPort);
  },
);

t.test('a certificate that names no responder: stapling off, said in /status', async (t) => {
  const adminPort = await freePort();
  const sidecar = startSidecar(
    [
      'run',
      '--service',
      'x-https',
      '--int-port',
      String(await freePort()),
      '--backend',
      '127.0.0.1:9',
      '--listen',
      '127.0.0.1',
      '--admin',
      `127.0.0.1:${adminPort}`,
    ],
    { HARBOR_CERTS_DIR: new URL('../../certs-example/', import.meta.url).pathname },
  );
  t.teardown(() => sidecar.kill('SIGKILL'));
  await waitForOutput(sidecar, /harbor-sidecar serving/);
  const report = JSON.parse(await (await fetch(`http://127.0.0.1:${adminPort}/status`)).text());
  t.match(report.services[0].ocsp, { state: 'off', reason: 'the certificate names no OCSP responder' });
});
