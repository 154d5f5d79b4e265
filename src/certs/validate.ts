// Checking a pair: everything wrong with it at once (for `check`), or the
// first hard error as a thrown HarborError (for loading and reloading).
// Validity is judged against an injected clock.
import type { KeyObject, X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import { isWarning, type Problem } from '../errors/index.js';
import { chainBreak, describeKey, type Inspection, inspectChain } from './inspect.js';
import {
  displayPath,
  type PairFiles,
  type PemMaterial,
  type ReadOptions,
  type ReadResult,
  readPair,
  throwProblems,
} from './pair.js';

export interface LoadedPair {
  readonly files: PairFiles;
  /** Safe to log or print. */
  readonly inspection: Inspection;
  /** Secret (`pem.key`): for tls.createSecureContext only. */
  readonly pem: PemMaterial;
  readonly chain: readonly X509Certificate[];
  readonly privateKey: KeyObject;
  readonly caCerts: readonly X509Certificate[] | undefined;
}

export interface ValidateOptions extends ReadOptions {
  readonly now: () => Date;
  /** Warn when the certificate expires within this many days (default 30). */
  readonly warnDays?: number | undefined;
  /** Names clients use (external and internal hostname, IPs); a warning when the SANs cover none. Empty: no check. */
  readonly hostnames?: readonly string[] | undefined;
}

export interface Validation {
  /** Present when every file read and parsed, the key matches and the chain is in order. */
  readonly loaded: LoadedPair | undefined;
  /** Present when the certificate parsed, even if the key did not. */
  readonly inspection: Inspection | undefined;
  /** Every error and warning, errors first. */
  readonly problems: Problem[];
}

const DAY_MS = 86_400_000;

function iso(date: Date): string {
  return date.toISOString().replace('.000Z', 'Z');
}

/** Key and chain problems of a parsed pair (not validity: an expired pair still loads). */
function structureProblems(
  inspection: Inspection,
  chain: readonly X509Certificate[],
  displayRoot: string | undefined,
): Problem[] {
  const problems: Problem[] = [];
  const certShown = displayPath(inspection.certFile, displayRoot);
  if (inspection.keyMatches === false) {
    const keyShown = displayPath(inspection.keyFile, displayRoot);
    const pub = inspection.publicKey.description;
    const priv = inspection.privateKey?.description ?? 'unknown';
    const detail = pub === priv ? `both ${pub}, different keys` : `key is ${priv}, certificate is ${pub}`;
    problems.push({ code: 'E_KEY_MISMATCH', message: `${keyShown} does not match ${certShown} (${detail})` });
  }
  const at = chainBreak(chain);
  if (at !== -1) {
    const cert = inspection.chain[at]!;
    const next = inspection.chain[at + 1]!;
    problems.push({
      code: 'E_CHAIN_ORDER',
      message:
        `${certShown}: certificate ${at + 2} (${next.subject}) did not issue certificate ${at + 1} ` +
        `(${cert.subject}, issuer ${cert.issuer}); put the leaf first, then each issuer in turn`,
    });
  }
  return problems;
}

/** Expired / not yet valid (errors) for every certificate of the chain, and expiring soon (warning) for the leaf. */
export function validityProblems(
  inspection: Inspection,
  now: Date,
  warnDays: number,
  displayRoot?: string,
): Problem[] {
  const problems: Problem[] = [];
  const shown = displayPath(inspection.certFile, displayRoot);
  for (const [index, cert] of inspection.chain.entries()) {
    const which = index === 0 ? '' : ` (certificate ${index + 1}, ${cert.subject})`;
    if (now.getTime() > cert.notAfter.getTime()) {
      problems.push({ code: 'E_CERT_EXPIRED', message: `${shown}${which} expired on ${iso(cert.notAfter)}` });
    } else if (now.getTime() < cert.notBefore.getTime()) {
      problems.push({
        code: 'E_CERT_NOT_YET_VALID',
        message: `${shown}${which} is not valid until ${iso(cert.notBefore)}`,
      });
    }
  }
  const left = inspection.notAfter.getTime() - now.getTime();
  if (left >= 0 && left < warnDays * DAY_MS) {
    const days = Math.floor(left / DAY_MS);
    problems.push({
      code: 'W_CERT_EXPIRING',
      message: `${shown} expires in ${days} day${days === 1 ? '' : 's'} (${iso(inspection.notAfter)})`,
    });
  }
  return problems;
}

/** True when the certificate's names cover `name` (a DNS name, wildcards per RFC 6125, or an IP against IP SANs). */
export function certificateCovers(leaf: X509Certificate, name: string): boolean {
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  try {
    if (isIP(bare) !== 0) return leaf.checkIP(bare) !== undefined;
    return leaf.checkHost(bare, { wildcards: true, partialWildcards: false }) !== undefined;
  } catch {
    return false;
  }
}

export function nameWarnings(
  leaf: X509Certificate,
  inspection: Inspection,
  hostnames: readonly string[],
  displayRoot?: string,
): Problem[] {
  const names = [...new Set(hostnames.filter((h) => h !== ''))];
  const problems: Problem[] = [];
  if (inspection.sans.dns.length === 0 && inspection.sans.ip.length === 0) {
    // OpenSSL and Node still match such a certificate by its CN; browsers and Go do not (RFC 6125).
    problems.push({
      code: 'W_NO_SAN',
      message: `${displayPath(inspection.certFile, displayRoot)} names no host in subjectAltName, only its subject (${inspection.subject}): browsers refuse it`,
    });
  } else if (names.length > 0 && !names.some((name) => certificateCovers(leaf, name))) {
    const has = [...inspection.sans.dns.map((d) => `DNS:${d}`), ...inspection.sans.ip.map((i) => `IP:${i}`)];
    problems.push({
      code: 'W_SAN_MISMATCH',
      message: `${displayPath(inspection.certFile, displayRoot)} names none of ${names.join(', ')} (it names ${has.join(', ') || 'nothing'})`,
    });
  }
  if (inspection.selfSigned) {
    problems.push({
      code: 'W_SELF_SIGNED',
      message: `${displayPath(inspection.certFile, displayRoot)} is self-signed (${inspection.subject}); clients trust it only if given it`,
    });
  }
  return problems;
}

/** Signature algorithms clients refuse on a certificate they verify (OID content bytes, hex). */
const WEAK_SIGNATURES: Readonly<Record<string, string>> = {
  '2a864886f70d010102': 'md2WithRSAEncryption',
  '2a864886f70d010104': 'md5WithRSAEncryption',
  '2a864886f70d010105': 'sha1WithRSAEncryption',
  '2b0e03021d': 'sha1WithRSASignature',
  '2a8648ce3d0401': 'ecdsa-with-SHA1',
  '2a8648ce380403': 'dsa-with-sha1',
};

/** Curves clients accept for a certificate's key. */
const STRONG_CURVES = new Set(['P-256', 'P-384', 'P-521']);

/**
 * Keys and signatures that many clients refuse though the pair serves: an RSA key under 2048
 * bits, a DSA key or an EC key on another curve (OpenSSL's security level 2, the default of
 * Debian's and Ubuntu's curl and Python: "EE certificate key too weak"; browsers), and a
 * certificate signed with SHA-1 or MD5 ("CA signature digest algorithm too weak"; browsers).
 * A self-signed certificate's own signature is not checked by the client that trusts it, so it
 * is not judged.
 */
export function strengthWarnings(
  inspection: Inspection,
  chain: readonly X509Certificate[],
  displayRoot?: string,
): Problem[] {
  const problems: Problem[] = [];
  const shown = displayPath(inspection.certFile, displayRoot);
  for (const [index, cert] of chain.entries()) {
    const which = index === 0 ? '' : ` (certificate ${index + 1}, ${inspection.chain[index]!.subject})`;
    const key = describeKey(cert.publicKey);
    const weakKey =
      ((key.type === 'rsa' || key.type === 'rsa-pss') && (key.bits ?? 0) < 2048) ||
      key.type === 'dsa' ||
      (key.type === 'ec' && !STRONG_CURVES.has(key.curve ?? ''));
    if (weakKey) {
      problems.push({
        code: 'W_WEAK_KEY',
        message: `${shown}${which}: its key is ${key.description}, which clients at OpenSSL's security level 2 (curl and Python on Debian and Ubuntu) and browsers refuse; use RSA 2048 or more, or EC P-256`,
      });
    }
    const algorithm = WEAK_SIGNATURES[signatureAlgorithmOid(cert.raw) ?? ''];
    if (algorithm !== undefined && cert.issuer !== cert.subject) {
      problems.push({
        code: 'W_WEAK_SIGNATURE',
        message: `${shown}${which}: signed with ${algorithm}, which browsers and OpenSSL ("CA signature digest algorithm too weak") refuse; have it issued again with SHA-256`,
      });
    }
  }
  return problems;
}

/**
 * The signature algorithm of a DER certificate, as the hex of its OID's content bytes:
 * Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }.
 * (Node 20's X509Certificate does not say.) Undefined when the DER is not of that shape.
 */
export function signatureAlgorithmOid(der: Buffer): string | undefined {
  const certificate = derElement(der, 0, 0x30);
  const tbs = certificate && derElement(der, certificate.start, 0x30);
  const algorithm = tbs && derElement(der, tbs.end, 0x30);
  const oid = algorithm && derElement(der, algorithm.start, 0x06);
  return oid ? der.toString('hex', oid.start, oid.end) : undefined;
}

/** The DER element with tag `tag` at `at`: where its content starts and ends; undefined if none fits. */
function derElement(der: Buffer, at: number, tag: number): { start: number; end: number } | undefined {
  if (der[at] !== tag || at + 2 > der.length) return undefined;
  const first = der[at + 1] as number;
  let length = first;
  let start = at + 2;
  if (first & 0x80) {
    const bytes = first & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > der.length) return undefined;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + (der[start + i] as number);
    start += bytes;
  }
  const end = start + length;
  return end <= der.length ? { start, end } : undefined;
}

