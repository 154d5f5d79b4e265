// Certificate pairs for the bench, made with the openssl CLI (not the
// project's generator, so the bench does not depend on the code it measures).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './proc.mjs';

const KEY_ARGS = {
  ecdsa: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  rsa: ['-newkey', 'rsa:2048'],
};

/** Writes DIR/<base>.crt and DIR/<base>.key (self-signed, 127.0.0.1 + localhost); returns paths + fingerprint. */
export async function makePair(dir, base, type, commonName = 'harbor-bench') {
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  const { code, stderr } = await runCommand(
    'openssl',
    [
      'req',
      '-x509',
      ...KEY_ARGS[type],
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '90',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { timeoutMs: 30_000 },
  );
  if (code !== 0) throw new Error(`openssl req (${type}) failed: ${stderr}`);
  return { cert, key, type, fingerprint: fingerprintOf(cert) };
}

export function fingerprintOf(certPath) {
  return new X509Certificate(readFileSync(certPath)).fingerprint256;
}
