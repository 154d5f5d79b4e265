// `certs generate`: a self-signed pair for local use. Keys come from
// node:crypto; node-forge builds the certificate (names, validity,
// extensions, DER). node-forge cannot hold an EC key, so it cannot sign with
// one: the to-be-signed part is DER-encoded by forge and signed by
// node:crypto for both key types, which also keeps the private key out of
// forge's JavaScript big-number code. Written atomically, the key 0600.
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type * as Forge from 'node-forge';
import { HarborError } from '../errors/index.js';
import { writeFileAtomic } from './atomic.js';
import { type Inspection, inspectChain } from './inspect.js';

export type GeneratedKeyType = 'ecdsa' | 'rsa';

export interface GenerateOptions {
  /** The service name: files are <name>.crt and <name>.key. */
  readonly name: string;
  /** DNS names and IP addresses the certificate is for; the first is also the common name. */
  readonly hosts: readonly string[];
  readonly days?: number | undefined;
  readonly type?: GeneratedKeyType | undefined;
  readonly outDir: string;
  /** Replace an existing pair of that name (refused otherwise: a key is not overwritten without a word). */
  readonly force?: boolean | undefined;
  /** Clock for the validity period. */
  readonly now?: (() => Date) | undefined;
}

export interface GeneratedPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly inspection: Inspection;
}

export const GENERATE_DEFAULTS = { days: 365, type: 'ecdsa' } as const;
/** Longest validity accepted: 825 days is what browsers and Apple platforms still honour for a TLS server certificate. */
export const MAX_DAYS = 825;

const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
} as const;

// node-forge is CommonJS whose exports Node cannot name statically, and the types declare no default export.
const forge = createRequire(import.meta.url)('node-forge') as typeof Forge;
const { asn1, pki } = forge;

/** Flag-level checks, so the CLI can report a bad value naming its flag (exit 2). */
export function checkGenerateOptions(options: GenerateOptions): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.name)) {
    throw new HarborError(
      'E_USAGE',
      `--name ${JSON.stringify(options.name)}: use letters, digits, '.', '_' and '-'`,
    );
  }
  if (options.hosts.length === 0)
    throw new HarborError('E_USAGE', '--host: give at least one host name or IP');
  for (const host of options.hosts) {
    if (
      isIP(host) === 0 &&
      !/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/.test(
        host,
      )
    ) {
      throw new HarborError('E_USAGE', `--host ${JSON.stringify(host)}: not a DNS name or an IP address`);
    }
  }
  const days = options.days ?? GENERATE_DEFAULTS.days;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new HarborError('E_USAGE', `--days ${days}: must be a whole number from 1 to ${MAX_DAYS}`);
  }
  const type = options.type ?? GENERATE_DEFAULTS.type;
  if (type !== 'ecdsa' && type !== 'rsa') {
    throw new HarborError('E_USAGE', `--type ${JSON.stringify(type)}: must be ecdsa or rsa`);
  }
}

function bytes(buffer: Buffer): string {
  return buffer.toString('binary');
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function timeAsn1(date: Date): Forge.asn1.Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/** The subjectPublicKey bits, for the key identifier (RFC 5280 4.2.1.2, method 1). */
function publicKeyBits(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType === 'rsa') return publicKey.export({ type: 'pkcs1', format: 'der' });
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
}

