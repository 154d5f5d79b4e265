// One request forwarded to the backend and its response read back: the one
// backend exchange of the proxy, used by HTTP/1 and HTTP/2 alike. It owns the
// pooled connection, the response reader, backpressure toward the client, the
// retry-once rule for a stale keep-alive connection, the 502/503/504 mapping,
// and the release or close of the connection at the end. The client side (an
// HTTP/1 connection, an HTTP/2 stream) only frames what it is handed.
import { countResponse } from '../stats/index.js';
import type { ProxyCore } from './core.js';
import type { Head } from './head.js';
import type { BackendConn, BackendOwner } from './pool.js';
import type { ResponseReader, ResponseSink } from './response-reader.js';

/** Bytes queued on one side before the other is paused (a socket's own mark, 16 KiB, is less than one read). */
export const RELAY_QUEUE_BYTES = 256 * 1024;

/** What the client side does with the exchange's events. */
export interface ExchangeClient {
  /** A 1xx head other than 101. */
  onInformational(head: Head, raw: Buffer, start: number, end: number): void;
  /** The final head (`raw[start, end)` as received); the body follows. */
  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void;
  /** Body bytes (decoded when the reader decodes). False: the client is backed up; the backend is paused until `clientDrained`. */
  onResponseBody(buf: Buffer, start: number, end: number): boolean;
  /** The response is complete; the backend connection is already back in the pool or closed. */
  onExchangeEnd(): void;
  /** 101: the backend connection is the client's from now on (a tunnel). */
  onSwitchingProtocols(
    head: Head,
    raw: Buffer,
    start: number,
    end: number,
    rest: Buffer,
    conn: BackendConn,
  ): void;
  /**
   * The exchange failed and is over. `status` (502, 503 or 504) is what the client is owed
   * when it has sent nothing of the response yet; otherwise it can only cut. `detail`: what
   * failed, as the pool was told (core.ts's failureReason makes the log's reason of both).
   */
  onExchangeFailed(status: number, detail: string): void;
  /** The backend took the request body queued so far. */
  onRequestDrained(): void;
  /** One read from the backend was handled (a head held back for body bytes in the same read goes out now). */
  afterBackendRead(): void;
  /** The backend waited on this client for the whole idle timeout: cut it (a slow reader must not hold a worker). */
  onClientStalled(): void;
}

/**
 * What a client side asks of the exchange carrying its request: a BackendExchange, or for an
 * HTTP/1.1 gRPC-Web call to an h2c backend an H2cBridge (http1-h2c.ts).
 */
export interface Exchange {
  /** True until the exchange has ended or failed. */
  readonly open: boolean;
  writeHead(text: string): void;
  writeBody(data: Buffer): boolean;
  writeFraming(text: string): boolean;
  writeChunk(data: Buffer): boolean;
  corked(work: () => void): void;
  endRequest(): void;
  clientDrained(): void;
  abort(): void;
}

export class BackendExchange implements Exchange, BackendOwner, ResponseSink {
  readonly #core: ProxyCore;
  readonly #client: ExchangeClient;
  readonly #reader: ResponseReader;
  #backend: BackendConn | null;
  /** The request head as sent, for the one retry; '' until written. */
  #sentHead = '';
  #bodyBytesSent = 0;
  #retried = false;
  /** The backend sent a byte of this exchange: a failure now is not retried. */
  #spoke = false;
  #requestDone = false;
  #reusable = true;
  #status = 0;
  #paused = false;
  #stallTimer: NodeJS.Timeout | undefined;
  #over = false;

  /**
   * Takes a backend connection at once. `sendsBody`: the request has a body; `noBody`: a HEAD
   * request (no response body); `decode`: strip chunked framing.
   */
  constructor(
    core: ProxyCore,
    client: ExchangeClient,
    reader: ResponseReader,
    sendsBody: boolean,
    noBody: boolean,
    decode: boolean,
  ) {
    this.#core = core;
    this.#client = client;
    this.#reader = reader;
    reader.reset(noBody, decode);
    this.#backend = core.pool.acquire(this, sendsBody);
  }

  /** True while the exchange holds a backend connection and has not ended. */
  get open(): boolean {
    return !this.#over;
  }

  get reader(): ResponseReader {
    return this.#reader;
  }

  // ---- request side ------------------------------------------------------

  /** Writes the request head (kept for a retry). */
  writeHead(text: string): void {
    this.#sentHead = text;
    this.#backend?.socket.write(text, 'latin1');
  }

  /** Request body bytes; false when the backend's queue is full (`onRequestDrained` follows). */
  writeBody(data: Buffer): boolean {
    const backend = this.#backend;
    if (backend === null) return true;
    this.#bodyBytesSent += data.length;
    return backend.socket.write(data) || backend.socket.writableLength <= RELAY_QUEUE_BYTES;
  }

  /** Request body text that is framing (a chunk header): counted as body, never retried after. */
  writeFraming(text: string): boolean {
    const backend = this.#backend;
    if (backend === null) return true;
    this.#bodyBytesSent += text.length;
    return backend.socket.write(text, 'latin1') || backend.socket.writableLength <= RELAY_QUEUE_BYTES;
  }

