// One access-log line, from what both protocols know of a request: JSON (one
// object per line) or the Apache/nginx "combined" format. A request's fields
// are captured when it ends (copied into the shared ring of access-ring.ts);
// the log's own thread writes each line as bytes straight into the buffer that
// goes to the file, copying the path and the request id from the ring as they
// lie there, off the thread that serves (docs/operations.md, "Access log").
import type { Head } from './head.js';

export type AccessLogFormat = 'json' | 'combined';

/** What both protocols know of a request when its line is written. */
export interface AccessEntry {
  readonly service: string;
  /** The client's address (the one a trusted PROXY header named, when there was one). */
  readonly client: string;
  /** The request's head; null when none was read whole (a head refused before it became a request). */
  readonly head: Head | null;
  readonly protocol: 'HTTP/1.0' | 'HTTP/1.1' | 'h2';
  readonly status: number;
  /** Bytes from the client for this request (head and body) and to it (head and body). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /**
   * Of bytesOut, the response heads' (a 1xx's included). The combined format's bytes are the
   * rest, the body's, as Apache's %b and nginx's $body_bytes_sent count them.
   */
  readonly headBytesOut: number;
  /** performance.now() when the head was read, and when the backend's first byte came (0: it never did). */
  readonly startedAt: number;
  readonly backendAt: number;
  readonly tls: string;
  readonly requestId: string;
  /** When the proxy answered itself: why (no backend, backend timeout, bad response, 408, 431...). */
  readonly reason: string | undefined;
  /** A gRPC call's status (its grpc-status, 0 for OK), through an h2c backend; -1 for any other request. */
  readonly grpcStatus: number;
}

/**
 * A request's line before it is formatted, as the log's thread reads it from the ring
 * (access-ring.ts) and reuses it for the next: the repeated strings as strings (decoded only
 * when they change), the others where their bytes lie in the ring (`bytes`), the numbers as
 * numbers. The getters decode a string of the ring (for tests and rare paths: a line is
 * formatted from the bytes).
 */
export class CapturedLine {
  service = '';
  client = '';
  /** '' when no head was read whole. */
  method = '';
  tls = '';
  /** The bytes the strings below lie in (latin1: a byte a character; the reason's UTF-8). */
  bytes: Buffer = Buffer.alloc(0);
  targetAt = 0;
  targetLength = 0;
  requestIdAt = 0;
  requestIdLength = 0;
  /** The proxy's own answer's reason, in UTF-8; length -1: none. */
  reasonAt = 0;
  reasonLength = -1;
  /** Combined format only, the Referer and User-Agent headers; length -1: none. */
  refererAt = 0;
  refererLength = -1;
  agentAt = 0;
  agentLength = -1;
  protocol: AccessEntry['protocol'] = 'HTTP/1.1';
  status = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** The response body's bytes: bytesOut without the heads. */
  bodyBytesOut = 0;
  /** performance.now() of the serving thread when the line was written (the request's end). */
  endedAt = 0;
  durationMs = 0;
  /** -1: the backend never answered. */
  backendMs = -1;
  grpcStatus = -1;

  get target(): string {
    return textAt(this.bytes, 'latin1', this.targetAt, this.targetLength) as string;
  }

  get requestId(): string {
    return textAt(this.bytes, 'latin1', this.requestIdAt, this.requestIdLength) as string;
  }

  get reason(): string | undefined {
    return textAt(this.bytes, 'utf8', this.reasonAt, this.reasonLength);
  }

  get referer(): string | undefined {
    return textAt(this.bytes, 'latin1', this.refererAt, this.refererLength);
  }

  get agent(): string | undefined {
    return textAt(this.bytes, 'latin1', this.agentAt, this.agentLength);
  }
}

/** The string of `length` bytes at `at`; undefined when its length is -1 (none). */
function textAt(bytes: Buffer, encoding: 'utf8' | 'latin1', at: number, length: number): string | undefined {
  return length < 0 ? undefined : bytes.toString(encoding, at, at + length);
}

