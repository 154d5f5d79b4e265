// The conversions between an HTTP/2 stream's header lists and the HTTP/1.1
// heads the backend speaks: a stream's request becomes an HTTP/1.1 head (so that
// one parser and one set of rules serve both protocols), and a backend's
// response head and trailers become HTTP/2 header lists.
import type * as http2 from 'node:http2';
import { parseTrailers } from './chunked.js';
import type { Head } from './head.js';
import { K_CONTENT_LENGTH, K_REPEATED_LENGTH } from './header-kinds.js';

/** Request headers HTTP/2 forbids or the HTTP/1.1 head gets from elsewhere. */
const SKIP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  'te',
]);
/** Response headers that must not appear in an HTTP/2 response (RFC 9113 section 8.2.2). */
const SKIP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/**
 * A stream's request as an HTTP/1.1 head (ending in its blank line), and whether it gave a length.
 * With `websocketKey` the stream is a WebSocket's extended CONNECT (RFC 8441): its head is the
 * HTTP/1.1 handshake it stands for, a GET with `Upgrade: websocket` and that key (HTTP/2 has no
 * Sec-WebSocket-Key: a client's own is not passed on).
 */
export function http1RequestHead(
  headers: http2.IncomingHttpHeaders,
  websocketKey = '',
): { text: string; hasLength: boolean } {
  const method = websocketKey === '' ? String(headers[':method'] ?? 'GET') : 'GET';
  const path = String(headers[':path'] ?? '/');
  const authority = headers[':authority'] ?? headers.host;
  let text = `${method} ${path} HTTP/1.1\r\n`;
  if (authority !== undefined) text += `Host: ${authority}\r\n`;
  let hasLength = false;
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 0x3a || SKIP_REQUEST.has(name)) continue;
    const value = headers[name];
    if (value === undefined || (websocketKey !== '' && name === 'sec-websocket-key')) continue;
    if (name === 'content-length') hasLength = true;
    if (Array.isArray(value)) for (const v of value) text += `${name}: ${v}\r\n`;
    else text += `${name}: ${value}\r\n`;
  }
  if (websocketKey !== '')
    text += `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${websocketKey}\r\n`;
  return { text: `${text}\r\n`, hasLength };
}

/** The last chunk of a chunked request body, carrying the stream's trailers (nghttp2 has checked their syntax). */
export function lastChunk(trailers: http2.IncomingHttpHeaders | null): string {
  let last = '0\r\n';
  if (trailers !== null) {
    for (const name of Object.keys(trailers)) {
      const value = trailers[name];
      if (name.charCodeAt(0) === 0x3a || value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) last += `${name}: ${v}\r\n`;
    }
  }
  return `${last}\r\n`;
}

/**
 * The backend's response head as an HTTP/2 header list; `hsts` is added when the backend sent
 * none. A 1xx or 204 loses its Content-Length (RFC 9110 section 8.6: a server must not send
 * one): HTTP/1.1 clients ignore it, but nghttp2's (curl's, Node's) reset the stream over a
 * non-zero one. A 304's is kept: it describes the representation, and RFC 9113 allows it.
 */
export function http2ResponseHeaders(head: Head, hsts: string | undefined): http2.OutgoingHttpHeaders {
  const status = head.status;
  const headers: http2.OutgoingHttpHeaders = { ':status': status };
  const noLength = status < 200 || status === 204;
  for (let i = 0; i < head.count; i++) {
    if (head.kind[i] === K_REPEATED_LENGTH) continue;
    const name = head.name(i).toLowerCase();
    if (SKIP_RESPONSE.has(name) || (noLength && name === 'content-length')) continue;
    // A list of one length ('2, 2') as that length: nghttp2 refuses the list.
    const value =
      head.contentLengthListed && head.kind[i] === K_CONTENT_LENGTH
        ? String(head.contentLength)
        : head.value(i);
    const prior = headers[name];
    if (prior === undefined) headers[name] = value;
    else if (name === 'set-cookie')
      headers[name] = Array.isArray(prior) ? [...prior, value] : [String(prior), value];
    else headers[name] = `${String(prior)}, ${value}`;
  }
  if (hsts !== undefined && headers['strict-transport-security'] === undefined) {
    headers['strict-transport-security'] = hsts;
  }
  return headers;
}

