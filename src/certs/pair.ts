// Reading a certificate pair from disk: the .crt (a chain, leaf first), the
// key (PKCS#1, SEC1, PKCS#8, encrypted or not) and an optional client CA
// bundle. Parsing is node:crypto's; every read or parse failure becomes a
// Problem naming the file, so a caller can report all of them at once.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { type ErrorCode, HarborError, type Problem } from '../errors/index.js';
import { isEncryptedKeyPem, splitPem } from './pem.js';

export interface PairFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** A PEM bundle of CA certificates that client certificates must chain to. */
  readonly caFile?: string | undefined;
}

export interface ReadOptions {
  /** Passphrase for an encrypted key (HARBOR_KEY_PASSPHRASE). Never logged, never put in a message. */
  readonly passphrase?: string | undefined;
  /** File names in messages are shown relative to this folder (the app root) when inside it. */
  readonly displayRoot?: string | undefined;
}

/** PEM text ready for tls.createSecureContext. `key` is unencrypted PKCS#8: treat it as a secret. */
export interface PemMaterial {
  /** The certificate blocks exactly in the file's order: the chain is served as it is in the file. */
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
}

/** What was read and parsed; any part that failed is undefined and has a Problem. */
export interface ReadResult {
  readonly chain: readonly X509Certificate[] | undefined;
  readonly privateKey: KeyObject | undefined;
  readonly caCerts: readonly X509Certificate[] | undefined;
  readonly pem: { cert?: string; key?: string; ca?: string };
  readonly problems: Problem[];
}

/** How a file is named in messages: relative to the display root when inside it, else as given. */
export function displayPath(file: string, root?: string): string {
  if (root === undefined) return file;
  const rel = relative(root, file);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

function problem(code: ErrorCode, message: string): Problem {
  return { code, message };
}

function readText(file: string, shown: string, code: ErrorCode, what: string): string | Problem {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    return problem(code, `${shown}: cannot read ${what} (${reason})`);
  }
}

/** Parses every CERTIFICATE block of `text`, or says which one is wrong. */
export function parseCertificates(
  text: string,
  shown: string,
  code: ErrorCode,
): { certs: X509Certificate[]; pem: string } | Problem {
  const blocks = splitPem(text).filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length === 0) {
    const empty = text.trim() === '';
    return problem(code, `${shown}: ${empty ? 'file is empty' : 'holds no PEM CERTIFICATE block'}`);
  }
  const certs: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block.pem));
    } catch {
      return problem(code, `${shown}: certificate ${index + 1} of ${blocks.length} does not parse`);
    }
  }
  return { certs, pem: blocks.map((b) => b.pem).join('') };
}

/** Parses a PEM private key; a wrong or missing passphrase is a parse problem that never shows the passphrase. */
export function parsePrivateKey(
  text: string,
  shown: string,
  passphrase: string | undefined,
): { key: KeyObject; pem: string } | Problem {
  const encrypted = isEncryptedKeyPem(text);
  if (encrypted && (passphrase === undefined || passphrase === '')) {
    return problem(
      'E_KEY_PARSE',
      `${shown}: key is encrypted and no passphrase was given (HARBOR_KEY_PASSPHRASE)`,
    );
  }
  const blocks = splitPem(text).filter((b) => b.label.endsWith('PRIVATE KEY'));
  if (blocks.length === 0) {
    const empty = text.trim() === '';
    return problem('E_KEY_PARSE', `${shown}: ${empty ? 'file is empty' : 'holds no PEM PRIVATE KEY block'}`);
  }
  if (blocks.length > 1) {
    return problem(
      'E_KEY_PARSE',
      `${shown}: holds ${blocks.length} private keys; put exactly one in the file`,
    );
  }
  try {
    // The whole text, not the block: legacy encrypted PEM keeps its Proc-Type/DEK-Info headers inside the block.
    const key = createPrivateKey(
      encrypted ? { key: text, format: 'pem', passphrase: passphrase ?? '' } : { key: text, format: 'pem' },
    );
    if (key.type !== 'private') return problem('E_KEY_PARSE', `${shown}: not a private key`);
    return { key, pem: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
  } catch {
    // The OpenSSL reason ("bad decrypt") is not shown: it says nothing the message does not, and it is noisy.
    return problem(
      'E_KEY_PARSE',
      encrypted
        ? `${shown}: cannot decrypt the key (wrong passphrase, or a damaged file)`
        : `${shown}: private key does not parse (damaged or unsupported)`,
    );
  }
}

/** Reads and parses the pair's files, collecting one Problem per file that fails. Never throws. */
export function readPair(files: PairFiles, options: ReadOptions = {}): ReadResult {
  const problems: Problem[] = [];
  const pem: { cert?: string; key?: string; ca?: string } = {};
  let chain: X509Certificate[] | undefined;
  let privateKey: KeyObject | undefined;
  let caCerts: X509Certificate[] | undefined;

  const certShown = displayPath(files.certFile, options.displayRoot);
  const certText = readText(files.certFile, certShown, 'E_CERT_READ', 'certificate');
  if (typeof certText !== 'string') problems.push(certText);
  else {
    const parsed = parseCertificates(certText, certShown, 'E_CERT_PARSE');
    if ('code' in parsed) problems.push(parsed);
    else {
      chain = parsed.certs;
      pem.cert = parsed.pem;
    }
  }

  const keyShown = displayPath(files.keyFile, options.displayRoot);
  const keyText = readText(files.keyFile, keyShown, 'E_CERT_READ', 'key');
  if (typeof keyText !== 'string') problems.push(keyText);
  else {
    const parsed = parsePrivateKey(keyText, keyShown, options.passphrase);
    if ('code' in parsed) problems.push(parsed);
    else {
      privateKey = parsed.key;
      pem.key = parsed.pem;
    }
  }

  if (files.caFile !== undefined) {
    const caShown = displayPath(files.caFile, options.displayRoot);
    const caText = readText(files.caFile, caShown, 'E_CA_READ', 'client CA bundle');
    if (typeof caText !== 'string') problems.push(caText);
    else {
      const parsed = parseCertificates(caText, caShown, 'E_CA_READ');
      if ('code' in parsed) problems.push(parsed);
      else {
        caCerts = parsed.certs;
        pem.ca = parsed.pem;
      }
    }
  }
  return { chain, privateKey, caCerts, pem, problems };
}

/** Throws the first problem of a list as a HarborError (the others ride along in the message). */
export function throwProblems(problems: readonly Problem[]): void {
  const first = problems[0];
  if (first === undefined) return;
  const more =
    problems.length > 1
      ? ` (and ${problems.length - 1} more: ${problems
          .slice(1)
          .map((p) => p.message)
          .join('; ')})`
      : '';
  throw new HarborError(first.code, `${first.message}${more}`);
}
