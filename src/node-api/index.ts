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
