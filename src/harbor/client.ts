// The `harbor` command's side of the node API: requests go to the first node
// of --node-url / HARBOR_NODE_URL that answers (a node that cannot be reached
// is skipped; one that answers, even with an error, has answered). A refusal
// comes back as a HarborError with the node's own code and words.
import { CATALOGUE, type ErrorCode, HarborError } from '../errors/index.js';
import { describeRequestError, type NodeApiAnswer, nodeApiRequest } from '../node-api/index.js';

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
  readonly #ca: string | undefined;

  /** `ca`: PEM certificates an https:// node must chain to (HARBOR_NODE_CA); undefined: the system's roots. */
  constructor(urls: readonly string[], token: string | undefined, ca?: string) {
    this.urls = urls;
    this.#token = token;
    this.#ca = ca;
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
      let answer: NodeApiAnswer;
      try {
        answer = await nodeApiRequest(method, url + path, body, this.#token, REQUEST_TIMEOUT_MS, this.#ca);
      } catch (error) {
        reasons.push(`${url}: ${describeRequestError(error, url)}`);
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

/** A node's 4xx/5xx as the error it names (its own code when this package knows it). */
export function refusal(answer: NodeAnswer<unknown>): HarborError {
  const { error, code } = (answer.body ?? {}) as { error?: string; code?: string };
  const known = code !== undefined && code in CATALOGUE ? (code as ErrorCode) : 'E_API_REQUEST';
  return new HarborError(known, `${error ?? `the node answered ${answer.status}`}`);
}
