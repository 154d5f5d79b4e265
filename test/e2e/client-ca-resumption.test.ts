// A resumed TLS session skips the client certificate check: the certificate was verified when
// the session was made. So a session must not outlive the client CA it was verified under. A
// running `harbor-sidecar run`, real file swaps, and Node's TLS client offering its sessions
// (TLS 1.2 and 1.3 tickets, a TLS 1.2 session id): sessions resume across a server certificate swap, but not once the client
// CA appears (a session made with no client certificate) or is replaced by another.

import { constants } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import t from 'tap';
import { OpensslFactory, openssl, read } from '../fixtures/certs-helpers.js';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort } from '../helpers/net.js';
import { type ResumingGet, resumingGet } from '../https/fixtures/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-ca-resume-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);

interface Ca {
  readonly certFile: string;
  readonly keyFile: string;
}

function clientCa(cn: string): Ca {
  const keyFile = factory.key({ type: 'ec' });
  return { certFile: factory.cert({ cn, keyFile, ca: true, days: 2 }), keyFile };
}

/** A client certificate for clientAuth, signed by `ca`. */
function clientPair(ca: Ca, cn: string): { cert: string; key: string } {
  const keyFile = factory.key({ type: 'ec' });
  const csr = join(root, `${cn}.csr`);
  const certFile = join(root, `${cn}.crt`);
  const ext = join(root, `${cn}.ext`);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-out', csr]);
  openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile].concat([
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      certFile,
    ]),
  );
  return { cert: read(certFile), key: read(keyFile) };
}

/** How a client resumes: TLS 1.3 or 1.2 tickets, or a TLS 1.2 session id (no tickets). */
interface Way {
  readonly label: string;
  readonly maxVersion: tls.SecureVersion;
  readonly noTicket?: boolean;
}

/** GET / on a new connection, offering `session` and presenting `client` when given. */
function attempt(
  port: number,
  trust: string,
  way: Way,
  options: { session?: Buffer | undefined; client?: { cert: string; key: string } } = {},
): Promise<ResumingGet> {
  return resumingGet(port, {
    ca: trust,
    maxVersion: way.maxVersion,
    ...(way.noTicket ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
    ...(options.session === undefined ? {} : { session: options.session }),
    ...(options.client ?? {}),
  });
}

t.test('a session never outlives the client CA it was made under', async (t) => {
  const server = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
  const renewed = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
  const caA = clientCa('Client CA A');
  const caB = clientCa('Client CA B');
  const client = clientPair(caA, 'client-a');
  const certs = join(root, 'certs');
  mkdirSync(certs);
  copyFileSync(server.certFile, join(certs, 'harbor.crt'));
  copyFileSync(server.keyFile, join(certs, 'harbor.key'));
  /** Puts `file` in place as certs/`name`, as a deploy tool does (a rename). */
  const install = (file: string, name: string): void => {
    copyFileSync(file, join(certs, `${name}.new`));
    renameSync(join(certs, `${name}.new`), join(certs, name));
  };

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
  const versions: Way[] = [
    { label: 'TLS 1.2 ticket', maxVersion: 'TLSv1.2' },
    { label: 'TLS 1.2 session id', maxVersion: 'TLSv1.2', noTicket: true },
    { label: 'TLS 1.3 ticket', maxVersion: 'TLSv1.3' },
  ];

  // No client CA: sessions made and resumed.
  const open = new Map<Way, Buffer | undefined>();
  for (const v of versions) {
    const first = await attempt(port, trust, v);
    t.equal(first.answer, '200', `${v.label}: served`);
    const again = await attempt(port, trust, v, { session: first.session });
    t.ok(again.resumed, `${v.label}: the session resumes`);
    open.set(v, first.session);
  }

  const on = waitForOutput(sidecar, /client certificate authentication on/);
  install(caA.certFile, 'harbor.ca');
  await on;
  const verified = new Map<Way, Buffer | undefined>();
  for (const v of versions) {
    const sneaking = await attempt(port, trust, v, { session: open.get(v) });
    t.notOk(sneaking.resumed, `${v.label}: a session from before the CA is not resumed`);
    t.equal(sneaking.answer, 'refused', `${v.label}: ...and the client without a certificate is refused`);
    const full = await attempt(port, trust, v, { client });
    t.equal(full.answer, '200', `${v.label}: a client of the CA is served`);
    const again = await attempt(port, trust, v, { session: full.session, client });
    t.ok(again.resumed, `${v.label}: its session resumes under the same CA`);
    t.equal(again.answer, '200');
    verified.set(v, full.session);
  }

  // A renewed server certificate changes nothing for sessions (the client CA is the same).
  const swapped = waitForOutput(sidecar, /certificate reloaded/);
  install(renewed.keyFile, 'harbor.key');
  install(renewed.certFile, 'harbor.crt');
  await swapped;
  const renewedTrust = `${trust}${read(renewed.certFile)}`;
  for (const v of versions) {
    const again = await attempt(port, renewedTrust, v, { session: verified.get(v), client });
    t.ok(again.resumed, `${v.label}: resumes after the server pair was swapped`);
  }

  // CA A replaced by CA B: client-a is no longer trusted, and its session must not say otherwise.
  const replaced = waitForOutput(sidecar, /certificate reloaded/);
  install(caB.certFile, 'harbor.ca');
  await replaced;
  for (const v of versions) {
    const stale = await attempt(port, renewedTrust, v, { session: verified.get(v), client });
    t.notOk(stale.resumed, `${v.label}: a session verified under the old CA is not resumed`);
    t.equal(stale.answer, 'refused', `${v.label}: ...and the client the new CA does not trust is refused`);
  }

  sidecar.kill('SIGTERM');
  t.same(await exited(sidecar), { code: 0, signal: null });
});
