// TLS as clients see it: versions, ALPN (h2, http/1.1, http/1.0, none),
// session resumption, the chain as in the file, RSA and ECDSA, a certificate
// swap that closes nothing, client-certificate authentication, and handshake
// failures counted by reason. Real clients: Node's tls, curl, openssl s_client.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { serverTlsOptions } from '../../src/https/index.js';
import {
  connectTls,
  makeClientPki,
  makePair,
  removeDir,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const backend = await startEchoBackend();
const ec = makePair('ec');
const rsa = makePair('rsa', 'rsa-host');
const fx = await startProxy(backend.address, { pair: ec });
t.teardown(async () => {
  await fx.proxy.close();
  await backend.close();
  removeDir(ec.dir);
  removeDir(rsa.dir);
});

function run(
  cmd: string,
  args: string[],
  input = '',
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ stdout, stderr, code: error ? ((error as { code?: number }).code ?? 1) : 0 });
    });
    child.stdin?.end(input);
  });
}

function fingerprint(socket: tls.TLSSocket): string {
  return socket.getPeerX509Certificate()?.fingerprint256 ?? '';
}

t.test('TLS 1.2 and 1.3 are served; TLS 1.1 is refused and counted', async (t) => {
  const v13 = await connectTls(fx.port, ec);
  t.equal(v13.getProtocol(), 'TLSv1.3');
  v13.destroy();
  const v12 = await connectTls(fx.port, ec, { maxVersion: 'TLSv1.2' });
  t.equal(v12.getProtocol(), 'TLSv1.2');
  t.match(v12.getCipher().name, /^ECDHE-ECDSA-(AES|CHACHA)/);
  v12.destroy();
  const v11 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${fx.port}`, '-tls1_1'], '');
  t.not(v11.code, 0);
  // The reason is OpenSSL's (unsupported protocol); what matters is that it is counted.
  const total = [...fx.stats.handshakeErrors.values()].reduce((a, b) => a + b, 0);
  t.ok(total >= 1, `handshake errors: ${JSON.stringify([...fx.stats.handshakeErrors])}`);
});

t.test("the server's suite order: AES-128-GCM first, ChaCha20 for a client that prefers it", async (t) => {
  const served = async (options: tls.ConnectionOptions): Promise<string> => {
    const socket = await connectTls(fx.port, ec, options);
    const text = `${socket.getProtocol()} ${socket.getCipher().standardName}`;
    socket.destroy();
    return text;
  };
  // Node's client, as OpenSSL's, lists AES-256-GCM first: the server's order decides.
  t.equal(await served({}), 'TLSv1.3 TLS_AES_128_GCM_SHA256');
  t.equal(
    await served({ ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384' }),
    'TLSv1.3 TLS_CHACHA20_POLY1305_SHA256',
  );
  t.equal(await served({ ciphers: 'TLS_AES_256_GCM_SHA384' }), 'TLSv1.3 TLS_AES_256_GCM_SHA384');
  t.equal(await served({ maxVersion: 'TLSv1.2' }), 'TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
  t.equal(
    await served({
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256',
    }),
    'TLSv1.2 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  );
  // openssl s_client's own default list (AES-256 first) too.
  const openssl = await run(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${fx.port}`, '-CAfile', ec.certFile, '-brief'],
    '',
  );
  t.match(openssl.stderr + openssl.stdout, /Ciphersuite: TLS_AES_128_GCM_SHA256/);
});

t.test('ALPN: h2 and http/1.1 chosen; http/1.0-only and no-ALPN clients are served', async (t) => {
  const h2 = await connectTls(fx.port, ec, { ALPNProtocols: ['h2', 'http/1.1'] });
  t.equal(h2.alpnProtocol, 'h2');
  h2.destroy();
  const h1 = await connectTls(fx.port, ec, { ALPNProtocols: ['http/1.1'] });
  t.equal(h1.alpnProtocol, 'http/1.1');
  h1.destroy();
  const h10 = await run(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${fx.port}`, '-alpn', 'http/1.0', '-CAfile', ec.certFile, '-quiet'],
    'GET /alpn10 HTTP/1.0\r\n\r\n',
  );
  t.match(h10.stdout, /^HTTP\/1\.1 200 OK/);
  t.match(h10.stdout, /"url":"\/alpn10"/);
  const none = await run('curl', [
    '-sS',
    '--no-alpn',
    '--cacert',
    ec.certFile,
    `https://localhost:${fx.port}/noalpn`,
  ]);
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /"url":"\/noalpn"/);
});

