// The value a ReloadablePair holds: a loaded, checked pair with its TLS
// context built, plus what a log line may say about it. Built off to the side
// by a reload, then swapped in whole.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { HarborError, isWarning, type Problem } from '../errors/index.js';
import type { Inspection } from './inspect.js';
import { displayPath, type PairFiles } from './pair.js';
import type { Selection, SelectionReason } from './select.js';
import { type LoadedPair, strengthWarnings, validityProblems } from './validate.js';

export interface PairValue {
  /** Built once per load; hand it to handshakes (SNICallback, `secureContext`). */
  readonly secureContext: SecureContext;
  /** What secureContext was built from, for server.setSecureContext(). Holds the key: never log it. */
  readonly contextOptions: SecureContextOptions;
  /** Safe to log and print. */
  readonly inspection: Inspection;
  readonly files: PairFiles;
  readonly reason: SelectionReason;
  readonly selection: Selection;
  /** Whether the certificate was within its validity period when loaded. */
  readonly valid: boolean;
  readonly loadedAt: Date;
}

/**
 * The session id context of a context that verifies clients against `ca`: a resumed session
 * (ticket or session id) is only accepted under the context it was made in, and the client's
 * certificate is not checked again when it resumes. Naming the CA bundle's bytes in it means
 * that a session made before the client CA changed (one CA swapped for another, or client
 * authentication turned on) is never resumed after: the client makes a full handshake and is
 * verified against the new CA, as nginx does by hashing its client CA list into the context.
 * Without a CA: `base`, so that sessions resume across certificate swaps.
 */
export function sessionIdContextFor(ca: string | Buffer | undefined, base: string): string {
  if (ca === undefined) return base;
  // OpenSSL takes at most 32 bytes (SSL_MAX_SID_CTX_LENGTH).
  return `ca:${createHash('sha256').update(ca).digest('hex').slice(0, 29)}`;
}

export interface Candidate {
  readonly value: PairValue;
  /** Same files and same bytes as the current value. */
  readonly identity: string;
  readonly warnings: readonly Problem[];
  readonly validityErrors: readonly Problem[];
}

export interface BuildOptions {
  /** Merged into the context; cert, key and ca come from the pair. */
  readonly contextOptions: SecureContextOptions | undefined;
  readonly now: Date;
  readonly warnDays: number;
  readonly displayRoot: string | undefined;
}

/** The value for a loaded pair, its context built; throws E_CERT_UNUSABLE when OpenSSL refuses it. */
export function buildCandidate(selection: Selection, loaded: LoadedPair, options: BuildOptions): Candidate {
  const ca = loaded.pem.ca;
  const base = options.contextOptions?.sessionIdContext;
  const contextOptions: SecureContextOptions = {
    ...options.contextOptions,
    cert: loaded.pem.cert,
    key: loaded.pem.key,
    ...(ca === undefined ? {} : { ca }),
    ...(base === undefined ? {} : { sessionIdContext: sessionIdContextFor(ca, base) }),
  };
  let secureContext: SecureContext;
  try {
    secureContext = createSecureContext(contextOptions);
  } catch (error) {
    throw new HarborError(
      'E_CERT_UNUSABLE',
      `${displayPath(loaded.files.certFile, options.displayRoot)}: OpenSSL refused the pair for TLS (${(error as Error).message})`,
      { cause: error },
    );
  }
  const problems = [
    ...validityProblems(loaded.inspection, options.now, options.warnDays, options.displayRoot),
    ...strengthWarnings(loaded.inspection, loaded.chain, options.displayRoot),
  ];
  const validityErrors = problems.filter((p) => !isWarning(p));
  return {
    value: {
      secureContext,
      contextOptions,
      inspection: loaded.inspection,
      files: loaded.files,
      reason: selection.reason,
      selection,
      valid: validityErrors.length === 0,
      loadedAt: options.now,
    },
    identity: [
      loaded.files.certFile,
      loaded.files.keyFile,
      loaded.files.caFile ?? '',
      loaded.pem.cert,
      loaded.pem.key,
      loaded.pem.ca ?? '',
    ].join('\0'),
    warnings: [...selection.warnings, ...problems.filter(isWarning)],
    validityErrors,
  };
}

/** What a log line says about a pair: never key material. */
export function describePair(value: PairValue | undefined) {
  if (value === undefined) return undefined;
  const i = value.inspection;
  return {
    fingerprint: i.fingerprint256,
    subject: i.subject,
    sans: [...i.sans.dns, ...i.sans.ip],
    notAfter: i.notAfter.toISOString(),
    certFile: value.files.certFile,
    reason: value.reason,
  };
}

/** A digest of the raw bytes of the files, so one broken state is reported once however often it is re-read. */
export function signatureOf(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    try {
      hash.update(readFileSync(file));
    } catch (error) {
      hash.update(`missing:${(error as NodeJS.ErrnoException).code}`);
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}
