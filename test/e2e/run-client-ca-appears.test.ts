import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, openssl, read } from '../fixtures/certs-helpers.js';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort } from '../helpers/net.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-client-ca-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);

/** A client certificate for clientAuth, signed by the CA. */
function clientPair(ca: { certFile: string; keyFile: string }, cn: string) {
  const keyFile = factory.key({ type: 'ec' });
  const csr = join(root, `${cn}.csr`);
  const certFile = join(root, `${cn}.crt`);
  const ext = join(root, `${cn}.ext`);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  openssl(['req', '-new', '-key', keyFile, '-subj', `/O=Harbor Test/CN=${cn}`, '-out', csr]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile };
}

function get(port: number, ca: string, client?: { certFile: string; keyFile: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        ca,
        servername: 'localhost',
        agent: false,
        ...(client ? { cert: read(client.certFile), key: read(client.keyFile) } : {}),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
      },
    );
    req.once('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code ?? error.message}`));
    req.end();
    req.setTimeout(5000, () => reject(new Error('request timed out')));
  });
}

t.test(
  'a client CA that appears turns client authentication on without a restart; the subject reaches the app',
  async (t) => {
    const server = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
    const caKey = factory.key({ type: 'ec' });
    const ca = {
      certFile: factory.cert({ cn: 'Harbor Test Client CA', keyFile: caKey, ca: true, days: 2 }),
      keyFile: caKey,
    };
    const client = clientPair(ca, 'client-one');
    const certs = join(root, 'certs');
    mkdirSync(certs);
    copyFileSync(server.certFile, join(certs, 'harbor.crt'));
    copyFileSync(server.keyFile, join(certs, 'harbor.key'));

    const backend = await echoBackend();
    t.teardown(() => backend.close());
    const port = await freePort();
    const sidecar = startSidecar([
      'run',
      '--listen',
      '127.0.0.1',
      '--service',
      'app-https',
      '--int-port',
      String(port),
      '--backend',
      String(backend.port),
      '--certs-dir',
      certs,
    ]);
    t.teardown(() => sidecar.kill('SIGKILL'));
    await waitForOutput(sidecar, /harbor-sidecar serving/);
    const trust = read(server.certFile);
    t.equal(await get(port, trust), '200', 'no CA yet: clients need no certificate');

    const on = waitForOutput(sidecar, /client certificate authentication on/);
    copyFileSync(ca.certFile, join(certs, 'harbor.ca'));
    await on;
    t.match(await get(port, trust), /^refused/, 'a client without a certificate is refused in the handshake');
    const other = clientPair({ certFile: server.certFile, keyFile: server.keyFile }, 'stranger');
    t.match(await get(port, trust, other), /^refused/, 'a certificate from another issuer is refused');
    t.equal(await get(port, trust, client), '200');
    t.equal(backend.seen.at(-1)?.['x-client-cert-subject'], 'O=Harbor Test,CN=client-one');

    sidecar.kill('SIGTERM');
    t.same(await exited(sidecar), { code: 0, signal: null });
  },
);
