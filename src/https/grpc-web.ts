// gRPC-Web (the protocol browsers speak to gRPC services: they cannot read
// HTTP trailers) carried to a gRPC server over h2c: a request whose
// content-type is application/grpc-web[-text][+fmt] goes to the backend as
// application/grpc[+fmt], its body base64-decoded in the text form; the
// response's messages pass as they are (base64-encoded in the text form) and
// its trailers (grpc-status, grpc-message, trailing metadata) become the last
// frame of the body, flagged 0x80, as the protocol says
// (github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md).
import type * as http2 from 'node:http2';
import type { Head } from './head.js';

const WEB = 'application/grpc-web';
const WEB_TEXT = 'application/grpc-web-text';
const GRPC = 'application/grpc';

/** The frame flag of the trailers frame (the high bit; bit 0 is compression, as for messages). */
const TRAILERS_FLAG = 0x80;

/**
 * The transcoder for a request whose content-type says gRPC-Web, else null. `contentType` as
 * the client sent it: `application/grpc-web`, `application/grpc-web+proto`,
 * `application/grpc-web-text`, `application/grpc-web-text+json`, parameters allowed after `;`.
 */
export function grpcWebOf(contentType: string | undefined): GrpcWeb | null {
  if (contentType === undefined) return null;
  const type = contentType.trim().toLowerCase();
  if (!type.startsWith(WEB)) return null;
  const text = type.startsWith(WEB_TEXT);
  // What follows the media type's name: '', '+proto', '+json', or parameters.
  const rest = type.slice(text ? WEB_TEXT.length : WEB.length);
  if (rest !== '' && rest[0] !== '+' && rest[0] !== ';') return null;
  return new GrpcWeb(text, rest);
}

/** One gRPC-Web call's two bodies, transcoded chunk by chunk (a call's state: one per stream). */
export class GrpcWeb {
  /** The text form (base64 bodies both ways). */
  readonly text: boolean;
  /** The content-type's suffix after its name ('+proto', ';charset=...', or ''). */
  readonly #suffix: string;
  /** Request: base64 characters not yet decoded (fewer than a group of four). */
  #pendingText = '';
  /** Response: bytes not yet encoded (fewer than three), text form only. */
  #pendingBytes: Buffer = EMPTY;

  constructor(text: boolean, suffix: string) {
    this.text = text;
    this.#suffix = suffix;
  }

  /** The request's header list for the gRPC server (changed in place, and returned). */
  requestHeaders(headers: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
    headers['content-type'] = GRPC + this.#suffix;
    // gRPC servers ask for it (a client that cannot read trailers does not send it).
    headers.te = 'trailers';
    // The text form's body shrinks by a quarter on the way; gRPC frames carry their own lengths.
    if (this.text) delete headers['content-length'];
    return headers;
  }

  /**
   * The response's header list for the browser, changed in place: true when the answer is gRPC
   * (its content-type now says gRPC-Web, and its body is to be transcoded); false for any other
   * answer (a 404 page of a server that is not all gRPC), which passes as it is.
   */
  responseHeaders(headers: http2.OutgoingHttpHeaders): boolean {
    const type = headers['content-type'];
    if (typeof type !== 'string' || !type.toLowerCase().startsWith(GRPC)) return false;
    headers['content-type'] = (this.text ? WEB_TEXT : WEB) + type.slice(GRPC.length);
    return true;
  }

  /** Request body bytes from the browser, as the gRPC server takes them. */
  decodeRequest(chunk: Buffer): Buffer {
    if (!this.text) return chunk;
    // Whitespace is no part of base64: dropped before the groups of four are counted.
    const text = this.#pendingText + chunk.toString('latin1').replace(/\s+/g, '');
    const whole = text.length - (text.length % 4);
    this.#pendingText = text.slice(whole);
    return decodeBase64Groups(text.slice(0, whole));
  }

  /** A request whose body ended inside a base64 group: not base64, refused. */
  get requestCut(): boolean {
    return this.#pendingText !== '';
  }

  /** Response body bytes from the gRPC server, as the browser takes them. */
  encodeResponse(chunk: Buffer): Buffer {
    if (!this.text) return chunk;
    const bytes = this.#pendingBytes.length === 0 ? chunk : Buffer.concat([this.#pendingBytes, chunk]);
    const whole = bytes.length - (bytes.length % 3);
    this.#pendingBytes = bytes.subarray(whole);
    return Buffer.from(bytes.subarray(0, whole).toString('base64'), 'latin1');
  }