/**
 * A private key others can read (issue 9, item 23): a warning, since a Kubernetes secret
 * volume's default mode is 0644 and the pair still works; what to do is in the message.
 */
export function keyPermissionProblems(keyFile: string, displayRoot?: string): Problem[] {
  let mode: number;
  try {
    mode = statSync(keyFile).mode & 0o777;
  } catch {
    return []; // unreadable: reported by the read itself
  }
  if ((mode & 0o077) === 0) return [];
  const who = mode & 0o007 ? 'anyone on the machine' : 'its group';
  return [
    {
      code: 'W_KEY_READABLE',
      message: `${displayPath(keyFile, displayRoot)} can be read by ${who} (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it (in Kubernetes, defaultMode: 0400 on the secret volume)`,
    },
  ];
}

/** Every problem with a pair at once: read, parse, key, chain, validity errors, then warnings. Never throws. */
export function validatePair(files: PairFiles, options: ValidateOptions): Validation {
  const read = readPair(files, options);
  const problems = [...read.problems];
  const chain = read.chain;
  if (chain === undefined) return { loaded: undefined, inspection: undefined, problems };
  const inspection = inspectChain({ ...files, chain, privateKey: read.privateKey, caCerts: read.caCerts });
  problems.push(...structureProblems(inspection, chain, options.displayRoot));
  problems.push(...validityProblems(inspection, options.now(), options.warnDays ?? 30, options.displayRoot));
  problems.push(...nameWarnings(chain[0]!, inspection, options.hostnames ?? [], options.displayRoot));
  problems.push(...strengthWarnings(inspection, chain, options.displayRoot));
  problems.push(...keyPermissionProblems(files.keyFile, options.displayRoot));
  const errors = problems.filter((p) => !isWarning(p));
  const loaded =
    read.problems.length === 0 &&
    !errors.some((p) => p.code === 'E_KEY_MISMATCH' || p.code === 'E_CHAIN_ORDER')
      ? loadedPair(files, inspection, read)
      : undefined;
  problems.sort((a, b) => Number(isWarning(a)) - Number(isWarning(b)));
  return { loaded, inspection, problems };
}

/**
 * Reads a pair that must be usable: throws a HarborError (E_CERT_READ, E_CERT_PARSE, E_KEY_PARSE,
 * E_CA_READ, E_KEY_MISMATCH, E_CHAIN_ORDER). Validity is not judged here: see validityProblems.
 */
export function loadPair(files: PairFiles, options: ReadOptions = {}): LoadedPair {
  const read = readPair(files, options);
  throwProblems(read.problems);
  const chain = read.chain!;
  const inspection = inspectChain({ ...files, chain, privateKey: read.privateKey, caCerts: read.caCerts });
  throwProblems(structureProblems(inspection, chain, options.displayRoot));
  return loadedPair(files, inspection, read);
}

/** The usable pair from a read that succeeded (every part present). */
function loadedPair(files: PairFiles, inspection: Inspection, read: ReadResult): LoadedPair {
  return {
    files,
    inspection,
    pem: { cert: read.pem.cert!, key: read.pem.key!, ca: read.pem.ca },
    chain: read.chain!,
    privateKey: read.privateKey!,
    caCerts: read.caCerts,
  };
}
