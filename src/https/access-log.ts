// The access log: one line per request (and per WebSocket or other upgrade),
// as JSON or in the Apache/nginx "combined" format that log tools parse, to
// stdout beside the other logs or to a file that SIGUSR1 reopens (logrotate).
// Never a header that can carry a secret: no Authorization, no Cookie.
import { close, openSync, write } from 'node:fs';
import { type AccessEntry, type AccessLogFormat, accessLine } from './access-line.js';

export type { AccessEntry, AccessLogFormat } from './access-line.js';

export interface AccessLogOptions {
  readonly format: AccessLogFormat;
  /** A file path; undefined: stdout. */
  readonly file: string | undefined;
  /** Keep the query string in `path` (it may carry tokens: dropped by default). */
  readonly keepQuery: boolean;
}

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

  /** One line for a request whose answer has ended (or failed): its durations run until now. */
  write(entry: AccessEntry): void {
    const options = this.#options;
    const line = accessLine(options.format, options.keepQuery, entry, performance.now());
    // Flattened now, while its pieces are in the cache: a line is a tree of some 25 strings, and
    // a batch of 100 such trees, read at flush after milliseconds of other work, cost ~150 us of
    // cache misses to encode (1.5 us a line) against ~25 us for 100 flat lines. V8 flattens a
    // string that is indexed.
    line.charCodeAt(0);
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
