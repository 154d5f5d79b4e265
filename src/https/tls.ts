// TLS settings of the HTTPS proxy, in one place, so that every SecureContext
// the proxy serves (at start and after each certificate reload) is built the
// same way: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, the chain sent
// as it is in the file.
import { constants } from 'node:crypto';
import type * as tls from 'node:tls';
import { sessionIdContextFor } from '../certs/pair-value.js';

/**
 * The suites in the server's order of preference (Mozilla "intermediate"). TLS 1.3: OpenSSL's
 * three, AES-128-GCM first as for TLS 1.2 (OpenSSL's own order puts AES-256-GCM first: 14 AES
 * rounds to 10, 6% slower sealing on these machines' VAES; with the server's order every
 * client got it, browsers that ask for AES-128 first included). TLS 1.2: ECDHE with AES-GCM or
 * ChaCha20-Poly1305 only, ECDSA before RSA. A client that puts ChaCha20 first (a phone without
 * AES instructions, for which software AES is slow and not constant-time) gets it:
 * SSL_OP_PRIORITIZE_CHACHA below.
 */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Resumed sessions are only accepted for the same context id; with client
 * authentication on, OpenSSL refuses to resume without one. A context with a
 * client CA gets its own, from the CA's bytes (sessionIdContextFor).
 */
const SESSION_ID_CONTEXT = 'harbor-sidecar';

/** Options every server SecureContext gets, whoever builds it. */
export const SECURE_CONTEXT_OPTIONS: Readonly<tls.SecureContextOptions> = Object.freeze({
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: CIPHERS,
  honorCipherOrder: true,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  sessionIdContext: SESSION_ID_CONTEXT,
  sessionTimeout: 300,
  // TLS 1.2 renegotiation refused: each one is a full handshake a client can ask for in a
  // loop (testssl: "client-initiated renegotiation, DoS threat"; issue 9, item 18). TLS 1.3
  // has none. nginx and HAProxy refuse it too. The server's order holds, except that a client
  // whose first choice is ChaCha20-Poly1305 gets it (as Go's and BoringSSL's servers do).
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_PRIORITIZE_CHACHA,
});

export interface PemPair {
  /** The certificate file's contents: the leaf first, then its chain, served as written. */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly passphrase?: string;
  /** A client CA bundle: when present, clients must present a certificate that verifies against it. */
  readonly ca?: string | Buffer;
}

/** The options the proxy serves a pair with: every SECURE_CONTEXT_OPTIONS, and the PEMs. */
export function serverTlsOptions(pair: PemPair): tls.SecureContextOptions {
  return {
    ...SECURE_CONTEXT_OPTIONS,
    cert: pair.cert,
    key: pair.key,
    ...(pair.passphrase === undefined ? {} : { passphrase: pair.passphrase }),
    ...(pair.ca === undefined ? {} : { ca: pair.ca }),
    sessionIdContext: sessionIdContextFor(pair.ca, SESSION_ID_CONTEXT),
  };
}

/** ALPN: h2 first; http/1.0 is listed so that a client offering only it is served, not refused. */
export const ALPN_PROTOCOLS = ['h2', 'http/1.1', 'http/1.0'];
