// The access log: one line per request (and per WebSocket or other upgrade),
// as JSON or in the Apache/nginx "combined" format that log tools parse, to
// stdout beside the other logs or to a file that SIGUSR1 reopens (logrotate).
// Never a header that can carry a secret: no Authorization, no Cookie.
import { close, openSync, write } from 'node:fs';
// The module's own binding: the global `performance` is a getter, called on every use.
import { performance } from 'node:perf_hooks';
import { type AccessEntry, type AccessLogFormat, accessLine, CapturedLine } from './access-line.js';

export type { AccessEntry, AccessLogFormat } from './access-line.js';

export interface AccessLogOptions {
  readonly format: AccessLogFormat;
  /** A file path; undefined: stdout. */
  readonly file: string | undefined;
  /** Keep the query string in `path` (it may carry tokens: dropped by default). */
  readonly keepQuery: boolean;
  /**
   * Told once when lines begin to be lost (the file cannot be opened or written: a full disk, a
   * removed folder; or too many batches wait behind a stalled disk), and again only after lines
   * were written since.
   */
  readonly onLoss?: (loss: AccessLogLoss) => void;
}

/** Why access-log lines are being lost. */
export interface AccessLogLoss {
  readonly file: string | undefined;
  /** The system's error code (ENOSPC, ENOENT, EACCES...), or 'EQUEUE' behind a stalled disk. */
  readonly code: string;
}

/** Lines are formatted in batches: when this many are waiting, or FLUSH_MS after the first. */
const BATCH_LINES = 128;
const FLUSH_MS = 100;
/**
 * Formatted batches are appended to a buffer of this size, which goes to the file in one write
 * once less than HAND_OFF_ROOM of it is free, or FLUSH_MS after the first line waiting. One
 * write per buffer rather than per batch: each write crosses to libuv's thread pool and back,
 * about 30 us of CPU (docs/operations.md, "Access log").
 */
const BUFFER_BYTES = 256 * 1024;
const HAND_OFF_ROOM = BUFFER_BYTES / 4;
/**
 * Buffers waiting for the disk at most (48 MiB): past it, new ones are dropped (lines lost,
 * serving goes on) rather than memory growing without end behind a stalled disk.
 */
const MAX_QUEUED = 192;
/** Written buffers kept for the next ones: fresh memory costs a page fault per 4 KiB. */
const SPARE_BUFFERS = 2;

/** A buffer of lines for the writer, or the file descriptor to close once those before it are written. */
type Queued =
  | { readonly buffer: Buffer; readonly length: number; readonly fd: number | undefined }
  | { readonly close: number };

export class AccessLog {
  readonly #options: AccessLogOptions;
  /** The file's descriptor; undefined: stdout, or the file could not be opened (lines are lost). */
  #fd: number | undefined;
  /** Requests ended and not yet formatted; a new array per batch (see CapturedLine). */
  #batch: CapturedLine[] = [];
  /** The buffer formatted batches are appended to, and how much of it they fill. */
  #filling: Buffer | undefined;
  #filled = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Buffers written one at a time, in order (writes to one file must not overtake each other). */
  readonly #queue: Queued[] = [];
  #writing = false;
  readonly #spare: Buffer[] = [];
  #drained: (() => void) | undefined;
  /** Lines are being lost (the loss was told); cleared by the next buffer written. */
  #losing = false;

  constructor(options: AccessLogOptions) {
    this.#options = options;
    if (options.file !== undefined) this.#fd = this.#open(options.file);
  }

  /** One line for a request whose answer has ended (or failed) at `endedAt` (a performance.now()). */
  write(entry: AccessEntry, endedAt: number): void {
    const batch = this.#batch;
    batch.push(new CapturedLine(entry, endedAt, this.#options.format === 'combined'));
    if (batch.length >= BATCH_LINES) this.#format();
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.#timer.unref();
    }
  }

  /** Formats what is waiting and hands it all to the writer now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#format();
    this.#handOff();
  }

  /** Formats the waiting batch into the buffer being filled. */
  #format(): void {
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const { format, keepQuery } = this.#options;
    // Wall-clock time from each line's performance.now(): one clock reading per batch.
    const wallOffset = Date.now() - performance.now();
    let text = '';
    for (const line of batch) text += accessLine(format, keepQuery, line, wallOffset);
    if (this.#filling !== undefined) {
      if (this.#append(text)) return;
      this.#handOff(); // full: this batch starts the next buffer
    }
    if (text.length * 3 > BUFFER_BYTES) {
      // Longer lines than usual (huge paths or headers): a buffer of their own.
      const bytes = Buffer.from(text, 'utf8');
      this.#enqueue(bytes, bytes.length);
      return;
    }
    this.#filling = this.#spare.pop() ?? Buffer.allocUnsafe(BUFFER_BYTES);
    this.#filled = 0;
    this.#append(text);
  }

  /** Appends `text` to the buffer being filled, handing it off once nearly full; false when it does not fit. */
  #append(text: string): boolean {
    const buffer = this.#filling!;
    const room = buffer.length - this.#filled;
    // UTF-8 takes at least one byte per character.
    if (text.length > room) return false;
    const written = buffer.write(text, this.#filled, 'utf8');
    // A write cut short leaves fewer than 4 bytes free (no character takes more).
    if (written >= room - 3 && written !== Buffer.byteLength(text, 'utf8')) return false;
    this.#filled += written;
    if (room - written < HAND_OFF_ROOM) this.#handOff();
    return true;
  }

  /** The buffer being filled, to the writer. */
  #handOff(): void {
    const buffer = this.#filling;
    if (buffer === undefined) return;
    this.#filling = undefined;
    if (this.#filled === 0) this.#recycle(buffer);
    else this.#enqueue(buffer, this.#filled);
    this.#filled = 0;
  }

  /** Opens the file again (logrotate moved it away: SIGUSR1); lines before go to the old one. */
  reopen(): void {
    const path = this.#options.file;
    if (path === undefined) return;
    this.flush();
    if (this.#fd !== undefined) this.#queue.push({ close: this.#fd });
    this.#fd = this.#open(path);
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
      this.#lost('EQUEUE');
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
      if (error) this.#lost(error.code ?? 'EIO');
      else if (offset >= length) this.#losing = false;
      if (error || offset >= length) {
        this.#recycle(buffer);
        done();
      } else write(fd, buffer, offset, length - offset, null, more);
    };
    write(fd, buffer, 0, length, null, more);
  }

  #recycle(buffer: Buffer): void {
    if (buffer.length === BUFFER_BYTES && this.#spare.length < SPARE_BUFFERS) this.#spare.push(buffer);
  }

  /** The log file opened for appending; undefined when it cannot be (its lines are lost, serving goes on). */
  #open(path: string): number | undefined {
    try {
      return openSync(path, 'a', 0o640);
    } catch (error) {
      this.#lost((error as NodeJS.ErrnoException).code ?? 'EIO');
      return undefined;
    }
  }

  #lost(code: string): void {
    if (this.#losing) return;
    this.#losing = true;
    this.#options.onLoss?.({ file: this.#options.file, code });
  }
}
