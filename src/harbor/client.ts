// The `harbor` command's side of the node API: requests go to the first node
// of --node-url / HARBOR_NODE_URL that answers (a node that cannot be reached
// is skipped; one that answers, even with an error, has answered). A refusal
// comes back as a HarborError with the node's own code and words.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CATALOGUE, type ErrorCode, HarborError } from '../errors/index.js';

/** How long one node may take to answer before the next is tried. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface NodeAnswer<T> {
  readonly status: number;
  readonly body: T;
  /** The node that answered. */
  readonly url: string;
}

export class NodeClient {
  readonly urls: readonly string[];
  readonly #token: string | undefined;

  constructor(urls: readonly string[], token: string | undefined) {
    this.urls = urls;
    this.#token = token;
  }

  /** The answer of the first node that answers; a 4xx/5xx is thrown with the node's code and message. */
  async request<T>(method: string, path: string, body?: unknown): Promise<NodeAnswer<T>> {
    const answer = await this.send<T>(method, path, body);
    if (answer.status >= 400) throw refusal(answer);
    return answer;
  }

  /** Like request, but a 404 is an answer (undefined body), not a refusal. */
  async find<T>(path: string): Promise<T | undefined> {
    const answer = await this.send<T>('GET', path);
    if (answer.status === 404) return undefined;
    if (answer.status >= 400) throw refusal(answer);
    return answer.body;
  }

  async send<T>(method: string, path: string, body?: unknown): Promise<NodeAnswer<T>> {
    const reasons: string[] = [];
    for (const url of this.urls) {
      let answer: { status: number; text: string };
      try {
        answer = await exchange(method, url + path, body, this.#token);
      } catch (error) {
        reasons.push(`${url}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        continue;
      }
      let parsed: unknown;
      try {
        parsed = answer.text === '' ? undefined : JSON.parse(answer.text);
      } catch {
        parsed = { error: answer.text.slice(0, 200) };
      }
      return { status: answer.status, body: parsed as T, url };
    }
    throw new HarborError(
      'E_NODE_UNREACHABLE',
      `no Harbor node answered (${reasons.join('; ')}); set --node-url or HARBOR_NODE_URL`,
    );
  }
}

/**
 * One request with node:http(s): a command is one or two requests, and fetch's first use
 * costs a quarter of a second of start-up (undici and its WebAssembly parser) every time.
 */
function exchange(
  method: string,
  url: string,
  body: unknown,
  token: string | undefined,
): Promise<{ status: number; text: string }> {
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
    const req = send(target, { method, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
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

/** A node's 4xx/5xx as the error it names (its own code when this package knows it). */
export function refusal(answer: NodeAnswer<unknown>): HarborError {
  const { error, code } = (answer.body ?? {}) as { error?: string; code?: string };
  const known = code !== undefined && code in CATALOGUE ? (code as ErrorCode) : 'E_API_REQUEST';
  return new HarborError(known, `${error ?? `the node answered ${answer.status}`}`);
}
