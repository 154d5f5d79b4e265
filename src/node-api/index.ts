// Requests to a harbor-node's API, for the `harbor` command and the sidecar's
// registration: node:http(s), not fetch, whose first use costs a quarter of a
// second of start-up (undici and its WebAssembly parser), every time a command
// runs and every time a sidecar starts.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Problem } from '../errors/index.js';

/** The longest TTL a node keeps an instance for without a refresh: its API refuses more. */
export const MAX_INSTANCE_TTL_SECONDS = 86_400;

/** A node's answer: its status and its body as text. */
export interface NodeApiAnswer {
  readonly status: number;
  readonly text: string;
}

/**
 * The certificates an https:// node's certificate must chain to (HARBOR_NODE_CA: a PEM bundle,
 * trusted instead of the system's roots), read from `file`; a problem names `source` and why.
 */
export function readNodeCa(
  file: string,
  source: string,
  readFile: (path: string) => string,
): { ok: true; pem: string } | { ok: false; problem: Problem } {
  let pem: string;
  try {
    pem = readFile(file);
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    return {
      ok: false,
      problem: { code: 'E_SETTING', message: `${source} ${file}: cannot be read (${why})` },
    };
  }
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate');
    createSecureContext({ ca: pem });
  } catch {
    return {
      ok: false,
      problem: { code: 'E_SETTING', message: `${source} ${file}: holds no PEM CA certificate that parses` },
    };
  }
  return { ok: true, pem };
}

/**
 * One request to a node's API (JSON body, bearer token), the answer read whole. `timeoutMs`:
 * how long the node may stay silent (the error's code is then ETIMEDOUT). `ca`: for an
 * https:// node, the PEM certificates it must chain to (undefined: the system's roots). A
 * connection that fails rejects with the system error (ECONNREFUSED, ...).
 */
export function nodeApiRequest(
  method: string,
  url: string,
  body: unknown,
  token: string | undefined,
  timeoutMs: number,
  ca?: string,
): Promise<NodeApiAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      reject(new Error('not a URL'));
      return;
    }
    const overTls = target.protocol === 'https:';
    const send = overTls ? httpsRequest : httpRequest;
    const options = { method, headers, timeout: timeoutMs, ...(overTls && ca !== undefined && { ca }) };
    const req = send(target, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The codes of a node certificate this client does not trust (node:tls's verification). */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

/**
 * Why a request to `url` failed, in a few words: the system's or TLS's code, and what to do
 * where there is one thing to do (an https:// node with a private CA, an http:// URL for one).
 */
export function describeRequestError(error: unknown, url: string): string {
  const e = error as { code?: string; message?: string } | undefined;
  const code = e?.code;
  if (code === 'ECONNRESET' && url.startsWith('http:')) {
    // A TLS server drops a plain request at once, with no answer.
    return `${code}: it closed the connection without answering (a node serving HTTPS, for an https:// URL?)`;
  }
  if (code === 'ETIMEDOUT') return 'request timed out';
  if (code !== undefined && UNTRUSTED.has(code)) {
    return `${code}: its certificate is not trusted here (a private CA: set HARBOR_NODE_CA to its PEM file)`;
  }
  if (code === 'CERT_HAS_EXPIRED') return `${code}: its certificate has expired`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${code}: its certificate does not name this host`;
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return `${code}: it does not speak TLS there (an http:// URL?)`;
  }
  return code ?? e?.message ?? String(error);
}
