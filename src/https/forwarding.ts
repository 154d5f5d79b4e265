// The header rules of docs/headers.md: how a client's request head becomes
// the head the backend receives, and how the backend's response head becomes
// the one the client receives. Built as one latin1 string per message so that
// each head goes out in one write.
import { unmap } from '../forward/proxy-protocol.js';
import type { Head } from './head.js';
import { isFieldValue } from './head-parser.js';
import {
  K_CONNECTION,
  K_CONTENT_LENGTH,
  K_EXPECT,
  K_FORWARDED,
  K_HOST,
  K_HTTP2_SETTINGS,
  K_KEEP_ALIVE,
  K_OTHER,
  K_PROXY_CONNECTION,
  K_REPEATED_LENGTH,
  K_TE,
  K_TRANSFER_ENCODING,
  K_UNDERSCORE,
  K_UPGRADE,
  K_X_CLIENT_CERT_SUBJECT,
  K_X_FORWARDED_FOR,
  K_X_FORWARDED_HOST,
  K_X_FORWARDED_PORT,
  K_X_FORWARDED_PROTO,
  K_X_REQUEST_ID,
} from './header-kinds.js';
import { newRequestUuid } from './request-uuid.js';

/** What the proxy knows about one client connection, computed once when it is accepted. */
export interface Peer {
  /** The client's address as it goes into X-Forwarded-For (IPv4-mapped IPv6 unmapped). */
  readonly forwardedFor: string;
  /** The client's address as an RFC 7239 node: IPv6 quoted and bracketed. */
  readonly forwardedNode: string;
  /** The verified client certificate subject, when client authentication is on. */
  readonly certSubject: string | undefined;
  /** The TLS version, for the access log ('' when nothing logs it, or for plain HTTP). */
  readonly tls: string;
  /**
   * The lines the proxy adds to a request (X-Forwarded-*, Forwarded...) as built for the
   * connection's last request, and the Host they were built for: the next request with the same
   * Host and no forwarding headers of its own takes them as they are ('' until built).
   */
  addedLines: string;
  addedFor: string | undefined;
}

/** Per proxy: what every forwarded request gets. */
export interface ForwardSettings {
  /** X-Forwarded-Port: the external port clients dial (falls back to int_port). */
  readonly port: string;
  /** Host to send an HTTP/1.0 request that came without one. */
  readonly defaultHost: string;
  /** Strict-Transport-Security for answers that lack one (--hsts); undefined: none added. */
  readonly hsts?: string | undefined;
  /** Keep a client's well-formed X-Request-Id (--trust-request-id) instead of making a new one. */
  readonly trustRequestId?: boolean | undefined;
}

/** A request id a client may give: 1-128 characters that are safe in a header and a log line. */
const REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** The request's id: the client's own when it is well-formed and trusted, else a new one. */
export function requestIdFor(head: Head, settings: ForwardSettings): string {
  if (settings.trustRequestId === true) {
    for (let i = 0; i < head.count; i++) {
      if (head.kind[i] !== K_X_REQUEST_ID) continue;
      const given = head.value(i);
      if (REQUEST_ID.test(given)) return given;
      break;
    }
  }
  return newRequestUuid();
}

/** Whether the head has a Strict-Transport-Security field (the backend's own wins over --hsts). */
export function hasHsts(head: Head): boolean {
  return head.header('strict-transport-security') !== undefined;
}

/** Headers a Connection header may not remove: the framing and the target must reach the backend. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/** Lower-cased header names listed in Connection, other than the ones with a meaning of their own. */
function connectionTokens(head: Head): Set<string> | null {
  const connection = head.connection;
  if (
    connection === '' ||
    connection === 'close' ||
    connection === 'keep-alive' ||
    connection === 'upgrade'
  ) {
    return null;
  }
  let tokens: Set<string> | null = null;
  for (const part of connection.split(',')) {
    const token = part.trim();
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
    if (PROTECTED.has(token)) continue;
    tokens ??= new Set();
    tokens.add(token);
  }
  return tokens;
}

export function peerOf(remoteAddress: string | undefined, certSubject: string | undefined, tls = ''): Peer {
  const address = unmap(remoteAddress ?? 'unknown');
  const forwardedNode = address.includes(':')
    ? `"[${address}]"`
    : address === 'unknown'
      ? 'unknown'
      : address;
  return { forwardedFor: address, forwardedNode, certSubject, tls, addedLines: '', addedFor: undefined };
}