t.test('curl over IPv4 and IPv6 sees X-Forwarded-Proto https', async (t) => {
  for (const host of ['127.0.0.1', '[::1]']) {
    const r = await run('curl', ['-sS', '--cacert', ec.certFile, `https://${host}:${fx.port}/curl`]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /"x-forwarded-proto":"https"/);
  }
});

t.test('session resumption with tickets', async (t) => {
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    const sessions: Buffer[] = [];
    const first = tls.connect({
      host: '127.0.0.1',
      port: fx.port,
      ca: ec.cert,
      servername: 'localhost',
      maxVersion,
    });
    first.on('session', (session: Buffer) => sessions.push(session));
    await new Promise<void>((resolve) => {
      first.on('data', () => resolve());
      first.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    });
    const session = sessions.at(-1) ?? first.getSession();
    first.destroy();
    t.ok(session, `${maxVersion} session issued`);
    const second = await connectTls(fx.port, ec, { maxVersion, ...(session ? { session } : {}) });
    t.ok(second.isSessionReused(), `${maxVersion} resumed`);
    second.destroy();
    // A reload builds a new context: the proxy's own ticket keys go with it, so the ticket still resumes.
    fx.proxy.setTls(serverTlsOptions({ cert: ec.cert, key: ec.key }));
    const third = await connectTls(fx.port, ec, { maxVersion, ...(session ? { session } : {}) });
    t.ok(third.isSessionReused(), `${maxVersion} resumed after the pair was swapped`);
    third.destroy();
  }
});

t.test('RSA certificates serve too', async (t) => {
  const fxRsa = await startProxy(backend.address, { pair: rsa });
  t.teardown(() => fxRsa.proxy.close());
  const socket = await connectTls(fxRsa.port, rsa, { maxVersion: 'TLSv1.2' });
  t.match(socket.getCipher().name, /^ECDHE-RSA-/);
  t.equal(socket.getPeerX509Certificate()?.publicKey.asymmetricKeyType, 'rsa');
  socket.destroy();
});

