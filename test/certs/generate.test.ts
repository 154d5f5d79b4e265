import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import t from 'tap';
import { generateSelfSigned } from '../../src/certs/generate.js';
import { validatePair } from '../../src/certs/validate.js';
import { openssl, opensslFingerprint, read } from '../fixtures/certs-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-certs-generate-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

/** A real TLS handshake against the pair, the client trusting only the certificate itself. */
async function handshake(
  certFile: string,
  keyFile: string,
  host: string,
  servername?: string,
): Promise<string> {
  const server = createServer({ cert: read(certFile), key: read(keyFile) }, (socket) => socket.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, host.includes(':') ? '::1' : '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect({ host, port, ca: read(certFile), servername }, () => {
        socket.setEncoding('utf8');
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('end', () => resolve(data));
      });
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

for (const type of ['ecdsa', 'rsa'] as const) {
  t.test(`${type}: openssl reads and verifies the pair; a TLS client trusting it connects`, async (t) => {
    const outDir = join(root, type, 'certs');
    const made = generateSelfSigned({
      name: 'shop-https',
      hosts: ['localhost', '127.0.0.1', '::1'],
      days: 30,
      type,
      outDir,
    });
    t.equal(made.certFile, join(outDir, 'shop-https.crt'));
    t.equal(made.keyFile, join(outDir, 'shop-https.key'));
    t.equal(statSync(made.keyFile).mode & 0o777, 0o600, 'key is 0600');
    t.same(readdirSync(outDir).sort(), ['shop-https.crt', 'shop-https.key'], 'no temporary files left');

    const text = openssl(['x509', '-in', made.certFile, '-noout', '-text']);
    t.match(
      text,
      type === 'ecdsa'
        ? 'Signature Algorithm: ecdsa-with-SHA256'
        : 'Signature Algorithm: sha256WithRSAEncryption',
    );
    t.match(text, type === 'ecdsa' ? 'NIST CURVE: P-256' : 'Public-Key: (2048 bit)');
    t.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    t.match(text, /X509v3 Extended Key Usage: \s*\n\s+TLS Web Server Authentication/);
    t.match(text, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    t.match(text, 'Subject: CN = localhost');
    t.match(text, 'X509v3 Subject Key Identifier');
    t.match(
      openssl(['verify', '-purpose', 'sslserver', '-CAfile', made.certFile, made.certFile]),
      `${made.certFile}: OK`,
    );
    const modulus = (kind: string, file: string) => openssl([kind, '-in', file, '-noout', '-pubkey']).trim();
    t.equal(
      modulus('x509', made.certFile),
      openssl(['pkey', '-in', made.keyFile, '-pubout']).trim(),
      'openssl: key matches',
    );

    t.equal(made.inspection.fingerprint256, opensslFingerprint(made.certFile));
    const days = (made.inspection.notAfter.getTime() - made.inspection.notBefore.getTime()) / 86_400_000;
    t.equal(days, 30);
    const v = validatePair(made, { now: () => new Date(), hostnames: ['localhost'], warnDays: 7 });
    t.same(
      v.problems.map((p) => p.code),
      ['W_SELF_SIGNED'],
    );

    t.equal(await handshake(made.certFile, made.keyFile, '127.0.0.1'), 'hello', 'IPv4 SAN');
    t.equal(await handshake(made.certFile, made.keyFile, '::1'), 'hello', 'IPv6 SAN');
    t.equal(await handshake(made.certFile, made.keyFile, '127.0.0.1', 'localhost'), 'hello', 'DNS SAN');
    await t.rejects(handshake(made.certFile, made.keyFile, '127.0.0.1', 'other.test'), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });
}

t.test('regenerating (with force) replaces the pair atomically, keeping the key private', async (t) => {
  const outDir = join(root, 'again');
  const first = generateSelfSigned({ name: 'harbor', hosts: ['localhost'], outDir });
  t.throws(() => generateSelfSigned({ name: 'harbor', hosts: ['localhost'], outDir }), {
    code: 'E_CERT_EXISTS',
  });
  const second = generateSelfSigned({
    name: 'harbor',
    hosts: ['localhost'],
    outDir,
    type: 'rsa',
    force: true,
  });
  t.not(first.inspection.fingerprint256, second.inspection.fingerprint256);
  t.equal(opensslFingerprint(second.certFile), second.inspection.fingerprint256);
  t.equal(statSync(second.keyFile).mode & 0o777, 0o600);
  t.equal(first.inspection.publicKey.description, 'EC P-256', 'ecdsa is the default');
  t.equal(
    Math.round((first.inspection.notAfter.getTime() - first.inspection.notBefore.getTime()) / 86_400_000),
    365,
  );
});

t.test('the injected clock sets the validity period', async (t) => {
  const made = generateSelfSigned({
    name: 'clock',
    hosts: ['localhost'],
    outDir: join(root, 'clock'),
    days: 10,
    now: () => new Date('2030-06-01T12:00:00.500Z'),
  });
  t.equal(
    made.inspection.notBefore.toISOString(),
    '2030-06-01T11:55:00.000Z',
    'five minutes of clock-skew slack',
  );
  t.equal(made.inspection.notAfter.toISOString(), '2030-06-11T11:55:00.000Z');
});

t.test('bad options name the flag (E_USAGE); an unwritable folder is E_CERT_WRITE', async (t) => {
  const outDir = join(root, 'bad');
  const base = { name: 'x', hosts: ['localhost'], outDir };
  t.throws(() => generateSelfSigned({ ...base, name: '../x' }), { code: 'E_USAGE', message: /^--name/ });
  t.throws(() => generateSelfSigned({ ...base, hosts: [] }), { code: 'E_USAGE', message: /^--host/ });
  t.throws(() => generateSelfSigned({ ...base, hosts: ['bad host'] }), {
    code: 'E_USAGE',
    message: '--host "bad host": not a DNS name or an IP address',
  });
  t.throws(() => generateSelfSigned({ ...base, days: 0 }), { code: 'E_USAGE', message: /^--days 0/ });
  t.throws(() => generateSelfSigned({ ...base, days: 1.5 }), { code: 'E_USAGE' });
  t.throws(() => generateSelfSigned({ ...base, type: 'dsa' as 'rsa' }), {
    code: 'E_USAGE',
    message: '--type "dsa": must be ecdsa or rsa',
  });
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  t.throws(() => generateSelfSigned({ ...base, outDir: file }), {
    code: 'E_CERT_WRITE',
    message: new RegExp(`^${file}: cannot write`),
  });
  t.ok(
    generateSelfSigned({ ...base, hosts: ['*.apps.example.com', '2001:db8::1'] }),
    'wildcards and IPv6 are fine',
  );
});