/**
 * The request head sent to the backend (always HTTP/1.1). `upgrade` keeps
 * the Upgrade header and sends `Connection: upgrade`. `held`: the body is held
 * whole by the proxy (held-body.ts), which frames it anew; the client's
 * Transfer-Encoding and Expect lines are dropped.
 */
export function buildRequestHead(
  head: Head,
  peer: Peer,
  settings: ForwardSettings,
  upgrade: boolean,
  requestId: string,
  held = false,
): string {
  const text = head.text;
  let out = `${head.method} ${head.target} HTTP/1.1\r\n`;
  let xff = '';
  let forwarded = '';
  const named = connectionTokens(head);
  const kinds = head.kind;
  const count = head.count;
  // Kept lines are copied in runs: consecutive kept lines are one slice of the head.
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0; i < count; i++) {
    const kind = kinds[i] as number;
    let keep = true;
    if (kind !== K_OTHER) {
      switch (kind) {
        case K_X_FORWARDED_FOR:
          xff = xff === '' ? head.value(i) : `${xff}, ${head.value(i)}`;
          keep = false;
          break;
        case K_FORWARDED:
          forwarded = forwarded === '' ? head.value(i) : `${forwarded}, ${head.value(i)}`;
          keep = false;
          break;
        case K_TE:
          // "TE: trailers" still holds: the proxy relays chunked bodies and their trailers unchanged.
          keep = head.value(i).toLowerCase() === 'trailers';
          break;
        case K_UPGRADE:
          keep = upgrade;
          break;
        case K_HOST:
          // An absolute target's authority is the host: the client's Host line is not passed on.
          keep = !head.hostFromTarget;
          break;
        case K_TRANSFER_ENCODING:
        case K_EXPECT:
          keep = !held;
          break;
        case K_CONNECTION:
        case K_KEEP_ALIVE:
        case K_PROXY_CONNECTION:
        case K_HTTP2_SETTINGS:
        case K_X_FORWARDED_PROTO:
        case K_X_FORWARDED_HOST:
        case K_X_FORWARDED_PORT:
        case K_X_CLIENT_CERT_SUBJECT:
        case K_X_REQUEST_ID:
        case K_UNDERSCORE:
          keep = false;
          break;
      }
    }
    if (keep && named?.has(head.name(i).toLowerCase())) keep = false;
    if (keep) {
      if (runStart === -1) runStart = head.lineStart[i] as number;
      runEnd = head.lineEnd[i] as number;
    } else if (runStart !== -1) {
      out += `${text.slice(runStart, runEnd)}\r\n`;
      runStart = -1;
    }
  }
  if (runStart !== -1) out += `${text.slice(runStart, runEnd)}\r\n`;
  if (upgrade) out += 'Connection: upgrade\r\n';
  const host = head.host;
  if (host === undefined) out += `Host: ${settings.defaultHost}\r\n`;
  else if (head.hostFromTarget) out += `Host: ${host}\r\n`;
  // The id goes last: the lines before it are the same for every request of a connection
  // (unless the client sent forwarding headers of its own), built once, kept flat.
  if (xff === '' && forwarded === '') {
    if (peer.addedLines === '' || peer.addedFor !== host) {
      peer.addedLines = flat(addedLines(peer, settings, host, '', ''));
      peer.addedFor = host;
    }
    out += peer.addedLines;
  } else out += addedLines(peer, settings, host, xff, forwarded);
  return `${out}X-Request-Id: ${requestId}\r\n\r\n`;
}

/** The lines the proxy adds to a request for the backend, but its id. */
function addedLines(
  peer: Peer,
  settings: ForwardSettings,
  host: string | undefined,
  xff: string,
  forwarded: string,
): string {
  let out = `X-Forwarded-For: ${xff === '' ? peer.forwardedFor : `${xff}, ${peer.forwardedFor}`}\r\n`;
  out += 'X-Forwarded-Proto: https\r\n';
  if (host !== undefined) out += `X-Forwarded-Host: ${host}\r\n`;
  out += `X-Forwarded-Port: ${settings.port}\r\n`;
  const element =
    host === undefined
      ? `for=${peer.forwardedNode};proto=https`
      : `for=${peer.forwardedNode};host="${host}";proto=https`;
  out += `Forwarded: ${forwarded === '' ? element : `${forwarded}, ${element}`}\r\n`;
  if (peer.certSubject !== undefined) out += `X-Client-Cert-Subject: ${peer.certSubject}\r\n`;
  return out;
}

