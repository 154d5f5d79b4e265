// The node API's certificate: loaded whole or refused with the file named,
// swapped into a real HTTPS server on reload (SIGHUP's path) and on a file
// change, never swapped for a pair that does not load, and waited for when a
// rotation writes the certificate before its key. Real files, real TLS.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t, { type Test } from 'tap';
import { ApiCertificate } from '../../src/node/api-certificate.js';
import { captureLogger, OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { waitFor } from '../helpers/wait.js';

const scratch = mkdtempSync(join(tmpdir(), 'api-cert-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const factory = new OpensslFactory(scratch);
const caKey = factory.key();
const caCert = factory.cert({ cn: 'Test API CA', keyFile: caKey, ca: true });
const issuer = { certFile: caCert, keyFile: caKey };

/** A leaf for 127.0.0.1 signed by the test CA, with its key. */
function leaf(cn: string): { cert: string; key: string } {
  const key = factory.key();
  return { cert: factory.cert({ cn, hosts: ['127.0.0.1'], keyFile: key, issuer }), key };
}

function place(dir: string, pair: { cert: string; key: string }): void {
  copyFileSync(pair.cert, join(dir, 'api.crt'));
  copyFileSync(pair.key, join(dir, 'api.key'));
}

/** The subject CN a new connection is served. */
function servedName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: read(caCert) }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.destroy();
      resolve(String(cn));
    });
    socket.on('error', reject);
  });
}

async function serving(t: Test, first: { cert: string; key: string }) {
  const dir = mkdtempSync(join(scratch, 'pair-'));
  place(dir, first);
  const { logger, errors, lines } = captureLogger();
  const files = { certFile: join(dir, 'api.crt'), keyFile: join(dir, 'api.key') };
  // A generous settle time: a rotation's second file may land late on a busy machine.
  const certificate = ApiCertificate.load({ files, logger, pollMs: 0, settleMs: 10_000 });
  const server = https.createServer({ ...certificate.pem }, (_req, res) => res.end('ok'));
  certificate.serve(server);
  await certificate.ready();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    server.close();
    server.closeAllConnections();
    await certificate.close();
  });
  return { dir, certificate, port: (server.address() as { port: number }).port, errors, lines };
}

t.test('a pair that cannot serve is refused at load, naming the file', async (t) => {
  const dir = mkdtempSync(join(scratch, 'bad-'));
  const a = leaf('a');
  const b = leaf('b');
  copyFileSync(a.cert, join(dir, 'api.crt'));
  copyFileSync(b.key, join(dir, 'api.key'));
  const { logger } = captureLogger();
  const files = { certFile: join(dir, 'api.crt'), keyFile: join(dir, 'api.key') };
  t.throws(() => ApiCertificate.load({ files, logger }), { code: 'E_KEY_MISMATCH' });
  t.throws(() => ApiCertificate.load({ files: { ...files, keyFile: join(dir, 'none.key') }, logger }), {
    code: 'E_CERT_READ',
    message: /none\.key/,
  });
});

t.test('reload (SIGHUP) swaps a new pair in; a connection open before it goes on', async (t) => {
  const { dir, certificate, port } = await serving(t, leaf('first'));
  t.equal(await servedName(port), 'first');
  const before = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: read(caCert) }, () => resolve(socket));
    socket.on('error', reject);
  });
  t.teardown(() => before.destroy());
  place(dir, leaf('second'));
  t.equal(await certificate.reload('SIGHUP'), true);
  t.equal(await servedName(port), 'second', 'a new connection gets the new pair');
  t.match(certificate.status(), { subject: /CN=second/, last_reload: { trigger: 'SIGHUP', ok: true } });
  const answer = await new Promise<string>((resolve) => {
    before.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    before.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  t.match(answer, /^HTTP\/1\.1 200/, 'the connection made on the old pair is still answered');
});

t.test('a pair that does not load keeps the old one serving, logged once', async (t) => {
  const { dir, certificate, port, errors } = await serving(t, leaf('good'));
  copyFileSync(leaf('other').key, join(dir, 'api.key'));
  t.equal(await certificate.reload('SIGHUP'), false);
  t.equal(await certificate.reload('SIGHUP'), false);
  t.equal(await servedName(port), 'good', 'the old pair still serves');
  t.equal(errors().length, 1, 'the same refusal is logged once');
  t.match(errors()[0], { code: 'E_RELOAD', cause: 'E_KEY_MISMATCH' });
  t.notMatch(JSON.stringify(errors()), /PRIVATE KEY/, 'no key material in the log');
  t.match(certificate.status().last_reload, { ok: false, error: /does not match/ });
});

t.test('a file change reloads by itself; a certificate written before its key is waited for', async (t) => {
  const { dir, certificate, port, errors, lines } = await serving(t, leaf('one'));
  place(dir, leaf('two'));
  await waitFor(async () => (await servedName(port)) === 'two', 'the changed files to serve');
  t.ok(
    lines.some((l) => l.msg === 'API certificate reloaded' && /file change/.test(String(l.trigger))),
    'logged as a file change',
  );

  const three = leaf('three');
  copyFileSync(three.cert, join(dir, 'api.crt'));
  const reloaded = certificate.reload('file change (test)', 10_000);
  setTimeout(() => copyFileSync(three.key, join(dir, 'api.key')), 300);
  t.equal(await reloaded, true, 'the reload waited for the key');
  t.equal(await servedName(port), 'three');
  t.same(errors(), [], 'the half-written pair was never reported');
});
