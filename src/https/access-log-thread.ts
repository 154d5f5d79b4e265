// The access log's own thread: it takes each request's fields from the shared ring
// (access-ring.ts), formats the lines in batches and writes them (access-log-file.ts),
// so that formatting and writing cost the thread that serves nothing. Started by
// AccessLog (access-log.ts), one per process.
import { parentPort, workerData } from 'node:worker_threads';
import { AccessLineFormatter, type AccessLogFormat } from './access-line.js';
import { AccessLogFile } from './access-log-file.js';
import { type AccessRingMemory, AccessRingReader, REOPEN_HERE } from './access-ring.js';

/** What the serving thread gives the log's thread when it starts it. */
export interface AccessLogThreadData {
  readonly ring: AccessRingMemory;
  /** An Int32 word: 1 while lines are being lost and that was told (shared with the serving thread). */
  readonly losing: SharedArrayBuffer;
  readonly format: AccessLogFormat;
  readonly keepQuery: boolean;
  readonly file: string | undefined;
  /**
   * Date.now() - performance.now() on the serving thread when it started this one: its records'
   * times are its performance.now(). (Two threads' performance.timeOrigin differ by a millisecond
   * or two: not a common clock.)
   */
  readonly wallOffset: number;
}

/** Asked of the log's thread. */
export type AccessLogRequest = { readonly kind: 'flush'; readonly id: number } | { readonly kind: 'close' };

/** Told by the log's thread. */
export type AccessLogNotice =
  | { readonly kind: 'flushed'; readonly id: number }
  | { readonly kind: 'lost'; readonly code: string }
  | { readonly kind: 'stdout'; readonly bytes: Uint8Array };

/** Lines gather for this long after the first of a batch before they are written. */
const FLUSH_MS = 100;

if (parentPort !== null && (workerData as { ring?: unknown } | null)?.ring !== undefined) {
  const port = parentPort;
  // A failure here ends the thread with an 'error' the serving thread reports (AccessLog).
  void serve(
    workerData as AccessLogThreadData,
    (notice, transfer) => port.postMessage(notice, transfer),
    (listener) => port.on('message', listener),
  ).then(() => port.close());
}

/** Formats and writes lines until asked to close. */
async function serve(
  data: AccessLogThreadData,
  tell: (notice: AccessLogNotice, transfer?: ArrayBuffer[]) => void,
  listen: (listener: (request: AccessLogRequest) => void) => void,
): Promise<void> {
  const reader = new AccessRingReader(data.ring);
  const losing = new Int32Array(data.losing);
  const file = new AccessLogFile({
    file: data.file,
    toStdout: (buffer, length, done) => {
      // Written by the serving thread, in order with its other logs (a pipe interleaves writes of
      // more than 4 KiB from two threads).
      // A buffer of its own memory goes as it is (moved, not copied), a view of shared memory as a copy.
      const own = buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.length;
      const bytes = own
        ? new Uint8Array(buffer.buffer, 0, length)
        : Uint8Array.prototype.slice.call(buffer, 0, length);
      tell({ kind: 'stdout', bytes }, [bytes.buffer as ArrayBuffer]);
      done();
    },
    onLost: (code) => {
      if (Atomics.compareExchange(losing, 0, 0, 1) === 0) tell({ kind: 'lost', code });
    },
    onWritten: () => Atomics.store(losing, 0, 0),
  });
  const requests: AccessLogRequest[] = [];
  listen((request) => {
    requests.push(request);
    reader.poke();
  });
  // The wall clock against this thread's monotonic one: it moves when the wall clock is set.
  const wallDrift = () => Date.now() - performance.now();
  const drift0 = wallDrift();
  const formatter = new AccessLineFormatter(data.format, data.keepQuery);
  const format = () => {
    // From the serving thread's performance.now() to wall-clock milliseconds: one reading per drain.
    const wallOffset = data.wallOffset + wallDrift() - drift0;
    for (let line = reader.next(); line !== undefined; line = reader.next()) {
      // logrotate moved the file: the lines before go to the old one, those after to the new.
      if (line.status === REOPEN_HERE) {
        file.reopen();
        continue;
      }
      const out = file.reserve(formatter.bound(line));
      file.appended(formatter.write(line, wallOffset, out, file.filled));
    }
  };
  /** performance.now() when the batch gathering ends; 0: none is. */
  let batchEnds = 0;
  for (;;) {
    if (reader.waiting) {
      format();
      if (batchEnds === 0) batchEnds = performance.now() + FLUSH_MS;
    }
    const request = requests.shift();
    if (request?.kind === 'flush') {
      batchEnds = 0;
      await file.flush();
      tell({ kind: 'flushed', id: request.id });
    } else if (request?.kind === 'close') {
      format();
      await file.close();
      return;
    }
    if (request !== undefined) continue;
    if (batchEnds === 0) await reader.waitForRecords();
    else {
      const left = batchEnds - performance.now();
      if (left > 0) await reader.pause(left);
      else {
        batchEnds = 0;
        void file.flush(); // written in the background while the next batch gathers
      }
    }
  }
}