/**
 * An answer of the proxy's own, as core.ts writes it for HTTP/1.1, as an HTTP/2 header list
 * and body: one answer for both protocols.
 */
export function http2Answer(text: string): { headers: http2.OutgoingHttpHeaders; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const headers: http2.OutgoingHttpHeaders = { ':status': Number(lines[0]?.slice(9, 12)) };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    if (!SKIP_RESPONSE.has(name)) headers[name] = line.slice(colon + 1).trim();
  }
  return { headers, body: text.slice(end + 4) };
}

/** The backend's chunked-body trailers as HTTP/2 trailers. */
export function http2Trailers(text: string): http2.OutgoingHttpHeaders {
  const trailers: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of parseTrailers(text)) {
    if (!SKIP_RESPONSE.has(name)) trailers[name] = value;
  }
  return trailers;
}

/**
 * The request head built for an HTTP/1.1 backend (buildRequestHead: the header rules applied,
 * the forwarding headers and the request id added) as the header list of a stream to an h2c
 * backend: `:authority` from its Host, the fields HTTP/2 forbids left out, and `te: trailers`
 * kept when the client sent it (gRPC servers require it; the HTTP/1.1 head never carries it
 * from a stream).
 */
export function h2cRequestHeaders(text: string, teTrailers: boolean): http2.OutgoingHttpHeaders {
  const lines = text.slice(0, text.length - 4).split('\r\n');
  const first = lines[0] as string;
  const space = first.indexOf(' ');
  const headers: http2.OutgoingHttpHeaders = {
    ':method': first.slice(0, space),
    ':scheme': 'http',
    ':path': first.slice(space + 1, first.lastIndexOf(' ')),
  };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'host') headers[':authority'] = value;
    else if (SKIP_REQUEST.has(name)) continue;
    else {
      const prior = headers[name];
      if (prior === undefined) headers[name] = value;
      else headers[name] = Array.isArray(prior) ? [...prior, value] : [String(prior), value];
    }
  }
  if (teTrailers) headers.te = 'trailers';
  return headers;
}

/**
 * An h2c backend's response header list (or trailers) for the client: its fields as they
 * came, but those HTTP/2 forbids, with `hsts` added when given and absent (trailers: none).
 */
export function h2cResponseHeaders(
  incoming: http2.IncomingHttpHeaders,
  hsts: string | undefined,
): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {};
  for (const name of Object.keys(incoming)) {
    if (SKIP_RESPONSE.has(name) || (name.charCodeAt(0) === 0x3a && name !== ':status')) continue;
    headers[name] = incoming[name];
  }
  if (hsts !== undefined && headers['strict-transport-security'] === undefined) {
    headers['strict-transport-security'] = hsts;
  }
  return headers;
}

/** The size of a header list written as HTTP/1.1 lines: what the proxy counts a head as, either protocol. */
export function headerListLength(headers: http2.IncomingHttpHeaders | http2.OutgoingHttpHeaders): number {
  // The status line: 'HTTP/1.1 200 \r\n' and the blank line.
  let length = 17;
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 0x3a) continue;
    const value = headers[name];
    for (const v of Array.isArray(value) ? value : [value]) length += name.length + String(v).length + 4;
  }
  return length;
}

/** Fields an HTTP/1.1 head gets from its own framing, not from a header list. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

/**
 * A header list's fields as HTTP/1.1 lines (`name: value\r\n`, one per value), pseudo-headers
 * and the body's framing (the HTTP/1.1 head has its own) left out.
 */
export function http1Fields(headers: http2.OutgoingHttpHeaders): string {
  let out = '';
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 0x3a || FRAMING.has(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) out += `${name}: ${one}\r\n`;
    else out += `${name}: ${value}\r\n`;
  }
  return out;
}
