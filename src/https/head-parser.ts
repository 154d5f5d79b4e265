// Strict parsing of HTTP/1.x message heads (request and response), as strict
// as Node's own llhttp without its lenient flags: the proxy relays bodies as
// raw bytes, so the framing it derives from a head must be the framing the
// backend derives too. Anything ambiguous is refused (RFC 9112 section 11.2,
// request smuggling): duplicate or malformed Content-Length, Content-Length
// with Transfer-Encoding, a transfer coding other than chunked, obs-fold,
// bare CR or LF, a space before the colon, control characters.
import type { Head, HeadError } from './head.js';
import {
  bytes,
  R_FIRST,
  R_LINE,
  R_LINES,
  R_MINOR,
  R_SECOND,
  R_START_LINE_END,
  results,
  scanError,
  scanRequest,
  scanResponse,
  TEXT_AT,
} from './head-scan.js';
import {
  K_CONNECTION,
  K_CONTENT_LENGTH,
  K_EXPECT,
  K_HOST,
  K_OTHER,
  K_TRAILER,
  K_TRANSFER_ENCODING,
  K_UPGRADE,
} from './header-kinds.js';

/** Characters allowed in a field value: HTAB, visible ASCII, SP, obs-text. */
const FIELD = new Uint8Array(256);
FIELD[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) FIELD[c] = 1;

