// The access log: one line per request (and per WebSocket or other upgrade),
// as JSON or in the Apache/nginx "combined" format that log tools parse, to
// stdout beside the other logs or to a file that SIGUSR1 reopens (logrotate).
// Never a header that can carry a secret: no Authorization, no Cookie.
//
// The thread that serves only copies each request's fields into a shared ring
// (access-ring.ts); a thread of the log's own formats and writes the lines
// (access-log-thread.ts), so the log costs the serving thread about as little
// as a line can (docs/operations.md, "Access log").
import { Worker } from 'node:worker_threads';
import type { AccessEntry, AccessLogFormat } from './access-line.js';
import type { AccessLogNotice, AccessLogRequest, AccessLogThreadData } from './access-log-thread.js';
import { AccessRingWriter, createAccessRing } from './access-ring.js';

export type { AccessEntry, AccessLogFormat } from './access-line.js';

export interface AccessLogOptions {
  readonly format: AccessLogFormat;
  /** A file path; undefined: stdout. */
  readonly file: string | undefined;
  /** Keep the query string in `path` (it may carry tokens: dropped by default). */
  readonly keepQuery: boolean;
  /**
   * Told once when lines begin to be lost (the file cannot be opened or written: a full disk, a
   * removed folder; or too many lines wait behind a stalled disk), and again only after lines
   * were written since.
   */
  readonly onLoss?: (loss: AccessLogLoss) => void;
}

/** Why access-log lines are being lost. */
export interface AccessLogLoss {
  readonly file: string | undefined;
  /**
   * The system's error code (ENOSPC, ENOENT, EACCES...); 'EQUEUE' behind a stalled disk;
   * 'ETHREAD' when the log's thread failed (no line is written from then on).
   */
  readonly code: string;
}

/** The log's thread: its module beside this one (.ts when the tests run the sources). */
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const THREAD_URL = new URL(
  FROM_SOURCES ? './access-log-thread.ts' : './access-log-thread.js',
  import.meta.url,
);
/**
 * The thread's Node options: none, rather than the process's own (a worker refuses some, such as
 * `--input-type`); the sources need the process's module hooks to load TypeScript.
 */
const THREAD_EXEC_ARGV = FROM_SOURCES ? undefined : [];

export class AccessLog {
  readonly #options: AccessLogOptions;
  /** undefined once closed (or the log's thread failed): lines are no longer taken. */
  #ring: AccessRingWriter | undefined;
  readonly #thread: Worker;
  /** 1 while lines are being lost and that was told; shared with the log's thread. */
  readonly #losing = new Int32Array(new SharedArrayBuffer(4));
  readonly #flushes = new Map<number, () => void>();
  #flushId = 0;
  readonly #exited: Promise<void>;

  constructor(options: AccessLogOptions) {
    this.#options = options;
    const ring = createAccessRing();
    this.#ring = new AccessRingWriter(ring, options.format === 'combined');
    const data: AccessLogThreadData = {
      ring,
      losing: this.#losing.buffer as SharedArrayBuffer,
      format: options.format,
      keepQuery: options.keepQuery,
      file: options.file,
      wallOffset: Date.now() - performance.now(),
    };
    this.#thread = new Worker(THREAD_URL, { workerData: data, execArgv: THREAD_EXEC_ARGV });
    // The process's life is the servers' to decide; close() holds it until the lines are written.
    this.#thread.unref();
    this.#thread.on('message', (notice: AccessLogNotice) => this.#told(notice));
    this.#thread.on('error', (error) => {
      this.#ring = undefined;
      this.#lost('ETHREAD');
      process.emitWarning(`the access log's thread failed: ${error.message}`);
    });
    this.#exited = new Promise((resolve) =>
      this.#thread.once('exit', () => {
        // Nothing is written from here on: whoever waits for lines to be written waits no more.
        this.#ring = undefined;
        for (const written of this.#flushes.values()) written();
        this.#flushes.clear();
        resolve();
      }),
    );
  }

  /** One line for a request whose answer has ended (or failed) at `endedAt` (a performance.now()). */
  write(entry: AccessEntry, endedAt: number): void {
    const ring = this.#ring;
    if (ring !== undefined && !ring.write(entry, endedAt)) this.#lost('EQUEUE');
  }

  /** Resolves once every line written before it is in the file (or on stdout). */
  flush(): Promise<void> {
    if (this.#ring === undefined) return Promise.resolve();
    const id = ++this.#flushId;
    this.#thread.ref();
    return new Promise((resolve) => {
      this.#flushes.set(id, resolve);
      this.#ask({ kind: 'flush', id });
    });
  }

  /**
   * Opens the file again (logrotate moved it away: SIGUSR1): the lines written before go to the
   * old one, those after to the new, in the order the log's thread reads them.
   */
  reopen(): void {
    this.#ring?.reopenHere();
  }

  /** Writes what is waiting, then closes the file and ends the log's thread. */
  close(): Promise<void> {
    if (this.#ring !== undefined) {
      this.#ring = undefined;
      this.#thread.ref();
      this.#ask({ kind: 'close' });
    }
    return this.#exited;
  }

  #ask(request: AccessLogRequest): void {
    this.#thread.postMessage(request);
  }

  #told(notice: AccessLogNotice): void {
    if (notice.kind === 'stdout') process.stdout.write(notice.bytes);
    else if (notice.kind === 'lost') this.#options.onLoss?.({ file: this.#options.file, code: notice.code });
    else {
      this.#flushes.get(notice.id)?.();
      this.#flushes.delete(notice.id);
      if (this.#flushes.size === 0 && this.#ring !== undefined) this.#thread.unref();
    }
  }

  #lost(code: string): void {
    if (Atomics.compareExchange(this.#losing, 0, 0, 1) === 0) {
      this.#options.onLoss?.({ file: this.#options.file, code });
    }
  }
}