/**
 * Writes access-log lines as bytes, one format's. Bytes rather than strings: a line of string
 * pieces cost V8 a join per piece and a walk of them all to encode the batch, about 1.9 us a
 * line, where copying the ring's bytes and a few constant pieces costs about 0.3 us
 * (docs/benchmarks.md, "The access log's cost"). What repeats from line to line (the opening up to the
 * path, the TLS version, the second of the time) is kept as bytes, built again only when it
 * changes.
 */
export class AccessLineFormatter {
  readonly #json: boolean;
  readonly #keepQuery: boolean;
  /** JSON: `","type":"access","service":"web-https","client":"192.0.2.7","method":"GET","path":"`; combined: `192.0.2.7 - - [`. */
  readonly #opening = new KeptBytes();
  /** JSON: `,"tls":"TLSv1.3","request_id":"`; combined: `] "GET `. */
  readonly #middle = new KeptBytes();
  /** Combined: `web-https ` (the service, before the request id). */
  readonly #service = new KeptBytes();
  readonly #clock = new SecondClock();

  /** Lines of `format`; the query string kept in the path when `keepQuery` (else dropped). */
  constructor(format: AccessLogFormat, keepQuery: boolean) {
    this.#json = format === 'json';
    this.#keepQuery = keepQuery;
  }

  /** The most bytes the line of `line` can take (its strings escaped at their longest). */
  bound(line: CapturedLine): number {
    return (
      LINE_BYTES +
      6 *
        (line.service.length +
          line.client.length +
          line.method.length +
          line.tls.length +
          line.targetLength +
          line.requestIdLength +
          Math.max(0, line.reasonLength) +
          Math.max(0, line.refererLength) +
          Math.max(0, line.agentLength))
    );
  }

  /**
   * Writes the line of `line`, ended by a newline, at `at` in `out`, which has room for
   * `bound(line)` bytes from there; returns where it ends. `wallOffset` turns its
   * performance.now() into wall-clock milliseconds (Date.now() - performance.now(), read once
   * per batch).
   */
  write(line: CapturedLine, wallOffset: number, out: Buffer, at: number): number {
    const wallMs = Math.floor(wallOffset + line.endedAt);
    return this.#json ? this.#jsonLine(line, wallMs, out, at) : this.#combinedLine(line, wallMs, out, at);
  }

