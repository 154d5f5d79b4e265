// Strict parsing of HTTP/1.x message heads (request and response), as strict
// as Node's own llhttp without its lenient flags: the proxy relays bodies as
// raw bytes, so the framing it derives from a head must be the framing the
// backend derives too. Anything ambiguous is refused (RFC 9112 section 11.2,
// request smuggling): duplicate or malformed Content-Length, Content-Length
// with Transfer-Encoding, a transfer coding other than chunked, obs-fold,
// bare CR or LF, a space before the colon, control characters. (A backend's
// response may end its head's lines in LF alone: see withCrlfLineEnds.)
import { type Head, type HeadError, MAX_FIELDS } from './head.js';
import {
  K_CONNECTION,
  K_CONTENT_LENGTH,
  K_EXPECT,
  K_HOST,
  K_OTHER,
  K_REPEATED_LENGTH,
  K_TRAILER,
  K_TRANSFER_ENCODING,
  K_UNDERSCORE,
  K_UPGRADE,
  kindOf,
} from './header-kinds.js';

/** Token characters (RFC 9110 section 5.6.2): 1, or 2 for the underscore; 0 for any other byte. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}
/** The underscore is a token character, marked apart (K_UNDERSCORE). */
TOKEN[0x5f] = 2;
/** Characters allowed in a field value: HTAB, visible ASCII, SP, obs-text. */
const FIELD = new Uint8Array(256);
FIELD[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) FIELD[c] = 1;
/** Characters allowed in a request target: visible ASCII only. */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;
/** What a request line's version and a status line begin with. */
const HTTP_1 = 'HTTP/1.';

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
 * A response head whose lines end in LF alone, rewritten with CRLF line ends: RFC 9112 section
 * 2.2 lets a recipient take a bare LF as a line end, and nginx and HAProxy accept such heads from
 * a backend. Never used for requests, where two readings of a line end are a smuggling risk; the
 * response is read by this proxy alone and sent on with a head of its own. `buf[from, ...)`
 * holds the head; the answer is the rewritten head followed by the bytes after it, and where its
 * head ends, or null when the blank line has not come yet. A CR anywhere but before an LF is
 * kept, for the parser to refuse.
 */
export function withCrlfLineEnds(buf: Buffer, from: number): { bytes: Buffer; end: number } | null {
  const lines: Buffer[] = [];
  let start = from;
  for (;;) {
    const lf = buf.indexOf(0x0a, start);
    if (lf === -1) return null;
    const lineEnd = lf > start && buf[lf - 1] === 0x0d ? lf - 1 : lf;
    if (lineEnd === start && lines.length > 0) {
      lines.push(CRLF, buf.subarray(lf + 1));
      const bytes = Buffer.concat(lines);
      return { bytes, end: bytes.length - (buf.length - lf - 1) };
    }
    lines.push(buf.subarray(start, lineEnd), CRLF);
    start = lf + 1;
  }
}
const CRLF = Buffer.from('\r\n');

/**
 * True when one of the four bytes of `x` is a control byte (below 0x20, or 0x7f): SWAR tests,
 * exact for whether there is one (a borrow can only spread from a byte that matches).
 */
function hasControlByte(x: number): boolean {
  const y = x ^ 0x7f7f7f7f;
  const below20 = ((x - 0x20202020) | 0) & ~x;
  const is7f = ((y - 0x01010101) | 0) & ~y;
  return ((below20 | is7f) & 0x80808080) !== 0;
}

/**
 * A DataView of the last memory a head was parsed from: backend reads all land in one buffer,
 * so it is made once, not per head.
 */
let viewed: ArrayBufferLike | null = null;
let viewedAs: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
function viewOf(memory: ArrayBufferLike): DataView<ArrayBufferLike> {
  if (memory !== viewed) {
    viewed = memory;
    viewedAs = new DataView(memory);
  }
  return viewedAs;
}

/**
 * Parses the header lines of a head from its bytes: `b[pos, to)`, where `to` is the end of
 * the last line (its CRLF and the blank line excluded). Positions are kept relative to `base`,
 * where `head.text` begins. The bytes are scanned rather than the text (V8 reads a Buffer's
 * bytes at about half the cost of a string's characters: charCodeAt checks the string's kind
 * each time), each line is read once, its value's check finding its end, and values are
 * checked four bytes at a time.
 * Returns an error or null.
 */
