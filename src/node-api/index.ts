// Requests to a harbor-node's API, for the `harbor` command and the sidecar's
// registration: node:http(s), not fetch, whose first use costs a quarter of a
// second of start-up (undici and its WebAssembly parser), every time a command
// runs and every time a sidecar starts.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** The longest TTL a node keeps an instance for without a refresh: its API refuses more. */
export const MAX_INSTANCE_TTL_SECONDS = 86_400;

/** A node's answer: its status and its body as text. */
export interface NodeApiAnswer {
  readonly status: number;
  readonly text: string;
}

/**
 * One request to a node's API (JSON body, bearer token), the answer read whole. `timeoutMs`:
 * how long the node may stay silent (the error's code is then ETIMEDOUT). A connection that
 * fails rejects with the system error (ECONNREFUSED, ...).
 */
export function nodeApiRequest(
  method: string,
  url: string,
  body: unknown,
  token: string | undefined,
  timeoutMs: number,
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
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(target, { method, headers, timeout: timeoutMs }, (res) => {
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
 * Why a request to a node failed, in a few words: the system's or TLS's code, and what to do
 * where there is one thing to do (an https:// node behind a terminator with a private CA).
 */
export function describeRequestError(error: unknown): string {
  const e = error as { code?: string; message?: string } | undefined;
  const code = e?.code;
  if (code === 'ETIMEDOUT') return 'request timed out';
  if (code !== undefined && UNTRUSTED.has(code)) {
    return `${code}: its certificate is not trusted here (a private CA: set NODE_EXTRA_CA_CERTS to its PEM file)`;
  }
  if (code === 'CERT_HAS_EXPIRED') return `${code}: its certificate has expired`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${code}: its certificate does not name this host`;
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return `${code}: it does not speak TLS there (an http:// URL?)`;
  }
  return code ?? e?.message ?? String(error);
}
