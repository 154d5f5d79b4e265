// Where the access log's formatted lines go, on the log's own thread: appended to
// large buffers, each written in one go, one write at a time and in order, to a
// file reopened on request (logrotate) or to stdout. A disk that fails or stalls
// loses lines, said once, and never stops serving.
import { close, openSync, write } from 'node:fs';

/**
 * Lines are appended to a buffer of this size, which goes to the file in one write once less
 * than HAND_OFF_ROOM of it is free, or when the batch window ends. One write per buffer rather
 * than per batch: each write crosses to libuv's thread pool and back, about 30 us of CPU
 * (docs/benchmarks.md, "The access log's cost").
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

export interface AccessLogFileOptions {
  /** A file path; undefined: stdout, through `toStdout`. */
  readonly file: string | undefined;
  /** Writes `length` bytes of `buffer` to stdout, then calls `done` (the buffer is not reused). */
  readonly toStdout: (buffer: Buffer, length: number, done: () => void) => void;
  /** Lines are being lost: the file cannot be opened or written (its error code), or 'EQUEUE'. */
  readonly onLost: (code: string) => void;
  /** A buffer of lines was written whole. */
  readonly onWritten: () => void;
}

/** A buffer of lines for the writer, or the file descriptor to close once those before it are written. */
type Queued =
  | { readonly buffer: Buffer; readonly length: number; readonly fd: number | undefined }
  | { readonly close: number };

export class AccessLogFile {
  readonly #options: AccessLogFileOptions;
  /** The file's descriptor; undefined: stdout, or the file could not be opened (lines are lost). */
  #fd: number | undefined;
  /** The buffer lines are appended to, and how much of it they fill. */
  #filling: Buffer | undefined;
  #filled = 0;
  /** Buffers written one at a time, in order (writes to one file must not overtake each other). */
  readonly #queue: Queued[] = [];
  #writing = false;
  readonly #spare: Buffer[] = [];
  #drained: (() => void)[] = [];

  constructor(options: AccessLogFileOptions) {
    this.#options = options;
    if (options.file !== undefined) this.#fd = this.#open(options.file);
  }

  /**
   * The buffer to append up to `bytes` bytes of lines to, from `filled` on; then `appended()`
   * says where they end. A buffer of its own for lines longer than a buffer (huge paths or
   * headers).
   */
  reserve(bytes: number): Buffer {
    const filling = this.#filling;
    if (filling !== undefined && filling.length - this.#filled >= bytes) return filling;
    this.#handOff(); // full: these lines start the next buffer
    const buffer =
      bytes > BUFFER_BYTES
        ? Buffer.allocUnsafe(bytes)
        : (this.#spare.pop() ?? Buffer.allocUnsafe(BUFFER_BYTES));
    this.#filling = buffer;
    this.#filled = 0;
    return buffer;
  }

  /** Where the lines of the buffer being filled begin (those appended end there). */
  get filled(): number {
    return this.#filled;
  }

  /** Lines were appended to the reserved buffer up to `end`: it goes to the writer once nearly full. */
  appended(end: number): void {
    this.#filled = end;
    if (this.#filling!.length - end < HAND_OFF_ROOM) this.#handOff();
  }

  /** Hands what was added to the writer now; resolves once everything added so far is written. */
  flush(): Promise<void> {
    this.#handOff();
    return this.#idle();
  }

  /** Opens the file again (logrotate moved it away); lines added before go to the old one. */
  reopen(): void {
    const path = this.#options.file;
    if (path === undefined) return;
    this.#handOff();
    if (this.#fd !== undefined) this.#queue.push({ close: this.#fd });
    this.#fd = this.#open(path);
    this.#pump();
  }

  /** Writes what was added, then closes the file. */
  close(): Promise<void> {
    this.#handOff();
    if (this.#fd !== undefined) this.#queue.push({ close: this.#fd });
    this.#fd = undefined;
    this.#pump();
    return this.#idle();
  }

  #idle(): Promise<void> {
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
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

  #enqueue(buffer: Buffer, length: number): void {
    if (this.#queue.length >= MAX_QUEUED) {
      this.#options.onLost('EQUEUE');
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
      for (const resolve of this.#drained.splice(0)) resolve();
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
      this.#options.toStdout(buffer, length, () => {
        this.#options.onWritten();
        done();
      });
      return;
    }
    let offset = 0;
    const more = (error: NodeJS.ErrnoException | null, written: number) => {
      offset += error ? 0 : written;
      // A full disk or a removed folder must not take the proxy down: lines are lost, serving goes on.
      if (error) this.#options.onLost(error.code ?? 'EIO');
      else if (offset >= length) this.#options.onWritten();
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
      this.#options.onLost((error as NodeJS.ErrnoException).code ?? 'EIO');
      return undefined;
    }
  }
}
