// The access log: one line per request (and per WebSocket or other upgrade),
// as JSON or in the Apache/nginx "combined" format that log tools parse, to
// stdout beside the other logs or to a file that SIGUSR1 reopens (logrotate).
// Never a header that can carry a secret: no Authorization, no Cookie.
import { close, openSync, write } from 'node:fs';

export type AccessLogFormat = 'json' | 'combined';

export interface AccessEntry {
  readonly service: string;
  /** The client's address (the one a trusted PROXY header named, when there was one). */
  readonly client: string;
  readonly method: string;
  /** The request target, its query string dropped unless kept by the settings. */
  readonly path: string;
  /** HTTP/1.1, HTTP/1.0 or h2. */
  readonly protocol: string;
  readonly status: number;
  /** Bytes from the client for this request (head and body) and to it (head and body). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** From the request head to the end of the response. */
  readonly durationMs: number;
  /** From the request head to the backend's first byte; undefined when the backend never answered. */
  readonly backendMs: number | undefined;
  readonly tls: string;
  readonly requestId: string;
  /** When the proxy answered itself: why (no backend, backend timeout, bad response, 408, 431...). */
  readonly reason: string | undefined;
  readonly referer: string | undefined;
  readonly userAgent: string | undefined;
}

export interface AccessLogOptions {
  readonly format: AccessLogFormat;
  /** A file path; undefined: stdout. */
  readonly file: string | undefined;
  /** Keep the query string in `path` (it may carry tokens: dropped by default). */
  readonly keepQuery: boolean;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Lines are written in batches: when this many characters are waiting, or FLUSH_MS after the first. */
const FLUSH_CHARS = 32 * 1024;
const FLUSH_MS = 100;
/** A batch's buffer: room for the longest a batch can be in UTF-8 (a line is added before the check). */
const BATCH_BYTES = 3 * 2 * FLUSH_CHARS;
/**
 * Batches waiting for the disk at most (48 MiB): past it, new batches are dropped (lines lost,
 * serving goes on) rather than memory growing without end behind a stalled disk.
 */
const MAX_QUEUED = 256;
/** Written batches' buffers kept for the next ones: fresh memory costs a page fault per 4 KiB. */
const SPARE_BUFFERS = 4;

/** A batch of lines for the writer, or the file descriptor to close once those before it are written. */
type Queued =
  | { readonly buffer: Buffer; readonly length: number; readonly fd: number | undefined }
  | { readonly close: number };

export class AccessLog {
  readonly #options: AccessLogOptions;
  /** The file's descriptor; undefined: stdout, or the file could not be opened (lines are lost). */
  #fd: number | undefined;
  /**
   * Lines not written yet, joined (a string concatenation is a pointer until read): encoded
   * once per batch, one write (one system call) for many requests, off the request's path.
   */
  #pending = '';
  #timer: NodeJS.Timeout | undefined;
  /** Batches written one at a time, in order (writes to one file must not overtake each other). */
  readonly #queue: Queued[] = [];
  #writing = false;
  readonly #spare: Buffer[] = [];
  #drained: (() => void) | undefined;

  constructor(options: AccessLogOptions) {
    this.#options = options;
    if (options.file !== undefined) this.#fd = openLog(options.file);
  }

  /** The target as logged: without its query string unless the settings keep it. */
  path(target: string): string {
    if (this.#options.keepQuery) return target;
    const q = target.indexOf('?');
    return q === -1 ? target : target.slice(0, q);
  }

  /** Whether entries need the Referer and User-Agent (the combined format shows them). */
  get wantsAgent(): boolean {
    return this.#options.format === 'combined';
  }

  write(entry: AccessEntry): void {
    const line = this.#options.format === 'json' ? jsonLine(entry) : combinedLine(entry);
    if (line.length > FLUSH_CHARS) {
      // A line longer than a whole batch (a huge path): a batch of its own.
      this.flush();
      const bytes = Buffer.from(line, 'utf8');
      this.#enqueue(bytes, bytes.length);
      return;
    }
    this.#pending += line;
    if (this.#pending.length >= FLUSH_CHARS) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.#timer.unref();
    }
  }

  /** Hands what is waiting to the writer now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === '') return;
    const buffer = this.#spare.pop() ?? Buffer.allocUnsafe(BATCH_BYTES);
    const length = buffer.write(this.#pending, 0, 'utf8');
    this.#pending = '';
    this.#enqueue(buffer, length);
  }

  /** Opens the file again (logrotate moved it away: SIGUSR1); lines before go to the old one. */
  reopen(): void {
    const path = this.#options.file;
    if (path === undefined) return;
    this.flush();
    if (this.#fd !== undefined) this.#queue.push({ close: this.#fd });
    this.#fd = openLog(path);
    this.#pump();
  }

  /** Writes what is waiting, then closes the file. */
  close(): Promise<void> {
    this.flush();
    if (this.#fd !== undefined) this.#queue.push({ close: this.#fd });
    this.#fd = undefined;
    this.#pump();
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = resolve;
    });
  }

  #enqueue(buffer: Buffer, length: number): void {
    if (this.#queue.length >= MAX_QUEUED) {
      this.#recycle(buffer);
      return;
    }
    this.#queue.push({ buffer, length, fd: this.#fd });
    this.#pump();
  }