function parseFields(head: Head, b: Uint8Array, base: number, pos: number, to: number): HeadError | null {
  const view = viewOf(b.buffer);
  const offset = b.byteOffset;
  let clSeen = false;
  let n = 0;
  while (pos < to) {
    if (n === MAX_FIELDS) return 'too-many-headers';
    const first = b[pos] as number;
    if (first === 0x20 || first === 0x09) return 'obs-fold';
    // The name: token characters up to the colon.
    let colon = pos;
    let underscore = false;
    let c = 0;
    while (colon < to) {
      c = b[colon] as number;
      const t = TOKEN[c] as number;
      if (t === 0) break;
      if (t === 2) underscore = true;
      colon++;
    }
    if (colon === pos || colon === to || c !== 0x3a) return 'bad-header-name';
    // The value: leading and trailing blanks trimmed; every byte a field byte up to the CRLF.
    let i = colon + 1;
    while (i < to && (b[i] === 0x20 || b[i] === 0x09)) i++;
    const vs = i;
    // Four bytes at a time while none is a control byte (tabs included: rare in values), then
    // byte by byte to the end of the line.
    while (i + 4 <= to && !hasControlByte(view.getInt32(offset + i))) i += 4;
    while (i < to) {
      c = b[i] as number;
      if (FIELD[c] !== 1) break;
      i++;
    }
    const eol = i;
    let ve = eol;
    while (ve > vs && (b[ve - 1] === 0x20 || b[ve - 1] === 0x09)) ve--;
    if (i < to) {
      if (c !== 0x0d || i + 1 === to || b[i + 1] !== 0x0a) return 'bad-header-value';
    }
    let kind = underscore ? K_UNDERSCORE : kindOf(b, pos, colon);
    // A response may repeat its Content-Length, or give it as a list, if every one says the
    // same (head.status is set for responses only); a request may not, nor a response whose
    // lengths differ.
    if (kind === K_CONTENT_LENGTH && clSeen && head.status !== 0 && sameLength(head, b, vs, ve)) {
      kind = K_REPEATED_LENGTH;
    }
    head.lineStart[n] = pos - base;
    head.colon[n] = colon - base;
    head.valueStart[n] = vs - base;
    head.valueEnd[n] = ve - base;
    head.lineEnd[n] = eol - base;
    head.kind[n] = kind;
    n++;
    if (kind !== K_OTHER) {
      const error = noteField(head, kind, b, vs, ve, base, clSeen);
      if (error !== null) return error;
      if (kind === K_CONTENT_LENGTH) clSeen = true;
    }
    pos = eol + 2;
  }
  head.count = n;
  if (head.hasTransferEncoding && clSeen) return 'content-length-with-transfer-encoding';
  return null;
}

/** True when `b[vs, ve)` says the head's Content-Length again (as one length or a list of it). */
function sameLength(head: Head, b: Uint8Array, vs: number, ve: number): boolean {
  return listedLength(b, vs, ve) === head.contentLength;
}

/**
 * The length of a Content-Length value `b[vs, ve)` that is one length or a comma-separated list
 * of one length (blanks allowed around the commas, no empty element): -1 when it is not.
 */
function listedLength(b: Uint8Array, vs: number, ve: number): number {
  let length = -1;
  let from = vs;
  while (from <= ve) {
    let comma = from;
    while (comma < ve && b[comma] !== 0x2c) comma++;
    let start = from;
    let end = comma;
    while (start < end && (b[start] === 0x20 || b[start] === 0x09)) start++;
    while (end > start && (b[end - 1] === 0x20 || b[end - 1] === 0x09)) end--;
    const one = decimalLength(b, start, end);
    if (one < 0 || (length !== -1 && one !== length)) return -1;
    length = one;
    from = comma + 1;
  }
  return length;
}

