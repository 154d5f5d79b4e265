// The node's HTTP/JSON API (issue 4; the rules are in docs/node.md):
//   POST   /v1/services                          {"name", "int_port"?} -> 201 credentials
//   GET    /v1/services, /v1/services/{id}       credentials, protocol, instances, counters
//   DELETE /v1/services/{id}                     -> 204
//   PUT    /v1/services/{id}/instances/{inst}    {"host", "port", "ttl"?} -> 201 new / 200 refreshed
//   DELETE /v1/services/{id}/instances/{inst}    -> 204
// Every error is one line of JSON: {"error": "...", "code": "E_..."}.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import {
  ADMIN_CONNECTIONS,
  type AdminRequestHandler,
  type ConnectionGuard,
  guardConnections,
  requestPath,
} from '../admin/index.js';
import { NODE_DEFAULTS } from '../config/defaults.js';
import { udpCheckProblem } from '../config/udp-check.js';
import { type ErrorCode, HarborError, isHarborError } from '../errors/index.js';
import { SECURE_CONTEXT_OPTIONS } from '../https/tls.js';
import type { Logger } from '../log/index.js';
import { MAX_INSTANCE_TTL_SECONDS } from '../node-api/index.js';
import type { ApiCertificate } from './api-certificate.js';
import { DASHBOARD_PATHS, Dashboard } from './dashboard.js';
import { isInstanceHost } from './host.js';
import type { HarborNode } from './node.js';

export interface NodeApiOptions {
  readonly node: HarborNode;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token: string | undefined;
  readonly logger: Logger;
  /**
   * The admin endpoint's handler (/healthz, /readyz, /metrics, /status),
   * mounted on the API address. The two probes answer without the token, so
   * an orchestrator can use them; /metrics and /status need it like the API.
   */
  readonly admin?: AdminRequestHandler | undefined;
  /** Connections the API keeps open at once (--api-connections); idle ones make room for new. */
  readonly maxConnections?: number | undefined;
  /** Serve HTTPS with this pair (--api-cert / --api-key); undefined: plain HTTP. */
  readonly certificate?: ApiCertificate | undefined;
}

const OPEN_PATHS = new Set(['/healthz', '/readyz']);

const MAX_BODY_BYTES = 64 * 1024;
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const STATUS: Partial<Record<ErrorCode, number>> = {
  E_API_REQUEST: 400,
  E_API_AUTH: 401,
  E_API_NOT_FOUND: 404,
  E_PORT_RANGE_EXHAUSTED: 503,
  E_PORT_TAKEN: 503,
  E_STORE_UNAVAILABLE: 503,
  E_STORE_CONFLICT: 409,
  E_SERVICE_EXISTS: 409,
};

/** Seconds a client waits before retrying a 503 (the store reconnects within a few). */
const RETRY_AFTER_SECONDS = 2;

class ApiError extends HarborError {
  readonly status: number;
  constructor(code: ErrorCode, message: string, status?: number) {
    super(code, message);
    this.status = status ?? STATUS[code] ?? 500;
  }
}

