// A request body of unknown length (an HTTP/2 stream without content-length,
// an HTTP/1.1 chunked upload), held until it ends so that it reaches the
// backend with a Content-Length (held-body.ts):
// many backends, uWSGI's --http-socket among them, read no chunked request body
// (issue 9, item 22). nginx does the same (proxy_request_buffering). The first
// MiB stays in memory; past that the whole body goes to a file in the temp
// folder that is unlinked as soon as it is open, so that nothing is left behind
// by a crash, up to a limit (413 beyond it). Writes and reads go one at a time,
// with backpressure both ways: the client is paused while the file lags, and
// the file is read no faster than the backend takes it.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Held in memory up to this much; a longer body goes to a file. */
export const SPOOL_MEMORY_BYTES = 1024 * 1024;
/** Bytes waiting for the file before the client is paused. */
const WRITE_QUEUE_BYTES = 256 * 1024;
/** One read of the file toward the backend. */
const READ_BYTES = 64 * 1024;

/** What `add` tells the stream: read on, pause until `onWritable`, or refuse the body. */
export type SpoolAdd = 'more' | 'wait' | 'too-large';

export class BodySpool {
  readonly #limit: number;
  readonly #dir: string;
  readonly #onWritable: () => void;
  /** Bytes held in memory, or waiting to be written to the file. */
  #chunks: Buffer[] = [];
  #queued = 0;
  #size = 0;
  /** The file: -1 while the body fits in memory (or the file is being opened). */
  #fd = -1;
  #opening = false;
  #writing = false;
  #written = 0;
  #waiting = false;
  #closed = false;
  #error: NodeJS.ErrnoException | null = null;
  #flushed: ((error: NodeJS.ErrnoException | null) => void) | null = null;
  /** While the body is sent: where it goes, and where the next read starts. */
  #sink: ((chunk: Buffer) => boolean) | null = null;
  #sent: ((error: NodeJS.ErrnoException | null) => void) | null = null;
  #readAt = 0;
  #reading = false;

  /** `limit`: the largest body taken; `onWritable`: the client may send again after 'wait'. */
  constructor(limit: number, onWritable: () => void, dir: string = tmpdir()) {
    this.#limit = limit;
    this.#onWritable = onWritable;
    this.#dir = dir;
  }

  /** Where the file goes once the body is over the memory share. */
  get folder(): string {
    return this.#dir;
  }

  /** The body's length so far. */
  get size(): number {
    return this.#size;
  }

  add(chunk: Buffer): SpoolAdd {
    if (this.#closed || this.#error !== null) return 'more';
    this.#size += chunk.length;
    if (this.#size > this.#limit) return 'too-large';
    this.#chunks.push(chunk);
    this.#queued += chunk.length;
    if (this.#fd < 0 && !this.#opening) {
      if (this.#size <= SPOOL_MEMORY_BYTES) return 'more';
      this.#open();
    }
    this.#flush();
    if (this.#queued <= WRITE_QUEUE_BYTES) return 'more';
    this.#waiting = true;
    return 'wait';
  }

  /** The body has ended: `done` once every byte is where it can be read back from. */
  finish(done: (error: NodeJS.ErrnoException | null) => void): void {
    if (this.#error !== null || this.#settled()) {
      queueMicrotask(() => done(this.#error));
      return;
    }
    this.#flushed = done;
  }

  /**
   * Hands the whole body to `sink` in order (after `finish`), pausing while it answers false
   * until `resume`; `done` when every byte went, or with the read error.
   */
  send(sink: (chunk: Buffer) => boolean, done: (error: NodeJS.ErrnoException | null) => void): void {
    if (this.#fd < 0) {
      // All in memory: the caller's socket queues it (at most SPOOL_MEMORY_BYTES).
      for (const chunk of this.#chunks) sink(chunk);
      this.#chunks = [];
      this.close();
      done(null);
      return;
    }
    this.#sink = sink;
    this.#sent = done;
    this.#read();
  }

  /** The sink can take more after answering false. */
  resume(): void {
    if (this.#sink !== null && !this.#reading) this.#read();
  }

  /** Frees the memory and the file; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#sink = null;
    if (this.#fd >= 0) fs.close(this.#fd, ignore);
    this.#fd = -1;
  }

  #settled(): boolean {
    return this.#fd < 0 ? !this.#opening : !this.#writing && this.#chunks.length === 0;
  }

  #open(): void {
    this.#opening = true;
    const path = join(this.#dir, `harbor-body-${process.pid}-${randomBytes(8).toString('hex')}`);
    fs.open(path, 'wx+', 0o600, (error, fd) => {
      this.#opening = false;
      if (error !== null) {
        this.#fail(error);
        return;
      }
      // Unlinked at once: the open descriptor keeps the data; a crash leaves nothing behind.
      fs.unlink(path, ignore);
      if (this.#closed) {
        fs.close(fd, ignore);
        return;
      }
      this.#fd = fd;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#fd < 0 || this.#writing || this.#chunks.length === 0) return;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#writing = true;
    fs.writev(this.#fd, chunks, this.#written, (error, bytes) => {
      this.#writing = false;
      if (this.#closed) return;
      if (error !== null) {
        this.#fail(error);
        return;
      }
      this.#written += bytes;
      this.#queued -= bytes;
      const total = chunks.reduce((sum, c) => sum + c.length, 0);
      if (bytes < total) this.#chunks.unshift(Buffer.concat(chunks).subarray(bytes));
      if (this.#waiting && this.#queued <= WRITE_QUEUE_BYTES) {
        this.#waiting = false;
        this.#onWritable();
      }
      if (this.#chunks.length > 0) this.#flush();
      else this.#settle();
    });
  }

  #settle(): void {
    const flushed = this.#flushed;
    if (flushed === null || !this.#settled()) return;
    this.#flushed = null;
    flushed(this.#error);
  }

  #fail(error: NodeJS.ErrnoException): void {
    this.#error = error;
    this.close();
    // The client may be paused waiting for the file: let it go on (its bytes are dropped now).
    if (this.#waiting) {
      this.#waiting = false;
      this.#onWritable();
    }
    const flushed = this.#flushed;
    this.#flushed = null;
    flushed?.(error);
  }

  #read(): void {
    const fd = this.#fd;
    if (fd < 0 || this.#sink === null) return;
    this.#reading = true;
    const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, this.#written - this.#readAt));
    fs.read(fd, buf, 0, buf.length, this.#readAt, (error, bytes) => {
      this.#reading = false;
      const sink = this.#sink;
      const sent = this.#sent;
      if (this.#closed || sink === null || sent === null) return;
      if (error !== null || bytes === 0) {
        this.close();
        sent(error ?? Object.assign(new Error('the body file ended early'), { code: 'EIO' }));
        return;
      }
      this.#readAt += bytes;
      const more = sink(bytes === buf.length ? buf : buf.subarray(0, bytes));
      if (this.#readAt >= this.#written) {
        this.close();
        sent(null);
        return;
      }
      if (more) this.#read();
    });
  }
}

function ignore(): void {}