  /**
   * `{"time":"...","type":"access","service":...,"client":...,"method":...,"path":...,"protocol":...,
   * "status":...,"bytes_in":...,"bytes_out":...,"duration_ms":...,"backend_ms":...,"tls":...,
   * "request_id":...}`, with `grpc_status` and `reason` when there are.
   */
  #jsonLine(e: CapturedLine, wallMs: number, out: Buffer, at: number): number {
    let o = piece(out, at, this.#clock.isoPrefix(wallMs));
    o = digits3(out, o, wallMs - this.#clock.second * 1000);
    out[o++] = 0x5a; // Z
    o = piece(out, o, this.#jsonOpening(e.service, e.client, e.method));
    if (e.method === '')
      out[o++] = 0x2d; // -
    else o = jsonEscaped(out, o, e.bytes, e.targetAt, this.#pathEnd(e));
    o = piece(out, o, e.protocol === 'HTTP/1.1' ? JSON_HTTP11 : e.protocol === 'h2' ? JSON_H2 : JSON_HTTP10);
    o = decimal(out, o, e.status);
    o = piece(out, o, JSON_BYTES_IN);
    o = decimal(out, o, e.bytesIn);
    o = piece(out, o, JSON_BYTES_OUT);
    o = decimal(out, o, e.bytesOut);
    o = piece(out, o, JSON_DURATION);
    o = millis(out, o, e.durationMs);
    if (e.backendMs < 0) o = piece(out, o, JSON_NO_BACKEND);
    else {
      o = piece(out, o, JSON_BACKEND);
      o = millis(out, o, e.backendMs);
    }
    o = piece(out, o, this.#jsonTls(e.tls));
    o = copied(out, o, e.bytes, e.requestIdAt, e.requestIdAt + e.requestIdLength);
    out[o++] = 0x22; // "
    if (e.grpcStatus >= 0) {
      o = piece(out, o, JSON_GRPC_STATUS);
      o = decimal(out, o, e.grpcStatus);
    }
    if (e.reasonLength >= 0) {
      o = piece(out, o, JSON_REASON);
      o += out.write(JSON.stringify(e.reason), o, 'utf8');
    }
    out[o++] = 0x7d; // }
    out[o++] = 0x0a;
    return o;
  }

  /** From after the time to the path's first character. */
  #jsonOpening(service: string, client: string, method: string): Buffer {
    const kept = this.#opening;
    if (kept.holds(service, client, method)) return kept.bytes;
    return kept.keep(
      service,
      client,
      method,
      `","type":"access","service":${JSON.stringify(service)},"client":"${client}","method":"${method === '' ? '-' : method}","path":"`,
    );
  }

  /** From after the backend time to the request id's first character. */
  #jsonTls(tls: string): Buffer {
    const kept = this.#middle;
    if (kept.holds(tls, '', '')) return kept.bytes;
    return kept.keep(tls, '', '', `,"tls":"${tls}","request_id":"`);
  }

  /**
   * `client - - [time] "METHOD path PROTOCOL" status bytes "referer" "agent"`, then service, id,
   * milliseconds and the reason when there is one.
   */
  #combinedLine(e: CapturedLine, wallMs: number, out: Buffer, at: number): number {
    let o = piece(out, at, this.#combinedClient(e.client));
    o = piece(out, o, this.#clock.clf(wallMs));
    o = piece(out, o, this.#combinedMethod(e.method));
    if (e.method === '')
      out[o++] = 0x2d; // -
    else o = quoted(out, o, e.bytes, e.targetAt, this.#pathEnd(e));
    o = piece(out, o, e.protocol === 'HTTP/1.1' ? CLF_HTTP11 : e.protocol === 'h2' ? CLF_H2 : CLF_HTTP10);
    o = decimal(out, o, e.status);
    out[o++] = 0x20;
    o = decimal(out, o, e.bodyBytesOut);
    out[o++] = 0x20;
    o = quotedOrDash(out, o, e.bytes, e.refererAt, e.refererLength);
    out[o++] = 0x20;
    o = quotedOrDash(out, o, e.bytes, e.agentAt, e.agentLength);
    out[o++] = 0x20;
    o = piece(out, o, this.#combinedService(e.service));
    o = copied(out, o, e.bytes, e.requestIdAt, e.requestIdAt + e.requestIdLength);
    out[o++] = 0x20;
    o = millis(out, o, e.durationMs);
    if (e.reasonLength >= 0) {
      out[o++] = 0x20;
      o = copied(out, o, e.bytes, e.reasonAt, e.reasonAt + e.reasonLength);
    }
    out[o++] = 0x0a;
    return o;
  }

  /** `192.0.2.7 - - [` */
  #combinedClient(client: string): Buffer {
    const kept = this.#opening;
    if (kept.holds(client, '', '')) return kept.bytes;
    return kept.keep(client, '', '', `${client} - - [`);
  }

  /** `] "GET ` */
  #combinedMethod(method: string): Buffer {
    const kept = this.#middle;
    if (kept.holds(method, '', '')) return kept.bytes;
    return kept.keep(method, '', '', `] "${method === '' ? '-' : method} `);
  }

  /** `web-https ` */
  #combinedService(service: string): Buffer {
    const kept = this.#service;
    if (kept.holds(service, '', '')) return kept.bytes;
    return kept.keep(service, '', '', `${service} `);
  }

  /** Where the path as logged ends in the ring: before the query string unless the settings keep it. */
  #pathEnd(e: CapturedLine): number {
    const end = e.targetAt + e.targetLength;
    if (this.#keepQuery) return end;
    const bytes = e.bytes;
    for (let i = e.targetAt; i < end; i++) if (bytes[i] === 0x3f) return i; // ?
    return end;
  }
}

/** A line's bytes beyond its strings' (escaped six times over at most): its names, numbers and punctuation. */
const LINE_BYTES = 512;

const bytesOf = (text: string) => Buffer.from(text, 'latin1');
const JSON_HTTP11 = bytesOf('","protocol":"HTTP/1.1","status":');
const JSON_H2 = bytesOf('","protocol":"h2","status":');
const JSON_HTTP10 = bytesOf('","protocol":"HTTP/1.0","status":');
const JSON_BYTES_IN = bytesOf(',"bytes_in":');
const JSON_BYTES_OUT = bytesOf(',"bytes_out":');
const JSON_DURATION = bytesOf(',"duration_ms":');
const JSON_BACKEND = bytesOf(',"backend_ms":');
const JSON_NO_BACKEND = bytesOf(',"backend_ms":null');
const JSON_GRPC_STATUS = bytesOf(',"grpc_status":');
const JSON_REASON = bytesOf(',"reason":');
const CLF_HTTP11 = bytesOf(' HTTP/1.1" ');
const CLF_H2 = bytesOf(' HTTP/2.0" ');
const CLF_HTTP10 = bytesOf(' HTTP/1.0" ');
const DASH_QUOTED = bytesOf('"-"');
const HEX_DIGITS = bytesOf('0123456789ABCDEF');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A piece of a line kept as bytes while the (up to three) strings it is built from repeat: a
 * proxy logs a handful of services, and its lines come from few clients (the platform's router)
 * using a few methods. Lines from many clients at once (through a trusted PROXY header) build it
 * each time.
 */
class KeptBytes {
  #a = '';
  #b = '';
  #c = '';
  #kept = false;
  bytes: Buffer = Buffer.alloc(0);

  /** True when the kept bytes were built from these strings. */
  holds(a: string, b: string, c: string): boolean {
    return this.#kept && a === this.#a && b === this.#b && c === this.#c;
  }

  /** Keeps `text` (as UTF-8), built from these strings, and returns its bytes. */
  keep(a: string, b: string, c: string, text: string): Buffer {
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#kept = true;
    this.bytes = Buffer.from(text, 'utf8');
    return this.bytes;
  }
}

/**
 * The second of a line's time, formatted once per second: ISO 8601 up to its milliseconds, the
 * common log format's. Date's own toISOString() per line cost about 3,500 instructions
 * (callgrind): as many as the rest of the line.
 */
class SecondClock {
  /** The second of the ISO 8601 time kept. */
  second = Number.NaN;
  #iso: Buffer = Buffer.alloc(0);
  #clfSecond = Number.NaN;
  #clf: Buffer = Buffer.alloc(0);

  /** `{"time":"2026-12-04T08:55:12.` for the second of `wallMs` (whole milliseconds), kept in `second`. */
  isoPrefix(wallMs: number): Buffer {
    const second = Math.floor(wallMs / 1000);
    if (second !== this.second) {
      this.second = second;
      this.#iso = bytesOf(`{"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`);
    }
    return this.#iso;
  }

  /** `04/Dec/2026:08:55:12 +0000` */
  clf(wallMs: number): Buffer {
    const second = Math.floor(wallMs / 1000);
    if (second !== this.#clfSecond) {
      this.#clfSecond = second;
      const d = new Date(second * 1000);
      const pad = (n: number) => String(n).padStart(2, '0');
      this.#clf = bytesOf(
        `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`,
      );
    }
    return this.#clf;
  }
}

/**
 * Copies `bytes` to `out` at `o`; returns the end. Longer pieces through TypedArray#set (a
 * memmove), short ones byte by byte (cheaper than the call).
 */
function piece(out: Buffer, o: number, bytes: Buffer): number {
  const length = bytes.length;
  if (length > 24) {
    out.set(bytes, o);
    return o + length;
  }
  for (let i = 0; i < length; i++) out[o++] = bytes[i]!;
  return o;
}

/** Copies `from`..`to` of `bytes` to `out` at `o`; returns the end. */
function copied(out: Buffer, o: number, bytes: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) out[o++] = bytes[i]!;
  return o;
}

/**
 * Latin1 text (a byte a character) inside a JSON string: a quote and a backslash escaped, a
 * control byte as \u00XX, a byte above 0x7f as the UTF-8 of its character (JSON.stringify's
 * output, encoded). A request target is visible ASCII (the parser refuses any other byte, and
 * HTTP/2 requests go through the same parser): in practice only a quote or a backslash is
 * escaped.
 */
function jsonEscaped(out: Buffer, o: number, bytes: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = bytes[i]!;
    if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) out[o++] = c;
    else if (c === 0x22 || c === 0x5c) {
      out[o++] = 0x5c;
      out[o++] = c;
    } else if (c < 0x20) {
      out[o++] = 0x5c; // \u00XX
      out[o++] = 0x75;
      out[o++] = 0x30;
      out[o++] = 0x30;
      out[o++] = HEX_DIGITS[c >> 4]!;
      out[o++] = HEX_DIGITS[c & 15]!;
    } else {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
    }
  }
  return o;
}