  #pump(): void {
    if (this.#writing) return;
    const next = this.#queue.shift();
    if (next === undefined) {
      this.#drained?.();
      this.#drained = undefined;
      return;
    }
    this.#writing = true;
    const done = () => {
      this.#writing = false;
      this.#pump();
    };
    if ('close' in next) {
      close(next.close, done);
      return;
    }
    const { buffer, length, fd } = next;
    if (fd === undefined && this.#options.file !== undefined) {
      // The file could not be opened: these lines are lost.
      this.#recycle(buffer);
      done();
      return;
    }
    if (fd === undefined) {
      process.stdout.write(buffer.subarray(0, length), () => {
        this.#recycle(buffer);
        done();
      });
      return;
    }
    let offset = 0;
    const more = (error: NodeJS.ErrnoException | null, written: number) => {
      offset += error ? 0 : written;
      // A full disk or a removed folder must not take the proxy down: lines are lost, serving goes on.
      if (error || offset >= length) {
        this.#recycle(buffer);
        done();
      } else write(fd, buffer, offset, length - offset, null, more);
    };
    write(fd, buffer, 0, length, null, more);
  }

  #recycle(buffer: Buffer): void {
    if (buffer.length === BATCH_BYTES && this.#spare.length < SPARE_BUFFERS) this.#spare.push(buffer);
  }
}

/** The log file opened for appending; undefined when it cannot be (its lines are lost, serving goes on). */
function openLog(path: string): number | undefined {
  try {
    return openSync(path, 'a', 0o640);
  } catch {
    return undefined;
  }
}

/**
 * A JSON line, built as text: the fields that are safe in a JSON string as they are
 * (addresses, a token method, a validated request id, fixed words) go in directly; the
 * service name, the path and the reason go through JSON.stringify.
 */
function jsonLine(e: AccessEntry): string {
  return (
    `{"time":"${clock.iso()}","type":"access","service":${jsonService(e.service)},"client":"${e.client}",` +
    `"method":"${e.method}","path":${JSON.stringify(e.path)},"protocol":"${e.protocol}","status":${e.status},` +
    `"bytes_in":${e.bytesIn},"bytes_out":${e.bytesOut},"duration_ms":${millis(e.durationMs)},` +
    `"backend_ms":${e.backendMs === undefined ? 'null' : millis(e.backendMs)},"tls":"${e.tls}",` +
    `"request_id":"${e.requestId}"${e.reason === undefined ? '' : `,"reason":${JSON.stringify(e.reason)}`}}\n`
  );
}

/** `client - - [time] "METHOD path PROTOCOL" status bytes "referer" "agent"`, then service, id and time. */
function combinedLine(e: AccessEntry): string {
  const protocol = e.protocol === 'h2' ? 'HTTP/2.0' : e.protocol;
  return `${e.client} - - [${clock.clf()}] "${quoted(`${e.method} ${e.path} ${protocol}`)}" ${e.status} ${e.bytesOut} "${quoted(e.referer ?? '-')}" "${quoted(e.userAgent ?? '-')}" ${e.service} ${e.requestId} ${millis(e.durationMs)}${e.reason === undefined ? '' : ` ${e.reason}`}\n`;
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

/** Control bytes, quotes and backslashes: what a quoted field must escape. */
const NEEDS_QUOTING = /["\\\x00-\x1f\x7f]/;
const QUOTING = new RegExp(NEEDS_QUOTING.source, 'g');

/** Inside a quoted field: quotes and backslashes escaped, control bytes as \xHH. */
function quoted(text: string): string {
  if (!NEEDS_QUOTING.test(text)) return text;
  return text.replace(QUOTING, (c) =>
    c === '"' || c === '\\' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
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
