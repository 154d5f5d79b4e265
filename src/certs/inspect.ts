// What a loaded pair is: subject, names, validity, fingerprint, key type and
// size, whether the key matches and the chain is in order. An Inspection
// holds no key material, so it is safe to log and to print as JSON.
import type { KeyObject, X509Certificate } from 'node:crypto';

export interface KeyInfo {
  /** node:crypto's asymmetricKeyType: rsa, rsa-pss, ec, ed25519... */
  readonly type: string;
  /** RSA modulus length in bits. */
  readonly bits?: number;
  /** EC curve in NIST form when it has one (P-256), else OpenSSL's name. */
  readonly curve?: string;
  /** For messages: `RSA 2048`, `EC P-256`. */
  readonly description: string;
}

export interface SubjectAltNames {
  readonly dns: readonly string[];
  /** IP addresses, IPv6 in compressed form (`::1`). */
  readonly ip: readonly string[];
}

export interface CertSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER, colon-separated upper-case hex (as `openssl x509 -fingerprint -sha256`). */
  readonly fingerprint256: string;
  readonly serialNumber: string;
}

export interface Inspection extends CertSummary {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | undefined;
  readonly sans: SubjectAltNames;
  /** The certificate's public key. */
  readonly publicKey: KeyInfo;
  /** The key file's key; undefined when it did not parse. */
  readonly privateKey: KeyInfo | undefined;
  /** Whether the key file belongs to the leaf certificate; undefined when the key did not parse. */
  readonly keyMatches: boolean | undefined;
  /** Every certificate of the .crt, leaf first, as in the file. */
  readonly chain: readonly CertSummary[];
  /** Each certificate is issued and signed by the next one (always true for a single certificate). */
  readonly chainInOrder: boolean;
  /** The leaf issued and signed itself. */
  readonly selfSigned: boolean;
  /** The client CA bundle's certificates, when there is one. */
  readonly clientCa?: readonly CertSummary[] | undefined;
}

const CURVES: Readonly<Record<string, string>> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

export function describeKey(key: KeyObject): KeyInfo {
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = details.modulusLength ?? 0;
    return { type, bits, description: `${type === 'rsa' ? 'RSA' : 'RSA-PSS'} ${bits}` };
  }
  if (type === 'ec') {
    const named = details.namedCurve ?? 'unknown';
    const curve = CURVES[named] ?? named;
    return { type, curve, description: `EC ${curve}` };
  }
  const names: Readonly<Record<string, string>> = { ed25519: 'Ed25519', ed448: 'Ed448' };
  return { type, description: names[type] ?? type.toUpperCase() };
}

/** Parses a GMT date as X509Certificate prints it (`Jan  1 00:00:00 2030 GMT`). */
export function parseCertDate(text: string): Date {
  return new Date(text);
}

/** One line: `CN=shop.example.com, O=Shop` (node prints one attribute per line). */
function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

/** IPv6 in compressed form; IPv4 and anything unparseable unchanged. */
export function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}

// node prints SANs as `DNS:a, IP Address:1.2.3.4`, JSON-quoting a value that holds a comma or quote.
const SAN_ENTRY = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;

export function parseSubjectAltNames(text: string | undefined): SubjectAltNames {
  const dns: string[] = [];
  const ip: string[] = [];
  for (const match of (text ?? '').matchAll(SAN_ENTRY)) {
    const kind = match[1];
    let value = match[2] ?? '';
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        // keep the raw text: it is only shown
      }
    }
    if (kind === 'DNS') dns.push(value);
    else if (kind === 'IP Address') ip.push(canonicalIp(value));
  }
  return { dns, ip };
}

export function summarize(cert: X509Certificate): CertSummary {
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    notBefore: parseCertDate(cert.validFrom),
    notAfter: parseCertDate(cert.validTo),
    fingerprint256: cert.fingerprint256,
    serialNumber: cert.serialNumber,
  };
}

/** True when `issuer` issued `cert`: names match and its key verifies the signature. */
export function isIssuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Issuer name equals subject and the certificate's own key verifies it. Not checkIssued(self): OpenSSL's
 * check also wants keyCertSign in a keyUsage extension, which a self-signed server certificate often lacks.
 */
export function isSelfSigned(cert: X509Certificate): boolean {
  try {
    return cert.subject === cert.issuer && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

/** The index of the first certificate the next one did not issue, or -1 when the chain is in order. */
export function chainBreak(chain: readonly X509Certificate[]): number {
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!isIssuedBy(chain[i]!, chain[i + 1]!)) return i;
  }
  return -1;
}

export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

export interface InspectInput {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | undefined;
  readonly chain: readonly X509Certificate[];
  readonly privateKey: KeyObject | undefined;
  readonly caCerts?: readonly X509Certificate[] | undefined;
}

export function inspectChain(input: InspectInput): Inspection {
  const leaf = input.chain[0];
  if (leaf === undefined) throw new TypeError('inspectChain needs at least one certificate');
  return {
    ...summarize(leaf),
    certFile: input.certFile,
    keyFile: input.keyFile,
    caFile: input.caFile,
    sans: parseSubjectAltNames(leaf.subjectAltName),
    publicKey: describeKey(leaf.publicKey),
    privateKey: input.privateKey ? describeKey(input.privateKey) : undefined,
    keyMatches: input.privateKey ? keyMatches(leaf, input.privateKey) : undefined,
    chain: input.chain.map(summarize),
    chainInOrder: chainBreak(input.chain) === -1,
    selfSigned: isSelfSigned(leaf),
    clientCa: input.caCerts?.map(summarize),
  };
}