/** The Content-Length value `b[vs, ve)`: 1 to 15 decimal digits; -1 when it is not. */
function decimalLength(b: Uint8Array, vs: number, ve: number): number {
  if (ve === vs || ve - vs > 15) return -1;
  let length = 0;
  for (let i = vs; i < ve; i++) {
    const c = b[i] as number;
    if (c < 0x30 || c > 0x39) return -1;
    length = length * 10 + (c - 0x30);
  }
  return length;
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
      const length = decimalLength(b, vs, ve);
      if (length >= 0) {
        head.contentLength = length;
        return null;
      }
      // A response's list of one length ('2, 2'); a request's list stays a 400.
      const listed = head.status === 0 ? -1 : listedLength(b, vs, ve);
      if (listed < 0) return 'bad-content-length';
      head.contentLength = listed;
      head.contentLengthListed = true;
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

/** True when `b[at...]` begins with `ascii`, exactly. */
function startsWith(b: Uint8Array, at: number, ascii: string): boolean {
  for (let i = 0; i < ascii.length; i++) if (b[at + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/** A request target in absolute form: http or https, an authority without userinfo, the rest. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#@]+)([/?][^#]*)?$/i;

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
  return parseRequest(head, buf, from, end - 4);
}

/**
 * Parses a request head held as latin1 text, from the request line to the end of the last
 * header line (without the CRLF that ends it and the blank line): what an HTTP/2 stream's
 * head becomes (http2-head.ts), parsed with the same rules.
 */
export function parseRequestText(head: Head, s: string): HeadError | null {
  head.reset();
  head.text = s;
  return parseRequest(head, Buffer.from(s, 'latin1'), 0, s.length);
}

/** The request line and header lines of `b[from, to)`, whose text `head.text` holds. */
function parseRequest(head: Head, b: Uint8Array, from: number, to: number): HeadError | null {
  // The request line: its end and its two spaces.
  let sp1 = -1;
  let sp2 = -1;
  let eol = from;
  while (eol < to) {
    const c = b[eol] as number;
    if (c === 0x0d && eol + 1 < to && b[eol + 1] === 0x0a) break;
    if (c === 0x20) {
      if (sp1 === -1) sp1 = eol;
      else if (sp2 === -1) sp2 = eol;
    }
    eol++;
  }
  head.startLineEnd = eol - from;
  if (sp1 <= from) return 'bad-request-line';
  if (sp2 === -1 || sp2 === sp1 + 1) return 'bad-request-line';
  for (let i = from; i < sp1; i++) if (TOKEN[b[i] as number] === 0) return 'bad-method';
  for (let i = sp1 + 1; i < sp2; i++) if (TARGET[b[i] as number] !== 1) return 'bad-target';
  if (eol - sp2 !== 9 || !startsWith(b, sp2 + 1, HTTP_1)) return 'bad-version';
  const minor = b[eol - 1] as number;
  if (minor !== 0x30 && minor !== 0x31) return 'bad-version';
  head.minor = minor - 0x30;
  const s = head.text;
  head.method = s.slice(0, sp1 - from);
  head.target = s.slice(sp1 + 1 - from, sp2 - from);
  // Absolute form: its authority is the host, whatever the Host header says, and the backend gets
  // the origin form; a backend that read the authority and a proxy that read Host would disagree.
  let authority: string | undefined;
  // (CONNECT's authority form is left to the connection, which answers it 405.)
  if (b[sp1 + 1] !== 0x2f && head.target !== '*' && head.method !== 'CONNECT') {
    const absolute = ABSOLUTE_FORM.exec(head.target);
    if (absolute === null) return 'bad-target';
    authority = absolute[1];
    const rest = absolute[2] ?? '';
    head.target = rest.startsWith('/') ? rest : `/${rest}`;
  }
  let error = parseFields(head, b, from, eol + 2, to);
  // A folded line is reported as obs-fold even when another check fails first.
  if (error !== null && error !== 'obs-fold' && (s.includes('\r\n ') || s.includes('\r\n\t')))
    error = 'obs-fold';
  if (error !== null) return error;
  if (head.hasTransferEncoding && head.minor === 0) return 'transfer-encoding-in-http-1.0';
  // HTTP/1.1 asks for a Host header even beside an absolute target (RFC 9112 section 3.2).
  if (head.host === undefined && head.minor === 1) return 'missing-host';
  if (authority !== undefined) {
    head.host = authority;
    head.hostFromTarget = true;
  }
  if (head.host !== undefined && !isValidHost(head.host)) return 'bad-host';
  return null;
}

/** Parses a response head from the backend (same strictness; the status line may lack a reason). */
export function parseResponseHead(head: Head, buf: Buffer, from: number, end: number): HeadError | null {
  head.reset();
  const to = end - 4;
  head.text = buf.toString('latin1', from, to);
  let eol = from;
  while (eol < to && !(buf[eol] === 0x0d && eol + 1 < to && buf[eol + 1] === 0x0a)) eol++;
  head.startLineEnd = eol - from;
  // "HTTP/1.1 200 OK": version, space, three digits, then a space and a reason (or nothing).
  if (eol - from < 12 || !startsWith(buf, from, HTTP_1) || buf[from + 8] !== 0x20) return 'bad-status-line';
  const minor = buf[from + 7] as number;
  if (minor !== 0x30 && minor !== 0x31) return 'bad-status-line';
  head.minor = minor - 0x30;
  let status = 0;
  for (let i = from + 9; i < from + 12; i++) {
    const c = buf[i] as number;
    if (c < 0x30 || c > 0x39) return 'bad-status-line';
    status = status * 10 + (c - 0x30);
  }
  // RFC 9110 section 15: codes outside 100-599 are not HTTP (HTTP/2 cannot carry them either).
  if (status < 100 || status > 599) return 'bad-status-line';
  if (eol - from > 12) {
    if (buf[from + 12] !== 0x20) return 'bad-status-line';
    for (let i = from + 13; i < eol; i++) if (FIELD[buf[i] as number] !== 1) return 'bad-status-line';
  }
  head.status = status;
  head.reason = eol - from > 13 ? head.text.slice(13, eol - from) : '';
  return parseFields(head, buf, from, eol + 2, to);
}

/**
 * The status for a request head longer than `limit` bytes whose request line ends at
 * `lineEnd` (-1: not within what was read): 414 when the request line alone is over the limit
 * (its target is too long: RFC 9110 section 15.5.15, as nginx answers), else 431.
 */
export function oversizeStatus(lineEnd: number, limit: number): number {
  return lineEnd === -1 || lineEnd > limit ? 414 : 431;
}

/** The status a request head refused for `error` is answered with, on HTTP/1 and HTTP/2 alike. */
export function statusForHeadError(error: HeadError): number {
  if (error === 'unsupported-transfer-encoding') return 501;
  if (error === 'bad-version') return 505;
  if (error === 'too-many-headers') return 431;
  return 400;
}