/**
 * Latin1 text inside a quoted field of the combined format: a quote and a backslash escaped
 * with a backslash, any other byte below 0x20 or above 0x7e as \xHH (nginx's escaping; a
 * header's obs-text is raw bytes, which would otherwise turn a client's UTF-8 into mojibake).
 */
function quoted(out: Buffer, o: number, bytes: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = bytes[i]!;
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) out[o++] = c;
    else if (c === 0x22 || c === 0x5c) {
      out[o++] = 0x5c;
      out[o++] = c;
    } else {
      out[o++] = 0x5c; // \xHH
      out[o++] = 0x78;
      out[o++] = HEX_DIGITS[c >> 4]!;
      out[o++] = HEX_DIGITS[c & 15]!;
    }
  }
  return o;
}

/** A quoted field, or `"-"` when the header was absent (length -1). */
function quotedOrDash(out: Buffer, o: number, bytes: Buffer, at: number, length: number): number {
  if (length < 0) return piece(out, o, DASH_QUOTED);
  out[o++] = 0x22;
  o = quoted(out, o, bytes, at, at + length);
  out[o++] = 0x22;
  return o;
}

/** `n` in decimal: a whole number from 0 to 2^53 digit by digit, any other as String() writes it. */
function decimal(out: Buffer, o: number, n: number): number {
  if (n < 10 && n >= 0 && n === Math.floor(n)) {
    out[o] = 0x30 + n;
    return o + 1;
  }
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && n === Math.floor(n))) {
    return o + out.write(String(n), o, 'latin1');
  }
  let length = 2;
  for (let m = n; m >= 100; m = Math.floor(m / 10)) length++;
  const end = o + length;
  for (let i = end; i > o; ) {
    const q = Math.floor(n / 10);
    out[--i] = 0x30 + n - q * 10;
    n = q;
  }
  return end;
}