  /** `data` as one chunk of a chunked body, in one write; false when the backend's queue is full. */
  writeChunk(data: Buffer): boolean {
    let flowing = true;
    this.corked(() => {
      this.writeFraming(`${data.length.toString(16)}\r\n`);
      this.writeBody(data);
      flowing = this.writeFraming('\r\n');
    });
    return flowing;
  }

  /** Several writes to the backend go out together. */
  corked(work: () => void): void {
    const socket = this.#backend?.socket;
    socket?.cork();
    work();
    socket?.uncork();
  }

  /** The request body is complete: the connection may go back to the pool once the response ends. */
  endRequest(): void {
    this.#requestDone = true;
  }

  /** The client may read again after `onResponseBody` answered false. */
  clientDrained(): void {
    if (!this.#paused) return;
    this.#paused = false;
    clearTimeout(this.#stallTimer);
    this.#backend?.socket.resume();
  }

  /** The client went away or gave up: the connection is in an unknown state and is closed. */
  abort(): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#stallTimer);
    this.#drop();
  }

  // ---- backend events ----------------------------------------------------

  onBackendConnect(_conn: BackendConn): void {}

  onBackendData(_conn: BackendConn, chunk: Buffer): void {
    this.#spoke = true;
    this.#reader.feed(chunk, this);
    if (!this.#over) this.#client.afterBackendRead();
  }

  onBackendDrain(_conn: BackendConn): void {
    if (!this.#over) this.#client.onRequestDrained();
  }

  onBackendTimeout(_conn: BackendConn): void {
    // Paused because the client reads slowly: the stall timer judges that, not the backend's.
    if (this.#paused || this.#over) return;
    this.#core.pool.failure('timeout', null, 504);
    this.#fail(504, 'timeout');
  }

  onBackendGone(conn: BackendConn, error: Error | null): void {
    this.#backend = null;
    if (this.#over) return;
    if (this.#reader.closed()) {
      // A body that runs until the backend closes has ended.
      this.#reusable = false;
      this.#end();
      return;
    }
    if (this.#reader.gotHead) {
      this.#core.pool.failure('closed mid-response', error, 0);
      this.#fail(502, 'closed mid-response');
      return;
    }
    if (!conn.connected) {
      const status = this.#core.pool.answered ? 502 : 503;
      this.#core.pool.failure('connect', error, status);
      this.#fail(status, 'connect');
      return;
    }
    if (conn.reused && !this.#spoke && this.#bodyBytesSent === 0 && !this.#retried) {
      // A kept-alive connection the backend closed as it was reused: once more, on a fresh one.
      this.#retried = true;
      this.#backend = this.#core.pool.dial(this);
      if (this.#sentHead !== '') this.#backend.socket.write(this.#sentHead, 'latin1');
      return;
    }
    this.#core.pool.failure('closed before answering', error, 502);
    this.#fail(502, 'closed before answering');
  }

  // ---- response (from the reader) ----------------------------------------

  onInformational(head: Head, raw: Buffer, start: number, end: number): void {
    if (!this.#over) this.#client.onInformational(head, raw, start, end);
  }

  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void {
    if (this.#over) return;
    this.#status = head.status;
    if (head.minor === 0 ? !head.connectionHas('keep-alive') : head.connectionHas('close')) {
      this.#reusable = false;
    }
    this.#client.onResponseHead(head, raw, start, end);
  }

  onResponseBody(buf: Buffer, start: number, end: number): void {
    if (this.#over || this.#client.onResponseBody(buf, start, end) || this.#paused) return;
    const backend = this.#backend;
    if (backend === null) return;
    // The client reads slowly: stop reading the backend, and give the client the idle timeout
    // to take data before it is cut (a client that stops reading must not hold a backend worker).
    this.#paused = true;
    backend.socket.pause();
    this.#stallTimer = setTimeout(this.#onStalled, this.#core.limits.idleTimeoutMs);
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    this.onResponseBody(buf, start, end);
  }

  onResponseEnd(rest: number): void {
    if (rest > 0) this.#reusable = false;
    this.#end();
  }

  onSwitchingProtocols(head: Head, raw: Buffer, start: number, end: number, rest: Buffer): void {
    const backend = this.#backend;
    if (backend === null || this.#over) return;
    this.#over = true;
    this.#status = 101;
    this.#backend = null;
    countResponse(this.#core.stats, 101);
    this.#client.onSwitchingProtocols(head, raw, start, end, rest, backend);
  }

  onResponseError(reason: string): void {
    this.#core.pool.failure(`bad response: ${reason}`, null, 502);
    this.#fail(502, `bad response: ${reason}`);
  }

  #onStalled = (): void => {
    if (this.#paused && !this.#over) this.#client.onClientStalled();
  };

  #end(): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#stallTimer);
    countResponse(this.#core.stats, this.#status);
    const backend = this.#backend;
    this.#backend = null;
    if (backend !== null) {
      if (this.#paused) backend.socket.resume();
      if (this.#reusable && this.#requestDone && !this.#reader.untilClose) this.#core.pool.release(backend);
      else {
        backend.owner = null;
        backend.socket.destroy();
      }
    }
    this.#client.onExchangeEnd();
  }

  #fail(status: number, detail: string): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#stallTimer);
    this.#drop();
    this.#client.onExchangeFailed(status, detail);
  }

  #drop(): void {
    const backend = this.#backend;
    if (backend !== null) {
      this.#backend = null;
      backend.owner = null;
      backend.socket.destroy();
    }
  }
}