const badRequest = (message: string): ApiError => new ApiError('E_API_REQUEST', message);

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/** The body as a JSON object with only `allowed` keys, or a 400 naming what is wrong. */
function parseObject(text: string, allowed: readonly string[]): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw badRequest(`body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('body must be a JSON object');
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw badRequest(`unknown field "${key}" (allowed: ${allowed.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

export function parseServiceBody(text: string): { name: string; intPort: number | undefined } {
  const body = parseObject(text, ['name', 'int_port']);
  if (typeof body.name !== 'string' || !SERVICE_NAME.test(body.name)) {
    throw badRequest(
      '"name" must be a service name: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  }
  if (body.int_port !== undefined && !isPort(body.int_port)) {
    throw badRequest(`"int_port" must be an integer 1-65535, not ${JSON.stringify(body.int_port)}`);
  }
  return { name: body.name, intPort: body.int_port as number | undefined };
}

export function parseInstanceBody(text: string): {
  host: string;
  port: number;
  ttl: number | undefined;
  udpCheck?: string;
} {
  const body = parseObject(text, ['host', 'port', 'ttl', 'udp_check']);
  if (typeof body.host !== 'string' || !isInstanceHost(body.host)) {
    throw badRequest(`"host" must be an IP address or a hostname, not ${JSON.stringify(body.host)}`);
  }
  if (!isPort(body.port))
    throw badRequest(`"port" must be an integer 1-65535, not ${JSON.stringify(body.port)}`);
  const ttl = body.ttl ?? undefined;
  if (
    ttl !== undefined &&
    !(Number.isInteger(ttl) && (ttl as number) >= 1 && (ttl as number) <= MAX_INSTANCE_TTL_SECONDS)
  ) {
    throw badRequest(
      `"ttl" must be an integer number of seconds 1-${MAX_INSTANCE_TTL_SECONDS}, not ${JSON.stringify(ttl)}`,
    );
  }
  const problem = body.udp_check === undefined ? undefined : udpCheckProblem(body.udp_check);
  if (problem !== undefined) throw badRequest(`"udp_check" ${problem}`);
  const host = body.host.startsWith('[') ? body.host.slice(1, -1) : body.host;
  return {
    host,
    port: body.port,
    ttl: ttl as number | undefined,
    ...(body.udp_check !== undefined && { udpCheck: body.udp_check as string }),
  };
}

export class NodeApi {
  readonly #node: HarborNode;
  readonly #logger: Logger;
  readonly #tokenDigest: Buffer | undefined;
  readonly #server: http.Server;
  readonly #guard: ConnectionGuard;
  readonly #admin: AdminRequestHandler | undefined;
  readonly #dashboard: Dashboard;
  readonly #certificate: ApiCertificate | undefined;

  constructor(options: NodeApiOptions) {
    this.#node = options.node;
    this.#admin = options.admin;
    this.#logger = options.logger;
    this.#tokenDigest = options.token ? digest(`Bearer ${options.token}`) : undefined;
    this.#dashboard = new Dashboard(options.token || undefined, options.certificate !== undefined);
    const serverOptions = { requestTimeout: 30_000, connectionsCheckingInterval: 1_000 };
    const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => void this.#handle(req, res);
    const certificate = options.certificate;
    this.#certificate = certificate;
    if (certificate === undefined) this.#server = http.createServer(serverOptions, handle);
    else {
      const server = https.createServer(
        {
          ...serverOptions,
          // The sidecar's TLS policy: 1.2 and 1.3, AEAD suites only, no renegotiation.
          ...SECURE_CONTEXT_OPTIONS,
          ...certificate.pem,
          ALPNProtocols: ['http/1.1'],
          // A client has as long to finish its handshake as a plain one has to send its first byte.
          handshakeTimeout: ADMIN_CONNECTIONS.firstByteMs,
        },
        handle,
      );
      certificate.serve(server);
      this.#server = server;
    }
    // Idle or half-open clients neither lock the API out nor stall a shutdown (issue 9, item 2).
    this.#guard = guardConnections(this.#server, {
      ...ADMIN_CONNECTIONS,
      maxConnections: options.maxConnections ?? NODE_DEFAULTS.apiConnections,
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  /** Stops accepting; idle and half-open connections close now, requests in flight within `deadlineMs`. */
  async close(deadlineMs = 0): Promise<void> {
    await Promise.all([this.#guard.shutdown(deadlineMs), this.#certificate?.close()]);
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const path = requestPath(req.url);
      if (DASHBOARD_PATHS.has(path)) {
        this.#dashboard.handle(req, res, path, await readBody(req));
        return;
      }
      if (this.#admin) {
        if (!OPEN_PATHS.has(path) && !path.startsWith('/v1/')) this.#authorize(req);
        if (this.#admin(req, res)) return;
      }
      this.#authorize(req);
      const body = await readBody(req);
      await this.#route(req, res, body);
    } catch (error) {
      const status =
        error instanceof ApiError ? error.status : isHarborError(error) ? (STATUS[error.code] ?? 500) : 500;
      const code = isHarborError(error) ? error.code : 'E_API_REQUEST';
      const message = error instanceof Error ? error.message : String(error);
      if (status >= 500) this.#logger.error({ err: error, code, url: req.url }, 'api request failed');
      else if (this.#logger.isLevelEnabled('debug'))
        this.#logger.debug({ code, url: req.url, status }, message);
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (status === 401) headers['www-authenticate'] = 'Bearer realm="harbor-node"';
      if (status === 503) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
      if (error instanceof ApiError && status === 405) headers.allow = (error as MethodError).allow;
      // A body the API refused is not read to its end: the connection cannot carry another request.
      if (status === 413) headers.connection = 'close';
      if (!res.headersSent) res.writeHead(status, headers);
      res.end(`${JSON.stringify({ error: message, code })}\n`);
    }
  }

  /** A read answered while the store is away says how old what it shows may be (Age, and Harbor-Store-Stale in ms). */
  #staleness(res: http.ServerResponse): void {
    const store = this.#node.storeStatus();
    if (store.connected || store.stale_ms === null) return;
    res.setHeader('age', String(Math.floor(store.stale_ms / 1000)));
    res.setHeader('harbor-store-stale', String(store.stale_ms));
  }

  #authorize(req: http.IncomingMessage): void {
    if (!this.#tokenDigest) return;
    // The dashboard's session cookie: reads of the API only.
    if (req.url?.startsWith('/v1/') && this.#dashboard.allowsRead(req)) return;
    const given = req.headers.authorization;
    // Compare fixed-size digests so neither length nor content leaks through timing.
    if (!given || !timingSafeEqual(digest(given), this.#tokenDigest)) {
      throw new ApiError(
        'E_API_AUTH',
        !given ? 'missing bearer token (Authorization: Bearer ...)' : 'wrong bearer token',
      );
    }
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const path = requestPath(req.url);
    const parts = path.split('/').filter(Boolean).map(decodeSegment);
    const method = req.method ?? 'GET';
    if (
      parts[0] !== 'v1' ||
      parts[1] !== 'services' ||
      parts.length > 5 ||
      (parts.length >= 4 && parts[3] !== 'instances')
    ) {
      throw new ApiError('E_API_NOT_FOUND', `no such path: ${path}`);
    }
    const [, , ref, , instanceId] = parts;
    if (method === 'GET') this.#staleness(res);
    // A service is named by its id or by its name (unique on a node and in a cluster).
    if (ref !== undefined) await this.#node.ensureKnown(ref);
    const serviceId = ref === undefined ? undefined : (this.#node.idOf(ref) ?? ref);
    if (serviceId === undefined) {
      if (method === 'GET')
        return json(res, 200, { services: this.#node.list(), store: this.#node.storeStatus() });
      if (method === 'POST') {
        const { name, intPort } = parseServiceBody(body);
        const credentials = await this.#node.createService(name, intPort);
        res.setHeader('location', `/v1/services/${credentials.name}`);
        return json(res, 201, credentials);
      }
      throw new MethodError(method, 'GET, POST');
    }
    if (parts.length === 3) {
      if (method === 'GET') return json(res, 200, this.#node.view(serviceId));
      if (method === 'DELETE') {
        await this.#node.deleteService(serviceId);
        return empty(res);
      }
      throw new MethodError(method, 'GET, DELETE');
    }
    if (instanceId === undefined) throw new ApiError('E_API_NOT_FOUND', `no such path: ${path}`);
    if (!INSTANCE_ID.test(instanceId)) {
      throw badRequest('instance id must be 1-128 letters, digits, ".", "_", ":" or "-"');
    }
    if (method === 'PUT') {
      this.#node.view(serviceId); // 404 for an unknown service before the body is judged
      const spec = parseInstanceBody(body);
      const created = await this.#node.putInstance(serviceId, instanceId, spec);
      const view = this.#node.view(serviceId).instances.find((i) => i.id === instanceId);
      return json(res, created ? 201 : 200, view);
    }
    if (method === 'DELETE') {
      await this.#node.deleteInstance(serviceId, instanceId);
      return empty(res);
    }
    throw new MethodError(method, 'PUT, DELETE');
  }
}

class MethodError extends ApiError {
  readonly allow: string;
  constructor(method: string, allow: string) {
    super('E_API_REQUEST', `method ${method} not allowed here (allowed: ${allow})`, 405);
    this.allow = allow;
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw badRequest(`path segment "${segment}" is not valid percent-encoding`);
  }
}

/** What the API still reads (and drops) of a body over the limit, so that its 413 is not lost to a reset. */
const MAX_DISCARD_BYTES = 1024 * 1024;

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new ApiError('E_API_REQUEST', `body larger than ${MAX_BODY_BYTES} bytes`, 413);
    const declared = Number(req.headers['content-length'] ?? 0);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = () => {
      refused = true;
      chunks.length = 0;
      reject(tooLarge());
    };
    if (declared > MAX_BODY_BYTES) refuse();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (refused) {
        // Read on (and drop) while the 413 goes out: closing on unread data would reset the
        // connection and the client would never see the answer (issue 9, item 10). Bounded.
        if (size > MAX_BODY_BYTES + MAX_DISCARD_BYTES) req.socket.destroy();
        return;
      }
      if (size > MAX_BODY_BYTES) {
        refuse();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!refused) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (error) => {
      if (!refused) reject(error);
    });
  });
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  // Answers hold credentials: never kept by a browser or a shared cache.
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(value)}\n`);
}

function empty(res: http.ServerResponse): void {
  res.writeHead(204);
  res.end();
}
