// What every client connection of one proxy shares, built once per proxy: the
// backend pool, the forwarding settings, limits, counters, and the canned
// answers the proxy gives itself.
import { SIDECAR_DEFAULTS } from '../config/defaults.js';
import { isRoutineSocketError, type Logger } from '../log/index.js';
import type { InactivitySweep } from '../sockets/inactivity.js';
import type { LiveMember, LiveSet } from '../sockets/live-set.js';
import type { ServiceStats } from '../stats/index.js';
import type { AccessLog } from './access-log.js';
import type { ForwardSettings } from './forwarding.js';
import type { GrpcWebOrigins } from './grpc-web.js';
import type { H2cBackend } from './h2c-backend.js';
import type { BackendPool } from './pool.js';

export interface Limits {
  /** Longest time a client may take to send a whole request head. */
  readonly headerTimeoutMs: number;
  /** Longest time an idle keep-alive connection stays open. */
  readonly idleTimeoutMs: number;
  /** Largest request head (431 beyond it); also bounds response heads and trailers. */
  readonly maxHeaderBytes: number;
  /** Most client connections open at once; more are closed at accept. */
  readonly maxConnections: number;
  /** Longest wait for the backend (connect, then the response head, then each pause in its body): 504. */
  readonly backendTimeoutMs: number;
  /** Largest request body without a length (HTTP/2, HTTP/1.1 chunked) held to be sent with one (413 beyond); 0: relayed chunked as it comes. */
  readonly maxBufferedBodyBytes: number;
}

/** The proxy's limits when built without settings: the settings' own defaults (src/config/defaults.ts). */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  headerTimeoutMs: SIDECAR_DEFAULTS.headerTimeoutMs,
  idleTimeoutMs: SIDECAR_DEFAULTS.idleTimeoutMs,
  maxHeaderBytes: SIDECAR_DEFAULTS.maxHeaderBytes,
  maxConnections: SIDECAR_DEFAULTS.maxConnections,
  backendTimeoutMs: SIDECAR_DEFAULTS.backendTimeoutMs,
  maxBufferedBodyBytes: SIDECAR_DEFAULTS.maxBufferedBodyBytes,
});

/** A client connection the proxy can drain and close, in `ProxyCore.connections`. */
export interface ClientConnection extends LiveMember {
  /** Draining: close now when idle, else after the exchange in flight. */
  drain(): void;
  destroy(): void;
}

export interface ProxyCore {
  readonly service: string;
  readonly pool: BackendPool;
  readonly settings: ForwardSettings;
  readonly stats: ServiceStats;
  readonly logger: Logger;
  readonly limits: Limits;
  readonly connections: LiveSet<ClientConnection>;
  /** The inactivity timeouts of the client and backend sockets. */
  readonly sweep: InactivitySweep;
  draining: boolean;
  /** One line per request when on (--access-log). */
  readonly accessLog?: AccessLog | undefined;
  /** The backend spoken to as h2c by HTTP/2 clients' streams (--backend-protocol h2c). */
  readonly h2c?: H2cBackend | undefined;
  /** Origins allowed to make gRPC-Web calls across sites (--grpc-web-origins, with h2c). */
  readonly grpcWebOrigins?: GrpcWebOrigins | undefined;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

const BODIES: Record<number, string> = {
  400: 'Bad request.\n',
  405: 'Method not allowed.\n',
  408: 'Request timed out.\n',
  413: 'Request body too large.\n',
  414: 'Request target too long.\n',
  431: 'Request header fields too large.\n',
  500: 'Internal server error: the proxy could not hold the request body.\n',
  501: 'Not implemented.\n',
  502: 'Bad gateway: the application gave no valid answer.\n',
  503: 'Service unavailable: the application is not listening yet.\n',
  504: 'Gateway timeout: the application did not answer in time.\n',
  505: 'HTTP version not supported.\n',
};

/** Why the proxy answered a request itself, in a word or three (the access log's `reason`). */
export const REFUSAL_REASONS: Readonly<Record<number, string>> = {
  400: 'bad request',
  405: 'method not allowed',
  408: 'request head timed out',
  413: 'request body too large',
  414: 'request target too long',
  431: 'request head too large',
  500: 'request body could not be held',
  502: 'backend failed',
  503: 'backend not listening',
  504: 'backend timed out',
};

/**
 * Why the proxy answered `status` for an exchange that failed, as the access log says it: the
 * status's words, and for a 502 what failed (`detail`, as the pool was told).
 */
export function failureReason(status: number, detail: string): string {
  return status === 502 ? `backend failed: ${detail}` : (REFUSAL_REASONS[status] ?? detail);
}

/**
 * How long the backend may take to answer Expect: 100-continue before the proxy says 100 Continue
 * itself (HTTP/1 and HTTP/2 alike). Many framework servers (uWSGI among them) never answer it, and
 * the client would wait its own timeout (curl: 1 s) before sending the body.
 */
export const CONTINUE_WAIT_MS = 250;

/** Seconds a 503 asks the client to wait: frameworks usually start within a few seconds. */
const RETRY_AFTER_SECONDS = 2;

const cannedCache = new Map<string, string>();

/** A complete short plain-text response the proxy gives itself. `close` adds Connection: close. */
export function cannedResponse(status: number, close: boolean, hsts?: string, requestId?: string): string {
  const text = cannedText(status, close, hsts);
  if (requestId === undefined || requestId === '') return text;
  // The request's id in the proxy's own answer: what the client quotes to find it in the logs.
  const end = text.indexOf('\r\n\r\n');
  return `${text.slice(0, end)}\r\nX-Request-Id: ${requestId}${text.slice(end)}`;
}

/**
 * The length of the head of an answer the proxy wrote itself as one text (a cannedResponse, the
 * plain-HTTP redirect), its blank line included.
 */
export function cannedHeadLength(text: string): number {
  return text.indexOf('\r\n\r\n') + 4;
}

function cannedText(status: number, close: boolean, hsts: string | undefined): string {
  const key = `${close ? -status : status} ${hsts ?? ''}`;
  let text = cannedCache.get(key);
  if (text === undefined) {
    const body = BODIES[status] ?? `${status}\n`;
    text =
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (status === 503 ? `Retry-After: ${RETRY_AFTER_SECONDS}\r\n` : '') +
      (hsts === undefined ? '' : `Strict-Transport-Security: ${hsts}\r\n`) +
      (close ? 'Connection: close\r\n' : '') +
      `\r\n${body}`;
    cannedCache.set(key, text);
  }
  return text;
}

/** A client socket failed: a routine end (reset, broken pipe) quietly at debug, anything else at warn. */
export function reportSocketError(core: ProxyCore, error: Error, where: string): void {
  const logger = core.logger;
  const code = (error as { code?: string }).code;
  if (isRoutineSocketError(error)) {
    if (logger.isLevelEnabled('debug'))
      logger.debug({ service: core.service, where, code }, 'client went away');
    return;
  }
  logger.warn({ service: core.service, where, code, error: error.message }, 'client socket error');
}
