// Strict parsing of HTTP/1.x message heads (request and response), as strict
// as Node's own llhttp without its lenient flags: the proxy relays bodies as
// raw bytes, so the framing it derives from a head must be the framing the
// backend derives too. Anything ambiguous is refused (RFC 9112 section 11.2,
// request smuggling): duplicate or malformed Content-Length, Content-Length
// with Transfer-Encoding, a transfer coding other than chunked, obs-fold,
// bare CR or LF, a space before the colon, control characters.
import {
  K_CONNECTION,
  K_CONTENT_LENGTH,
  K_EXPECT,
  K_HOST,
  K_OTHER,
  K_TRAILER,
  K_TRANSFER_ENCODING,
  K_UNDERSCORE,
  K_UPGRADE,
  kindOf,
} from './header-kinds.js';

/** Token characters (RFC 9110 section 5.6.2). */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}
/** Characters allowed in a field value: HTAB, visible ASCII, SP, obs-text. */
const FIELD = new Uint8Array(256);
FIELD[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) FIELD[c] = 1;
/** Characters allowed in a request target: visible ASCII only. */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;

export function isToken(s: string, from = 0, to = s.length): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) if (TOKEN[s.charCodeAt(i)] !== 1) return false;
  return true;
}

export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (FIELD[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** Why a head was refused; also the debug log reason. */
export type HeadError =
  | 'bad-line-ending'
  | 'bad-request-line'
  | 'bad-method'
  | 'bad-target'
  | 'bad-version'
  | 'obs-fold'
  | 'bad-header-name'
  | 'bad-header-value'
  | 'duplicate-content-length'
  | 'bad-content-length'
  | 'content-length-with-transfer-encoding'
  | 'unsupported-transfer-encoding'
  | 'transfer-encoding-in-http-1.0'
  | 'missing-host'
  | 'duplicate-host'
  | 'bad-host'
  | 'bad-status-line'
  | 'too-many-headers';

/** Most header lines in one head; more is answered 431. */
export const MAX_FIELDS = 200;

/**
 * The fields of one head, as positions in its text: nothing is sliced out of
 * it unless asked for. Reused from message to message: `reset()` clears it.
 */
export class Head {
  /** The head as a latin1 string, from the first line to the blank line (excluded). */
  text = '';
  /** Request: method and target; response: status and reason. */
  method = '';
  target = '';
  status = 0;
  reason = '';
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor = 1;
  /** End of the start line in `text`. */
  startLineEnd = 0;
  /** How many header lines. */
  count = 0;
  /**
   * Per header line, positions in `text`: line start (= name start), colon,
   * trimmed value, line end; and its kind. Plain arrays written by index (they
   * only grow to the most lines seen): nothing to allocate per connection.
   */
  readonly lineStart: number[] = [];
  readonly colon: number[] = [];
  readonly valueStart: number[] = [];
  readonly valueEnd: number[] = [];
  readonly lineEnd: number[] = [];
  readonly kind: number[] = [];
  /** -1 when there is no Content-Length. */
  contentLength = -1;
  chunked = false;
  hasTransferEncoding = false;
  hasTrailer = false;
  host: string | undefined;
  /** Lower-cased value of the Connection header(s), '' when none. */
  connection = '';
  upgrade: string | undefined;
  expectContinue = false;

  reset(): void {
    this.text = '';
    this.method = '';
    this.target = '';
    this.status = 0;
    this.reason = '';
    this.minor = 1;
    this.startLineEnd = 0;
    this.count = 0;
    this.contentLength = -1;
    this.chunked = false;
    this.hasTransferEncoding = false;
    this.hasTrailer = false;
    this.host = undefined;
    this.connection = '';
    this.upgrade = undefined;
    this.expectContinue = false;
  }

  /** The name of header `i` as sent. */
  name(i: number): string {
    return this.text.slice(this.lineStart[i], this.colon[i]);
  }

  /**
   * The value of the first header named `lower` (lower-case ASCII), or undefined. Names are
   * compared in place, ASCII letters folded: nothing is allocated for the headers that differ.
   */
  header(lower: string): string | undefined {
    const s = this.text;
    for (let i = 0; i < this.count; i++) {
      const start = this.lineStart[i] as number;
      if ((this.colon[i] as number) - start !== lower.length) continue;
      let j = 0;
      while (j < lower.length) {
        const c = s.charCodeAt(start + j);
        if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(j)) break;
        j++;
      }
      if (j === lower.length) return this.value(i);
    }
    return undefined;
  }

  /** The trimmed value of header `i`. */
  value(i: number): string {
    return this.text.slice(this.valueStart[i], this.valueEnd[i]);
  }

  /** Header line `i` as sent, without its CRLF. */
  line(i: number): string {
    return this.text.slice(this.lineStart[i], this.lineEnd[i]);
  }

  /** True when the Connection header lists `token` (lower-case). */
  connectionHas(token: string): boolean {
    if (this.connection === '') return false;
    if (this.connection === token) return true;
    if (!this.connection.includes(token)) return false;
    for (const part of this.connection.split(',')) if (part.trim() === token) return true;
    return false;
  }
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

/** Parses header lines of `head.text` from `pos`. Returns an error or null. */
function parseFields(head: Head, pos: number): HeadError | null {
  const s = head.text;
  const end = s.length;
  let clSeen = false;
  let n = 0;
  while (pos < end) {
    if (n === MAX_FIELDS) return 'too-many-headers';
    let eol = s.indexOf('\r\n', pos);
    if (eol === -1) eol = end;
    const first = s.charCodeAt(pos);
    if (first === 0x20 || first === 0x09) return 'obs-fold';
    let colon = pos;
    let underscore = false;
    while (colon < eol) {
      const c = s.charCodeAt(colon);
      if (TOKEN[c] !== 1) break;
      if (c === 0x5f) underscore = true;
      colon++;
    }
    if (colon === pos || colon === eol || s.charCodeAt(colon) !== 0x3a) return 'bad-header-name';
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (s.charCodeAt(vs) === 0x20 || s.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (s.charCodeAt(ve - 1) === 0x20 || s.charCodeAt(ve - 1) === 0x09)) ve--;
    for (let i = vs; i < ve; i++) if (FIELD[s.charCodeAt(i)] !== 1) return 'bad-header-value';
    const kind = underscore ? K_UNDERSCORE : kindOf(s, pos, colon);
    head.lineStart[n] = pos;
    head.colon[n] = colon;
    head.valueStart[n] = vs;
    head.valueEnd[n] = ve;
    head.lineEnd[n] = eol;
    head.kind[n] = kind;
    n++;
    if (kind !== K_OTHER) {
      switch (kind) {
        case K_CONTENT_LENGTH: {
          if (clSeen) return 'duplicate-content-length';
          clSeen = true;
          if (ve === vs || ve - vs > 15) return 'bad-content-length';
          let length = 0;
          for (let i = vs; i < ve; i++) {
            const c = s.charCodeAt(i);
            if (c < 0x30 || c > 0x39) return 'bad-content-length';
            length = length * 10 + (c - 0x30);
          }
          head.contentLength = length;
          break;
        }
        case K_TRANSFER_ENCODING:
          // Only a lone "chunked" is accepted: a second header, a list, or any other coding is refused.
          if (head.hasTransferEncoding || ve - vs !== 7 || s.slice(vs, ve).toLowerCase() !== 'chunked') {
            return 'unsupported-transfer-encoding';
          }
          head.hasTransferEncoding = true;
          head.chunked = true;
          break;
        case K_HOST:
          if (head.host !== undefined) return 'duplicate-host';
          head.host = s.slice(vs, ve);
          break;
        case K_CONNECTION: {
          const value = s.slice(vs, ve).toLowerCase();
          head.connection = head.connection === '' ? value : `${head.connection},${value}`;
          break;
        }
        case K_UPGRADE:
          head.upgrade = s.slice(vs, ve);
          break;
        case K_EXPECT:
          if (s.slice(vs, ve).toLowerCase() === '100-continue') head.expectContinue = true;
          break;
        case K_TRAILER:
          head.hasTrailer = true;
          break;
      }
    }
    pos = eol + 2;
  }
  head.count = n;
  if (head.hasTransferEncoding && clSeen) return 'content-length-with-transfer-encoding';
  return null;
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
  if (end - from < 4) {
    head.reset();
    return 'bad-request-line';
  }
  return parseRequestText(head, buf.toString('latin1', from, end - 4));
}

/**
 * Parses a request head held as latin1 text, from the request line to the end of the last
 * header line (without the CRLF that ends it and the blank line): what an HTTP/2 stream's
 * head becomes (http2-head.ts), parsed with the same rules without a round trip through bytes.
 */
export function parseRequestText(head: Head, s: string): HeadError | null {
  head.reset();
  head.text = s;
  let eol = s.indexOf('\r\n');
  if (eol === -1) eol = s.length;
  head.startLineEnd = eol;
  const sp1 = s.indexOf(' ');
  if (sp1 <= 0 || sp1 >= eol) return 'bad-request-line';
  const sp2 = s.indexOf(' ', sp1 + 1);
  if (sp2 === -1 || sp2 >= eol || sp2 === sp1 + 1) return 'bad-request-line';
  if (!isToken(s, 0, sp1)) return 'bad-method';
  for (let i = sp1 + 1; i < sp2; i++) if (TARGET[s.charCodeAt(i)] !== 1) return 'bad-target';
  if (eol - sp2 !== 9 || !s.startsWith('HTTP/1.', sp2 + 1)) return 'bad-version';
  const minor = s.charCodeAt(eol - 1);
  if (minor !== 0x30 && minor !== 0x31) return 'bad-version';
  head.minor = minor - 0x30;
  head.method = s.slice(0, sp1);
  head.target = s.slice(sp1 + 1, sp2);
  // Reported as obs-fold even when the folded header would fail another check first.
  if (s.includes('\r\n ') || s.includes('\r\n\t')) return 'obs-fold';
  const error = parseFields(head, eol + 2);
  if (error !== null) return error;
  if (head.hasTransferEncoding && head.minor === 0) return 'transfer-encoding-in-http-1.0';
  if (head.host === undefined) {
    if (head.minor === 1) return 'missing-host';
  } else if (!isValidHost(head.host)) {
    return 'bad-host';
  }
  return null;
}

/** Parses a response head from the backend (same strictness; the status line may lack a reason). */
export function parseResponseHead(head: Head, buf: Buffer, from: number, end: number): HeadError | null {
  head.reset();
  const s = buf.toString('latin1', from, end - 4);
  head.text = s;
  let eol = s.indexOf('\r\n');
  if (eol === -1) eol = s.length;
  head.startLineEnd = eol;
  // "HTTP/1.1 200 OK": version, space, three digits, then a space and a reason (or nothing).
  if (eol < 12 || !s.startsWith('HTTP/1.') || s.charCodeAt(8) !== 0x20) return 'bad-status-line';
  const minor = s.charCodeAt(7);
  if (minor !== 0x30 && minor !== 0x31) return 'bad-status-line';
  head.minor = minor - 0x30;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return 'bad-status-line';
    status = status * 10 + (c - 0x30);
  }
  if (status < 100) return 'bad-status-line';
  if (eol > 12) {
    if (s.charCodeAt(12) !== 0x20) return 'bad-status-line';
    for (let i = 13; i < eol; i++) if (FIELD[s.charCodeAt(i)] !== 1) return 'bad-status-line';
  }
  head.status = status;
  head.reason = eol > 13 ? s.slice(13, eol) : '';
  return parseFields(head, eol + 2);
}

/** The status a request head refused for `error` is answered with, on HTTP/1 and HTTP/2 alike. */
export function statusForHeadError(error: HeadError): number {
  if (error === 'unsupported-transfer-encoding') return 501;
  if (error === 'bad-version') return 505;
  if (error === 'too-many-headers') return 431;
  return 400;
}
