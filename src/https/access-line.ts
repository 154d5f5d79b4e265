// One access-log line as text, from what both protocols know of a request: JSON
// (one object per line) or the Apache/nginx "combined" format. A request's
// fields are captured when it ends (copied into the shared ring of
// access-ring.ts) and formatted on the log's own thread with the rest of its
// batch, off the thread that serves (docs/operations.md, "Access log").
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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A request's line before it is formatted: what the entry said, with what the head said copied
 * out (the head is reused by the connection's next request) and the times made durations. The
 * log's thread fills one from the shared ring (access-ring.ts) for each line it formats.
 */
export class CapturedLine {
  service = '';
  client = '';
  /** '' when no head was read whole. */
  method = '';
  target = '';
  /** Combined format only: the Referer and User-Agent headers. */
  referer: string | undefined = undefined;
  agent: string | undefined = undefined;
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
  tls = '';
  requestId = '';
  reason: string | undefined = undefined;
  grpcStatus = -1;
}

/**
 * The line for a captured request, ended by a newline; `wallOffset` turns its performance.now()
 * into wall-clock milliseconds (Date.now() - performance.now(), read once per batch).
 */
export function accessLine(
  format: AccessLogFormat,
  keepQuery: boolean,
  line: CapturedLine,
  wallOffset: number,
): string {
  const wallMs = wallOffset + line.endedAt;
  return format === 'json' ? jsonLine(line, wallMs, keepQuery) : combinedLine(line, wallMs, keepQuery);
}

/**
 * A JSON line, built as text from as few pieces as it can: each piece costs V8 a join now and a
 * walk when the batch is encoded, about 100 instructions (callgrind), so what repeats from line
 * to line (the opening up to the path, the TLS version) is a piece of its own, built again only
 * when it changes. The fields that are safe in a JSON string as they are (addresses, a token
 * method, a validated request id, fixed words) go in directly; the path is escaped only when it
 * holds a quote or a backslash, and the service name and the reason go through JSON.stringify.
 */
function jsonLine(e: CapturedLine, wallMs: number, keepQuery: boolean): string {
  const path = e.method === '' ? '-' : jsonSafePath(pathOf(e.target, keepQuery));
  return `${clock.jsonOpening(wallMs)}${jsonOpening(e.service, e.client, e.method)}${path}${jsonProtocol(e.protocol)}${decimal(e.status)},"bytes_in":${decimal(e.bytesIn)},"bytes_out":${decimal(e.bytesOut)},"duration_ms":${millis(e.durationMs)}${e.backendMs < 0 ? ',"backend_ms":null' : `,"backend_ms":${millis(e.backendMs)}`}${jsonTls(e.tls)}${e.requestId}${e.grpcStatus < 0 && e.reason === undefined ? '"}\n' : jsonEnding(e)}`;
}

/**
 * Between the path and the status: the protocol. (A choice of three constants, not a lookup by
 * name: a keyed lookup by a string costs V8 a megamorphic load on every line.)
 */
function jsonProtocol(protocol: AccessEntry['protocol']): string {
  return protocol === 'HTTP/1.1'
    ? '","protocol":"HTTP/1.1","status":'
    : protocol === 'h2'
      ? '","protocol":"h2","status":'
      : '","protocol":"HTTP/1.0","status":';
}

/**
 * What a request target can hold that JSON must escape. A target is visible ASCII (the parser
 * refuses any other byte, and HTTP/2 requests go through the same parser), so no control
 * character and nothing above 0x7e: a quote or a backslash are all there is to look for.
 */
const JSON_UNSAFE_IN_TARGET = /["\\]/;

/** The path inside a JSON string, quotes excluded. */
function jsonSafePath(path: string): string {
  return JSON_UNSAFE_IN_TARGET.test(path) ? JSON.stringify(path).slice(1, -1) : path;
}

/** After the request id: grpc_status and reason when there are, and the line's end. */
function jsonEnding(e: CapturedLine): string {
  return `"${e.grpcStatus < 0 ? '' : `,"grpc_status":${decimal(e.grpcStatus)}`}${e.reason === undefined ? '' : `,"reason":${JSON.stringify(e.reason)}`}}\n`;
}

/**
 * A piece of a line kept while the (up to three) values it is built from repeat: a proxy logs a
 * handful of services, and its lines come from few clients (the platform's router) using a few
 * methods. Lines from many clients at once (through a trusted PROXY header) build it each time,
 * as every line did before.
 */
class KeptPiece {
  #a = '';
  #b = '';
  #c = '';
  /** '' until first kept. */
  text = '';

  /** True when the kept text was built from these values. */
  holds(a: string, b: string, c: string): boolean {
    return this.text !== '' && a === this.#a && b === this.#b && c === this.#c;
  }

  /** Keeps `text`, built from these values, and returns it. */
  keep(a: string, b: string, c: string, text: string): string {
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.text = text;
    return text;
  }
}

/** `","type":"access","service":"web-https","client":"192.0.2.7","method":"GET","path":"` */
const jsonOpenings = new KeptPiece();

/** The line from after its time to the path's first character. */
function jsonOpening(service: string, client: string, method: string): string {
  const kept = jsonOpenings;
  if (kept.holds(service, client, method)) return kept.text;
  return kept.keep(
    service,
    client,
    method,
    `","type":"access","service":${JSON.stringify(service)},"client":"${client}","method":"${method === '' ? '-' : method}","path":"`,
  );
}

/** `","tls":"TLSv1.3","request_id":"` */
const jsonTlsPieces = new KeptPiece();

/** From after the backend time to the request id's first character. */
function jsonTls(tls: string): string {
  const kept = jsonTlsPieces;
  if (kept.holds(tls, '', '')) return kept.text;
  return kept.keep(tls, '', '', `,"tls":"${tls}","request_id":"`);
}

/**
 * `client - - [time] "METHOD path PROTOCOL" status bytes "referer" "agent"`, then service, id and
 * time; what repeats from line to line (up to the method, the protocol) as one piece each.
 */
function combinedLine(e: CapturedLine, wallMs: number, keepQuery: boolean): string {
  const path = e.method === '' ? '-' : quoted(pathOf(e.target, keepQuery));
  return `${combinedOpening(e.client, clock.clf(wallMs), e.method)}${path}${combinedProtocol(e.protocol)}${decimal(e.status)} ${decimal(e.bodyBytesOut)} "${e.referer === undefined ? '-' : quoted(e.referer)}" "${e.agent === undefined ? '-' : quoted(e.agent)}" ${e.service} ${e.requestId} ${millis(e.durationMs)}${e.reason === undefined ? '\n' : ` ${e.reason}\n`}`;
}

/** Between the path and the status: the protocol, as the request line names it. */
function combinedProtocol(protocol: AccessEntry['protocol']): string {
  return protocol === 'HTTP/1.1' ? ' HTTP/1.1" ' : protocol === 'h2' ? ' HTTP/2.0" ' : ' HTTP/1.0" ';
}

/** `192.0.2.7 - - [04/Dec/2026:08:55:12 +0000] "GET ` */
const combinedOpenings = new KeptPiece();

function combinedOpening(client: string, time: string, method: string): string {
  const kept = combinedOpenings;
  if (kept.holds(client, time, method)) return kept.text;
  return kept.keep(client, time, method, `${client} - - [${time}] "${method === '' ? '-' : method} `);
}

/** The target as logged: without its query string unless the settings keep it. */
function pathOf(target: string, keepQuery: boolean): string {
  if (keepQuery) return target;
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/**
 * The time of a line. Its second is formatted once per second (the ISO 8601 date and time, the
 * common log format's); the milliseconds of ISO 8601 come from a table. Date's own
 * toISOString() cost about 3,500 instructions a line when every line had its own
 * millisecond (callgrind, docs/operations.md): as many as the rest of the line.
 */
const clock = {
  isoSecond: Number.NaN,
  /** '2026-12-04T08:55:12.' for isoSecond. */
  isoPrefix: '',
  isoAt: Number.NaN,
  /** '{"time":"2026-12-04T08:55:12.345Z' for isoAt: the line's first piece. */
  isoOpening: '',
  clfAt: Number.NaN,
  clfText: '',
  /** A JSON line's opening: `{"time":"` and the time. */
  jsonOpening(wallMs: number): string {
    const ms = Math.floor(wallMs);
    if (ms !== this.isoAt) {
      this.isoAt = ms;
      const second = Math.floor(ms / 1000);
      if (second !== this.isoSecond) {
        this.isoSecond = second;
        this.isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
      }
      this.isoOpening = `{"time":"${this.isoPrefix}${THOUSANDTHS[ms - second * 1000]}Z`;
    }
    return this.isoOpening;
  },
  clf(wallMs: number): string {
    const second = Math.floor(wallMs / 1000);
    if (second !== this.clfAt) {
      this.clfAt = second;
      const d = new Date(second * 1000);
      const pad = (n: number) => String(n).padStart(2, '0');
      this.clfText = `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
    }
    return this.clfText;
  },
};

/**
 * What a quoted field must escape: quotes, backslashes, control bytes, and bytes above 0x7e
 * (a header value's obs-text: raw bytes held one per character, which the log's UTF-8 would
 * otherwise write as two bytes each, turning a client's UTF-8 into mojibake).
 */
const NEEDS_QUOTING = /["\\\x00-\x1f\x7f-\xff]/;
const QUOTING = new RegExp(NEEDS_QUOTING.source, 'g');

/** Inside a quoted field: quotes and backslashes escaped, other bytes as \xHH (nginx's escaping). */
function quoted(text: string): string {
  if (!NEEDS_QUOTING.test(text)) return text;
  return text.replace(QUOTING, (c) =>
    c === '"' || c === '\\' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** Whole numbers below this (statuses, small byte counts, milliseconds) are written from a table. */
const TABLE_SIZE = 1000;
/** '0' to '999'. */
const WHOLE = Array.from({ length: TABLE_SIZE }, (_, n) => String(n));
/** '000' to '999': the milliseconds of an ISO 8601 time. */
const THOUSANDTHS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
/** A fraction of thousandths as written after the whole milliseconds: '', '.5', '.05', '.432'. */
const FRACTION = Array.from({ length: 1000 }, (_, n) =>
  n === 0 ? '' : `.${String(n).padStart(3, '0').replace(/0+$/, '')}`,
);

/**
 * A number in decimal: a small whole one from the table (formatting a number cost about
 * 0.1 us per line under load), any other as String() writes it.
 */
function decimal(n: number): string {
  return WHOLE[n] ?? String(n);
}

/**
 * Milliseconds to three decimals, written from whole microseconds with table lookups
 * (number formatting and padding were a fifth of the log's cost per line): 0.432, 12.05, 3.
 */
function millis(ms: number): string {
  const us = Math.round(ms * 1000);
  const whole = Math.floor(us / 1000);
  return decimal(whole) + (FRACTION[us - whole * 1000] as string);
}