  /**
   * The end of the response body: the trailers frame (a frame of `name: value` lines, flagged
   * 0x80), after what was still held back in the text form.
   */
  endResponse(trailers: http2.OutgoingHttpHeaders): Buffer {
    const frame = trailersFrame(trailers);
    if (!this.text) return frame;
    const rest = Buffer.concat([this.#pendingBytes, frame]);
    this.#pendingBytes = EMPTY;
    return Buffer.from(rest.toString('base64'), 'latin1');
  }
}

const EMPTY = Buffer.alloc(0);

/** What a gRPC-Web answer lets a page of another site read of its head (a trailers-only status). */
const EXPOSED = 'grpc-status, grpc-message, grpc-status-details-bin';
/** The access log's reason for a preflight the proxy answered. */
export const PREFLIGHT_REASON = 'CORS preflight (--grpc-web-origins)';
/** How long a browser may keep a preflight's answer (a day: Chromium keeps at most two hours). */
const PREFLIGHT_MAX_AGE = '86400';

/**
 * The origins of pages on other sites allowed to make gRPC-Web calls (--grpc-web-origins): the
 * proxy answers their CORS preflights, which a gRPC server cannot, and marks the answers to them.
 */
export class GrpcWebOrigins {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;

  /** `origins`: as the settings give them (`https://app.example.com`, lower case), or `*`. */
  constructor(origins: readonly string[]) {
    this.#any = origins.includes('*');
    this.#origins = new Set(origins);
  }

  /** The Access-Control-Allow-Origin for a request from `origin`; null: none (not allowed, or no Origin). */
  allow(origin: string | undefined): string | null {
    if (origin === undefined) return null;
    if (this.#any) return '*';
    return this.#origins.has(origin.toLowerCase()) ? origin : null;
  }

  /**
   * The answer's header list when `head` (an OPTIONS request's) is a CORS preflight from a page of
   * an allowed origin, which the proxy answers itself (a gRPC server cannot); else null: it goes on.
   */
  preflightFor(head: Head): http2.OutgoingHttpHeaders | null {
    if (head.method !== 'OPTIONS' || head.header('access-control-request-method') === undefined) return null;
    const allow = this.allow(head.header('origin'));
    return allow === null ? null : this.preflight(allow, head.header('access-control-request-headers'));
  }

  /**
   * The answer to a preflight from an allowed origin (`allowOrigin` from allow()): POST, with the
   * headers it asked for (`requested`: its Access-Control-Request-Headers).
   */
  preflight(allowOrigin: string, requested: string | undefined): http2.OutgoingHttpHeaders {
    const headers: http2.OutgoingHttpHeaders = {
      ':status': 204,
      'access-control-allow-origin': allowOrigin,
      'access-control-allow-methods': 'POST',
      'access-control-max-age': PREFLIGHT_MAX_AGE,
    };
    if (requested !== undefined && requested !== '') headers['access-control-allow-headers'] = requested;
    if (allowOrigin !== '*') headers.vary = 'Origin';
    return headers;
  }

  /** An answer to a gRPC-Web call from an allowed origin, marked for it (changed in place). */
  mark(headers: http2.OutgoingHttpHeaders, allowOrigin: string): void {
    headers['access-control-allow-origin'] = allowOrigin;
    headers['access-control-expose-headers'] = EXPOSED;
    if (allowOrigin !== '*') {
      const vary = headers.vary;
      headers.vary = vary === undefined ? 'Origin' : `${String(vary)}, Origin`;
    }
  }
}

/**
 * Base64 in whole groups of four, where a group may end in padding: the text form lets a body be
 * the base64 of several pieces one after another, each padded (grpc-web's clients send one piece
 * per message).
 */
function decodeBase64Groups(text: string): Buffer {
  let pad = text.indexOf('=');
  if (pad === -1) return Buffer.from(text, 'base64');
  const parts: Buffer[] = [];
  let from = 0;
  while (pad !== -1) {
    // The end of the group that holds this '='.
    const end = pad + 4 - ((pad - from) % 4);
    parts.push(Buffer.from(text.slice(from, end), 'base64'));
    from = end;
    pad = text.indexOf('=', from);
  }
  if (from < text.length) parts.push(Buffer.from(text.slice(from), 'base64'));
  return Buffer.concat(parts);
}

/** The trailers as gRPC-Web's last frame: flag 0x80, length, `name: value\r\n` lines (names lower case). */
function trailersFrame(trailers: http2.OutgoingHttpHeaders): Buffer {
  let lines = '';
  for (const name of Object.keys(trailers)) {
    const value = trailers[name];
    if (value === undefined || name.startsWith(':')) continue;
    for (const one of Array.isArray(value) ? value : [value]) lines += `${name.toLowerCase()}: ${one}\r\n`;
  }
  const body = Buffer.from(lines, 'latin1');
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame[0] = TRAILERS_FLAG;
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}