t.test('the chain is served as it is in the file', async (t) => {
  const dir = ec.dir;
  const sh = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  sh([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    'root.key',
    '-out',
    'root.crt',
    '-days',
    '2',
    '-subj',
    '/CN=Root',
  ]);
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign\n');
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  sh(['req', '-new', ...ecKey, '-keyout', 'inter.key', '-out', 'inter.csr', '-subj', '/CN=Intermediate']);
  sh([
    'x509',
    '-req',
    '-in',
    'inter.csr',
    '-CA',
    'root.crt',
    '-CAkey',
    'root.key',
    '-CAcreateserial',
    '-extfile',
    'ca.ext',
    '-out',
    'inter.crt',
    '-days',
    '2',
  ]);
  sh(['req', '-new', ...ecKey, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost']);
  sh([
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'inter.crt',
    '-CAkey',
    'inter.key',
    '-CAcreateserial',
    '-extfile',
    'leaf.ext',
    '-out',
    'leaf.crt',
    '-days',
    '2',
  ]);
  const chain = readFileSync(join(dir, 'leaf.crt'), 'utf8') + readFileSync(join(dir, 'inter.crt'), 'utf8');
  fx.proxy.setTls(serverTlsOptions({ cert: chain, key: readFileSync(join(dir, 'leaf.key')) }));
  t.teardown(() => fx.proxy.setTls(serverTlsOptions({ cert: ec.cert, key: ec.key })));
  const r = await run(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${fx.port}`, '-showcerts', '-CAfile', join(dir, 'root.crt')],
    '',
  );
  const subjects = [...r.stdout.matchAll(/^ ?\d s:(.*)$/gm)].map((m) => m[1]);
  t.same(subjects, ['CN = localhost', 'CN = Intermediate']);
  t.match(r.stdout, /Verify return code: 0 \(ok\)/);
});

t.test('setTls: new handshakes get the new pair, open connections carry on', async (t) => {
  const other = makePair('ec', 'localhost');
  t.teardown(() => removeDir(other.dir));
  const old = await connectTls(fx.port, ec);
  const oldPrint = fingerprint(old);
  let text = '';
  old.on('data', (c: Buffer) => {
    text += c.toString();
  });
  fx.proxy.setTls(serverTlsOptions({ cert: other.cert, key: other.key }));
  t.teardown(() => fx.proxy.setTls(serverTlsOptions({ cert: ec.cert, key: ec.key })));
  const fresh = await connectTls(fx.port, other);
  t.not(fingerprint(fresh), oldPrint, 'new connection sees the new certificate');
  fresh.destroy();
  old.write('GET /after-swap HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  await new Promise<void>((resolve) => old.on('close', () => resolve()));
  t.match(text, /"url":"\/after-swap"/, 'the open connection still works');
});

t.test('client certificates: verified clients served, others refused in the handshake', async (t) => {
  const pki = makeClientPki();
  t.teardown(() => removeDir(pki.dir));
  const auth = await startProxy(backend.address, { pair: ec, clientAuth: true, ca: pki.caCert });
  t.teardown(() => auth.proxy.close());
  const url = `https://localhost:${auth.port}/who`;
  const good = await run('curl', [
    '-sS',
    '--cacert',
    ec.certFile,
    '--cert',
    pki.clientCertFile,
    '--key',
    pki.clientKeyFile,
    url,
  ]);
  t.equal(good.code, 0, good.stderr);
  t.match(good.stdout, /"x-client-cert-subject":"O=Harbor Test,CN=client-one"/);
  const none = await run('curl', ['-sS', '--cacert', ec.certFile, url]);
  t.not(none.code, 0, 'no certificate: refused');
  t.notMatch(none.stdout, /url/);
  writeFileSync(join(pki.dir, 's.crt'), pki.strangerCert);
  writeFileSync(join(pki.dir, 's.key'), pki.strangerKey);
  const stranger = await run('curl', [
    '-sS',
    '--cacert',
    ec.certFile,
    '--cert',
    join(pki.dir, 's.crt'),
    '--key',
    join(pki.dir, 's.key'),
    url,
  ]);
  t.not(stranger.code, 0, 'unverified certificate: refused');
  t.notMatch(stranger.stdout, /url/);
  const reasons = [...auth.stats.handshakeErrors.keys()];
  t.ok(reasons.length >= 1, `counted by reason: ${reasons.join(', ')}`);
});

t.test('setClientAuth turns client certificates on and off for new handshakes', async (t) => {
  const pki = makeClientPki();
  t.teardown(() => removeDir(pki.dir));
  const toggled = await startProxy(backend.address, { pair: ec });
  t.teardown(() => toggled.proxy.close());
  const url = `https://localhost:${toggled.port}/toggle`;
  const open = await run('curl', ['-sS', '--cacert', ec.certFile, url]);
  t.equal(open.code, 0, 'no client certificate needed at first');
  toggled.proxy.setTls(serverTlsOptions({ cert: ec.cert, key: ec.key, ca: pki.caCert }));
  toggled.proxy.setClientAuth(true);
  const refused = await run('curl', ['-sS', '--cacert', ec.certFile, url]);
  t.not(refused.code, 0, 'refused without a certificate once on');
  const good = await run('curl', [
    '-sS',
    '--cacert',
    ec.certFile,
    '--cert',
    pki.clientCertFile,
    '--key',
    pki.clientKeyFile,
    url,
  ]);
  t.match(good.stdout, /"x-client-cert-subject":"O=Harbor Test,CN=client-one"/);
  toggled.proxy.setClientAuth(false);
  const again = await run('curl', ['-sS', '--cacert', ec.certFile, url]);
  t.equal(again.code, 0, 'no certificate needed once off');
  t.notMatch(again.stdout, /x-client-cert-subject/);
});

t.test('TLS 1.2 renegotiation is refused', async (t) => {
  // Client-initiated renegotiation costs the server a full handshake each time, as often as
  // a client likes (issue 9, item 18): refused, as nginx and HAProxy refuse it.
  const socket = await connectTls(fx.port, ec, { maxVersion: 'TLSv1.2' });
  t.teardown(() => socket.destroy());
  t.equal(socket.getProtocol(), 'TLSv1.2');
  const outcome = await new Promise<string>((resolve) => {
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message}`));
    const accepted = socket.renegotiate({}, (error) =>
      resolve(error ? `refused ${error.message}` : 'accepted'),
    );
    if (!accepted) resolve('not started');
    setTimeout(() => resolve('no answer'), 5_000).unref();
  });
  t.not(outcome, 'accepted', `renegotiation: ${outcome}`);
});