export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (FIELD[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * Finds the end of a head in `buf[from, to)`: the index just past the blank
 * line, -1 when the head is not complete yet, or -2 when a bare LF ends a
 * line (refused at once rather than waiting for a CRLF that never comes).
 */
export function findHeadEnd(buf: Buffer, from: number, to: number): number {
  let i = buf.indexOf(10, from);
  while (i !== -1 && i < to) {
    if (i === from || buf[i - 1] !== 13) return -2;
    if (i + 2 < to) {
      if (buf[i + 1] === 13) return buf[i + 2] === 10 ? i + 3 : -2;
      if (buf[i + 1] === 10) return -2;
    } else if (i + 1 < to && buf[i + 1] === 10) {
      return -2;
    }
    i = buf.indexOf(10, i + 1);
  }
  return -1;
}

/**
 * Takes the header lines a scan found (head-scan.ts: `lines` of them, read whole) into `head`,
 * with what the headers the proxy acts on say. `failed`: the scan's error after those lines,
 * or null. What a line says is checked in the order of the lines, before the scan's error, so
 * that a head with two faults is refused for the first.
 */
function takeFields(head: Head, lines: number, failed: HeadError | null): HeadError | null {
  const r = results;
  const b = bytes;
  const base = TEXT_AT;
  let clSeen = false;
  for (let n = 0, at = R_LINE; n < lines; n++, at += 6) {
    const start = r[at] as number;
    const colon = r[at + 1] as number;
    const vs = r[at + 2] as number;
    const ve = r[at + 3] as number;
    head.lineStart[n] = start;
    head.colon[n] = colon;
    head.valueStart[n] = vs;
    head.valueEnd[n] = ve;
    head.lineEnd[n] = r[at + 4] as number;
    const kind = r[at + 5] as number;
    head.kind[n] = kind;
    if (kind !== K_OTHER) {
      const error = noteField(head, kind, b, base + vs, base + ve, base, clSeen);
      if (error !== null) return error;
      if (kind === K_CONTENT_LENGTH) clSeen = true;
    }
  }
  head.count = lines;
  if (failed !== null) return failed;
  if (head.hasTransferEncoding && clSeen) return 'content-length-with-transfer-encoding';
  return null;
}

/**
 * What a header the proxy acts on says, noted in `head`: its value is `b[vs, ve)`, which is
 * `head.text` from `vs - base`. An error or null.
 */
function noteField(
  head: Head,
  kind: number,
  b: Uint8Array,
  vs: number,
  ve: number,
  base: number,
  clSeen: boolean,
): HeadError | null {
  switch (kind) {
    case K_CONTENT_LENGTH: {
      if (clSeen) return 'duplicate-content-length';
      if (ve === vs || ve - vs > 15) return 'bad-content-length';
      let length = 0;
      for (let i = vs; i < ve; i++) {
        const c = b[i] as number;
        if (c < 0x30 || c > 0x39) return 'bad-content-length';
        length = length * 10 + (c - 0x30);
      }
      head.contentLength = length;
      return null;
    }
    case K_TRANSFER_ENCODING:
      // Only a lone "chunked" is accepted: a second header, a list, or any other coding is refused.
      if (head.hasTransferEncoding || !equalsLower(b, vs, ve, 'chunked'))
        return 'unsupported-transfer-encoding';
      head.hasTransferEncoding = true;
      head.chunked = true;
      return null;
    case K_HOST:
      if (head.host !== undefined) return 'duplicate-host';
      head.host = head.text.slice(vs - base, ve - base);
      return null;
    case K_CONNECTION: {
      const value = head.text.slice(vs - base, ve - base).toLowerCase();
      head.connection = head.connection === '' ? value : `${head.connection},${value}`;
      return null;
    }
    case K_UPGRADE:
      head.upgrade = head.text.slice(vs - base, ve - base);
      return null;
    case K_EXPECT:
      if (equalsLower(b, vs, ve, '100-continue')) head.expectContinue = true;
      return null;
    case K_TRAILER:
      head.hasTrailer = true;
      return null;
    default:
      return null;
  }
}

/** True when `b[from, to)` is `lower` (lower-case ASCII), ASCII letters folded. */
function equalsLower(b: Uint8Array, from: number, to: number, lower: string): boolean {
  if (to - from !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = b[from + i] as number;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const HOST_CHARS = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** True for a Host value that can be echoed into a header or a Location safely. */
export function isValidHost(host: string): boolean {
  return host.length > 0 && host.length <= 255 && HOST_CHARS.test(host);
}

/**
 * Parses a request head: `buf[from, end)` where `end` is what findHeadEnd
 * returned. Leading empty lines are skipped (RFC 9112 section 2.2).
 */
export function parseRequestHead(head: Head, buf: Buffer, from: number, end: number): HeadError | null {
  while (from + 1 < end && buf[from] === 13 && buf[from + 1] === 10) from += 2;
  head.reset();
  if (end - from < 4) return 'bad-request-line';
  head.text = buf.toString('latin1', from, end - 4);
  return parseRequest(head);
}

/**
 * Parses a request head held as latin1 text, from the request line to the end of the last
 * header line (without the CRLF that ends it and the blank line): what an HTTP/2 stream's
 * head becomes (http2-head.ts), parsed with the same rules.
 */
export function parseRequestText(head: Head, s: string): HeadError | null {
  head.reset();
  head.text = s;
  return parseRequest(head);
}

/** The request line and header lines of `head.text`. */
function parseRequest(head: Head): HeadError | null {
  const s = head.text;
  const scanned = scanRequest(s);
  const r = results;
  head.startLineEnd = r[R_START_LINE_END] as number;
  const lineError = scanned < 0 ? scanError(scanned) : null;
  const lines = r[R_LINES] as number;
  // An error in the request line comes before any header line is read.
  if (lineError !== null && lines === 0 && isStartLineError(lineError)) return lineError;
  const sp1 = r[R_FIRST] as number;
  const sp2 = r[R_SECOND] as number;
  head.minor = r[R_MINOR] as number;
  head.method = s.slice(0, sp1);
  head.target = s.slice(sp1 + 1, sp2);
  let error = takeFields(head, lines, lineError);
  // A folded line is reported as obs-fold even when another check fails first.
  if (error !== null && error !== 'obs-fold' && (s.includes('\r\n ') || s.includes('\r\n\t')))
    error = 'obs-fold';
  if (error !== null) return error;
  if (head.hasTransferEncoding && head.minor === 0) return 'transfer-encoding-in-http-1.0';
  if (head.host === undefined) {
    if (head.minor === 1) return 'missing-host';
  } else if (head.host !== lastValidHost) {
    if (!isValidHost(head.host)) return 'bad-host';
    lastValidHost = head.host;
  }
  return null;
}

/** The last Host value found valid: the next request's is most often the same. */
let lastValidHost = '';

/** True for the errors of a request or status line. */
function isStartLineError(error: HeadError): boolean {
  return (
    error === 'bad-request-line' ||
    error === 'bad-method' ||
    error === 'bad-target' ||
    error === 'bad-version' ||
    error === 'bad-status-line'
  );
}

/** Parses a response head from the backend (same strictness; the status line may lack a reason). */
export function parseResponseHead(head: Head, buf: Buffer, from: number, end: number): HeadError | null {
  head.reset();
  const s = buf.toString('latin1', from, end - 4);
  head.text = s;
  const scanned = scanResponse(s);
  const r = results;
  const eol = r[R_START_LINE_END] as number;
  head.startLineEnd = eol;
  const lineError = scanned < 0 ? scanError(scanned) : null;
  const lines = r[R_LINES] as number;
  if (lineError !== null && lines === 0 && isStartLineError(lineError)) return lineError;
  head.minor = r[R_MINOR] as number;
  head.status = r[R_FIRST] as number;
  head.reason = eol > 13 ? s.slice(13, eol) : '';
  return takeFields(head, lines, lineError);
}

/** The status a request head refused for `error` is answered with, on HTTP/1 and HTTP/2 alike. */
export function statusForHeadError(error: HeadError): number {
  if (error === 'unsupported-transfer-encoding') return 501;
  if (error === 'bad-version') return 505;
  if (error === 'too-many-headers') return 431;
  return 400;
}