/** A number from 0 to 999 as three digits: the milliseconds of an ISO 8601 time. */
function digits3(out: Buffer, o: number, n: number): number {
  const hundreds = Math.floor(n / 100);
  const tens = Math.floor(n / 10) - hundreds * 10;
  out[o] = 0x30 + hundreds;
  out[o + 1] = 0x30 + tens;
  out[o + 2] = 0x30 + n - hundreds * 100 - tens * 10;
  return o + 3;
}

/** Milliseconds to three decimals, trailing zeros dropped: 0.432, 12.05, 3. */
function millis(out: Buffer, o: number, ms: number): number {
  let us = Math.round(ms * 1000);
  if (us < 0) {
    out[o++] = 0x2d; // -
    us = -us;
  }
  const whole = Math.floor(us / 1000);
  o = decimal(out, o, whole);
  const fraction = us - whole * 1000;
  if (fraction === 0 || !Number.isFinite(fraction)) return o;
  out[o++] = 0x2e; // .
  const tenths = Math.floor(fraction / 100);
  const hundredths = Math.floor(fraction / 10) - tenths * 10;
  const thousandths = fraction - tenths * 100 - hundredths * 10;
  out[o++] = 0x30 + tenths;
  if (hundredths === 0 && thousandths === 0) return o;
  out[o++] = 0x30 + hundredths;
  if (thousandths !== 0) out[o++] = 0x30 + thousandths;
  return o;
}