/**
 * `text` as one flat string: V8 keeps a string built by `+` as a tree of its pieces, walked
 * again each time it is copied; this copy is made once.
 */
function flat(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}

/** How the response head must be changed for the client. */
export const RESPONSE_KEEP = 0;
/** Add `Connection: close`: the proxy closes the client connection after this response. */
export const RESPONSE_CLOSE = 1;
/** Add `Connection: keep-alive`: an HTTP/1.0 client asked to keep its connection. */
export const RESPONSE_KEEP_ALIVE_10 = 2;

/**
 * The response head for the client, or null when the backend's head can be
 * relayed byte for byte: HTTP/1.1, nothing hop-by-hop, or only a
 * `Connection: keep-alive` that is just as true of the client's connection.
 * `dechunk` drops Transfer-Encoding because the proxy decodes the body.
 */
export function buildResponseHead(
  head: Head,
  connection: number,
  dechunk: boolean,
  hsts?: string,
): string | null {
  const kinds = head.kind;
  const count = head.count;
  const upgrade = head.status === 101;
  const addHsts = hsts !== undefined && !upgrade && !hasHsts(head);
  if (head.minor === 1 && connection === RESPONSE_KEEP && !dechunk && !upgrade && !addHsts) {
    let clean = true;
    for (let i = 0; i < count; i++) {
      const kind = kinds[i] as number;
      if (kind === K_OTHER) continue;
      if (
        kind === K_KEEP_ALIVE ||
        kind === K_PROXY_CONNECTION ||
        kind === K_UPGRADE ||
        kind === K_REPEATED_LENGTH ||
        (kind === K_CONTENT_LENGTH && head.contentLengthListed) ||
        (kind === K_CONNECTION && head.connection !== 'keep-alive')
      ) {
        clean = false;
        break;
      }
    }
    if (clean) return null;
  }
  const text = head.text;
  const named = connectionTokens(head);
  let out = `HTTP/1.1 ${text.slice(9, head.startLineEnd)}\r\n`;
  for (let i = 0; i < count; i++) {
    const kind = kinds[i] as number;
    if (
      kind === K_CONNECTION ||
      kind === K_KEEP_ALIVE ||
      kind === K_PROXY_CONNECTION ||
      kind === K_REPEATED_LENGTH
    )
      continue;
    if (kind === K_UPGRADE && !upgrade) continue;
    if (kind === K_TRANSFER_ENCODING && dechunk) continue;
    if (kind === K_CONTENT_LENGTH && head.contentLengthListed) {
      out += `Content-Length: ${head.contentLength}\r\n`;
      continue;
    }
    if (
      named !== null &&
      (kind === K_OTHER || kind === K_UNDERSCORE) &&
      named.has(head.name(i).toLowerCase())
    )
      continue;
    out += `${head.line(i)}\r\n`;
  }
  if (addHsts) out += `Strict-Transport-Security: ${hsts}\r\n`;
  if (upgrade) out += 'Connection: upgrade\r\n';
  else if (connection === RESPONSE_CLOSE) out += 'Connection: close\r\n';
  else if (connection === RESPONSE_KEEP_ALIVE_10) out += 'Connection: keep-alive\r\n';
  return `${out}\r\n`;
}

/**
 * A certificate subject as one header-safe line, RFC 4514 style
 * ("CN=client,O=Example"): separators inside values escaped, anything
 * outside printable ASCII as \XX hex escapes of its UTF-8 bytes.
 */
export function formatSubject(subject: string | undefined): string | undefined {
  if (subject === undefined || subject === '') return undefined;
  const parts: string[] = [];
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const value = line.slice(eq + 1).replace(/[,+"\\<>;]/g, '\\$&');
    let escaped = '';
    for (const byte of Buffer.from(value, 'utf8')) {
      escaped +=
        byte >= 0x20 && byte < 0x7f
          ? String.fromCharCode(byte)
          : `\\${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    parts.push(`${line.slice(0, eq)}=${escaped}`);
  }
  const out = parts.join(',');
  return isFieldValue(out) ? out : undefined;
}