/** AlgorithmIdentifier: RSA carries NULL parameters; ECDSA must omit them (RFC 5758 3.2). */
function algorithmAsn1(rsa: boolean): Forge.asn1.Asn1 {
  const oid = asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.OID,
    false,
    asn1.oidToDer(rsa ? OID.sha256WithRSAEncryption : OID.ecdsaWithSHA256).getBytes(),
  );
  const parts = rsa ? [oid, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')] : [oid];
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

/** Builds and signs the certificate; returns its PEM. */
export function buildSelfSignedCertificate(options: {
  readonly hosts: readonly string[];
  readonly commonName: string;
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
}): string {
  const rsa = options.publicKey.asymmetricKeyType === 'rsa';
  // A positive serial of 16 random bytes with a non-zero first byte (RFC 5280 4.1.2.2: at most 20 octets).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const shell = pki.createCertificate();
  const name = [
    { type: OID.commonName, value: options.commonName },
    { type: OID.organizationName, value: 'harbor-sidecar (local use)' },
  ];
  shell.setSubject(name);
  shell.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: options.hosts.map((host) => (isIP(host) ? { type: 7, ip: host } : { type: 2, value: host })),
    },
    {
      id: OID.subjectKeyIdentifier,
      value: asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.OCTETSTRING,
        false,
        bytes(createHash('sha1').update(publicKeyBits(options.publicKey)).digest()),
      ),
    },
  ]);
  const dn = pki.distinguishedNameToAsn1(shell.subject);
  const spki = asn1.fromDer(bytes(options.publicKey.export({ type: 'spki', format: 'der' })));
  const extensions = (
    pki as unknown as { certificateExtensionsToAsn1(exts: unknown[]): Forge.asn1.Asn1 }
  ).certificateExtensionsToAsn1(shell.extensions);

  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(2).getBytes()), // v3
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, bytes(serial)),
    algorithmAsn1(rsa),
    dn, // issuer: self-signed
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      timeAsn1(options.notBefore),
      timeAsn1(options.notAfter),
    ]),
    pki.distinguishedNameToAsn1(shell.subject),
    spki,
    extensions,
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  // ECDSA signatures come out DER-encoded (dsaEncoding 'der'), which is the form X.509 wants.
  const signature = sign('sha256', tbsDer, options.privateKey);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmAsn1(rsa),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${bytes(signature)}`),
  ]);
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
  const body = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

/** Makes <outDir>/<name>.crt and <name>.key; throws E_USAGE for bad options, E_CERT_WRITE when a file cannot be written. */
export function generateSelfSigned(options: GenerateOptions): GeneratedPair {
  checkGenerateOptions(options);
  if (options.force !== true) {
    const existing = ['crt', 'key']
      .map((ext) => join(resolve(options.outDir), `${options.name}.${ext}`))
      .filter((file) => existsSync(file));
    if (existing.length > 0) {
      throw new HarborError(
        'E_CERT_EXISTS',
        `${existing.join(' and ')} ${existing.length > 1 ? 'exist' : 'exists'} already; pass --force to replace the pair`,
      );
    }
  }
  const days = options.days ?? GENERATE_DEFAULTS.days;
  const type = options.type ?? GENERATE_DEFAULTS.type;
  const { publicKey, privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = (options.now ?? (() => new Date()))();
  // A few minutes back, so a client whose clock is slightly behind does not see a not-yet-valid certificate.
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 5 * 60_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const first = options.hosts[0]!;
  const certPem = buildSelfSignedCertificate({
    hosts: options.hosts,
    commonName: first.length <= 64 ? first : options.name,
    publicKey,
    privateKey,
    notBefore,
    notAfter,
  });
  // Check our own work before writing anything: a certificate node:crypto reads, signed by the key we hold.
  const cert = new X509Certificate(certPem);
  if (!cert.verify(publicKey) || !cert.checkPrivateKey(privateKey)) {
    throw new HarborError('E_CERT_WRITE', `${options.name}: the generated certificate does not verify`);
  }
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  const outDir = resolve(options.outDir);
  const certFile = join(outDir, `${options.name}.crt`);
  const keyFile = join(outDir, `${options.name}.key`);
  let current = outDir;
  try {
    mkdirSync(outDir, { recursive: true });
    // Key first: a sidecar watching the folder sees the pair complete when the certificate lands.
    current = keyFile;
    writeFileAtomic(keyFile, keyPem, 0o600);
    current = certFile;
    writeFileAtomic(certFile, certPem, 0o644);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new HarborError('E_CERT_WRITE', `${current}: cannot write (${reason})`, { cause: error });
  }
  return { certFile, keyFile, inspection: inspectChain({ certFile, keyFile, chain: [cert], privateKey }) };
}
