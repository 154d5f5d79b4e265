// The OCSP request for stapling, byte for byte what `openssl ocsp` asks for the
// same certificate (SHA-1 CertID, no nonce), for RSA and EC issuers: the
// issuer's key hash is over its public key's bits, whatever those bits look like.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ocspRequest } from '../../src/certs/ocsp.js';

const dir = mkdtempSync(join(tmpdir(), 'harbor-ocsp-request-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

const KEYS = {
  rsa: ['-newkey', 'rsa:2048'],
  ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
};

for (const [kind, newkey] of Object.entries(KEYS)) {
  t.test(`a ${kind} issuer: the request openssl makes`, async (t) => {
    const ca = `${kind}-ca`;
    openssl(
      'req',
      '-x509',
      '-subj',
      `/CN=Harbor ${kind} CA`,
      '-days',
      '2',
      ...newkey,
      '-nodes',
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.crt`,
    );
    openssl(
      'req',
      ...KEYS.ec,
      '-nodes',
      '-keyout',
      `${kind}-leaf.key`,
      '-out',
      `${kind}-leaf.csr`,
      '-subj',
      '/CN=localhost',
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${kind}-leaf.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      '0x00c0ffee',
      '-out',
      `${kind}-leaf.crt`,
      '-days',
      '2',
    );
    openssl(
      'ocsp',
      '-issuer',
      `${ca}.crt`,
      '-cert',
      `${kind}-leaf.crt`,
      '-no_nonce',
      '-reqout',
      `${kind}-request.der`,
    );
    const issuer = new X509Certificate(readFileSync(join(dir, `${ca}.crt`)));
    const leaf = new X509Certificate(readFileSync(join(dir, `${kind}-leaf.crt`)));
    t.equal(
      ocspRequest(leaf, issuer).toString('hex'),
      readFileSync(join(dir, `${kind}-request.der`)).toString('hex'),
      'the same DER: the same issuer name hash, issuer key hash and serial',
    );
  });
}
