// One access-log line as text, from what both protocols know of a request: JSON
// (one object per line) or the Apache/nginx "combined" format. Built as one
// string (V8 joins the pieces without copying; the batch encodes them once),
// which measured cheaper than writing the fields byte by byte into the batch.
import type { Head } from './head-parser.js';

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
  /** performance.now() when the head was read, and when the backend's first byte came (0: it never did). */
  readonly startedAt: number;
  readonly backendAt: number;
  readonly tls: string;
  readonly requestId: string;
  /** When the proxy answered itself: why (no backend, backend timeout, bad response, 408, 431...). */
  readonly reason: string | undefined;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The line for `entry` (its durations up to `now`, a performance.now()), ended by a newline. */
export function accessLine(
  format: AccessLogFormat,
  keepQuery: boolean,
  entry: AccessEntry,
  now: number,
): string {
  return format === 'json' ? jsonLine(entry, now, keepQuery) : combinedLine(entry, now, keepQuery);
}

/**
 * A JSON line, built as text: the fields that are safe in a JSON string as they are
 * (addresses, a token method, a validated request id, fixed words) go in directly; the
 * service name, the path and the reason go through JSON.stringify.
 */
function jsonLine(e: AccessEntry, now: number, keepQuery: boolean): string {
  const head = e.head;
  return (
    `{"time":"${clock.iso()}","type":"access","service":${jsonService(e.service)},"client":"${e.client}",` +
    `"method":"${head === null ? '-' : head.method}","path":${head === null ? '"-"' : JSON.stringify(pathOf(head.target, keepQuery))},` +
    `"protocol":"${e.protocol}","status":${e.status},"bytes_in":${e.bytesIn},"bytes_out":${e.bytesOut},` +
    `"duration_ms":${head === null ? '0' : millis(now - e.startedAt)},` +
    `"backend_ms":${head === null || e.backendAt === 0 ? 'null' : millis(e.backendAt - e.startedAt)},"tls":"${e.tls}",` +
    `"request_id":"${e.requestId}"${e.reason === undefined ? '' : `,"reason":${JSON.stringify(e.reason)}`}}\n`
  );
}

/** `client - - [time] "METHOD path PROTOCOL" status bytes "referer" "agent"`, then service, id and time. */
function combinedLine(e: AccessEntry, now: number, keepQuery: boolean): string {
  const head = e.head;
  const protocol = e.protocol === 'h2' ? 'HTTP/2.0' : e.protocol;
  const request =
    head === null ? `- - ${protocol}` : `${head.method} ${pathOf(head.target, keepQuery)} ${protocol}`;
  const referer = head?.header('referer') ?? '-';
  const agent = head?.header('user-agent') ?? '-';
  return `${e.client} - - [${clock.clf()}] "${quoted(request)}" ${e.status} ${e.bytesOut} "${quoted(referer)}" "${quoted(agent)}" ${e.service} ${e.requestId} ${millis(head === null ? 0 : now - e.startedAt)}${e.reason === undefined ? '' : ` ${e.reason}`}\n`;
}

/** The target as logged: without its query string unless the settings keep it. */
function pathOf(target: string, keepQuery: boolean): string {
  if (keepQuery) return target;
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/**
 * The time of a line, formatted once per millisecond (ISO 8601) or per second (the
 * common log format's): a busy proxy writes many lines in each.
 */
const clock = {
  isoAt: -1,
  isoText: '',
  clfAt: -1,
  clfText: '',
  iso(): string {
    const now = Date.now();
    if (now !== this.isoAt) {
      this.isoAt = now;
      this.isoText = new Date(now).toISOString();
    }
    return this.isoText;
  },
  clf(): string {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.clfAt) {
      this.clfAt = second;
      const d = new Date(second * 1000);
      const pad = (n: number) => String(n).padStart(2, '0');
      this.clfText = `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
    }
    return this.clfText;
  },
};

/** The service's name as a JSON string, encoded once (a proxy logs a handful of names). */
let lastService = '';
let lastServiceJson = '""';
function jsonService(name: string): string {
  if (name !== lastService) {
    lastService = name;
    lastServiceJson = JSON.stringify(name);
  }
  return lastServiceJson;
}

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

/**
 * Milliseconds to three decimals, written from whole microseconds (formatting a fraction
 * costs several times more): 0.432, 12.05, 3.
 */
function millis(ms: number): string {
  const us = Math.round(ms * 1000);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  if (frac === 0) return String(whole);
  let width = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    width--;
  }
  return `${whole}.${String(frac).padStart(width, '0')}`;
}
