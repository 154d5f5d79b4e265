// The request body of one HTTP/2 stream (http2-stream.ts): DATA frames relayed
// to the backend exchange as they come (with the request's Content-Length, or
// chunked when the length is unknown and holding is off), or, for a body of
// unknown length, held whole (body-spool.ts) and sent with its length once the
// stream has ended (held-body.ts). The stream's trailers ride along chunked.
import type * as http2 from 'node:http2';
import { BodySpool } from './body-spool.js';
import { CONTINUE_WAIT_MS, type ProxyCore } from './core.js';
import type { BackendExchange } from './exchange.js';
import { dropHeldBody, sendHeldBody } from './held-body.js';
import { lastChunk } from './http2-head.js';

/** What the body side asks of its stream. */
export interface H2UploadHost {
  /** The stream's backend exchange, opened now. */
  openExchange(): BackendExchange;
  /** The exchange open now, if any. */
  exchange(): BackendExchange | null;
  /** Whether the stream is over (answered, failed or gone): its body bytes are dropped. */
  finished(): boolean;
  /** The body cannot go on (413: too large to hold; 500: it could not be held): the proxy answers. */
  fail(status: number): void;
  /** Body bytes from the client, for the counters. */
  received(bytes: number): void;
  /** The proxy's own 100 Continue, to the client. */
  sayContinue(): void;
}

export class H2Upload {
  readonly #core: ProxyCore;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #host: H2UploadHost;
  /** The body goes to the backend chunked (unknown length, not held: --max-buffered-body off). */
  #chunked = false;
  /** A body of unknown length, held until it ends; null once sent or when not held. */
  #spool: BodySpool | null = null;
  /** The request head for the backend without its last CRLF, while the body is held. */
  #heldHead = '';
  #done: boolean;
  #trailers: http2.IncomingHttpHeaders | null = null;
  /** The proxy said 100 Continue itself: the backend's own, if it comes, is dropped. */
  ownContinue = false;
  #continueTimer: NodeJS.Timeout | null = null;
  #bodyStarted = false;

  /** `hasLength`: the request said its body's length (content-length). */
  constructor(core: ProxyCore, stream: http2.ServerHttp2Stream, host: H2UploadHost, hasLength: boolean) {
    this.#core = core;
    this.#stream = stream;
    this.#host = host;
    this.#done = stream.endAfterHeaders;
    if (!this.#done && !hasLength) {
      // A body of unknown length is held to be sent with its length, unless told not to.
      const limit = core.limits.maxBufferedBodyBytes;
      if (limit > 0) this.#spool = new BodySpool(limit, () => stream.resume());
      else this.#chunked = true;
    }
    // Trailers are an event, not buffered like data: kept from the start.
    stream.on('trailers', this.#onTrailers);
  }

  /** The body is held whole before the backend sees the request: its head then carries no Expect. */
  get holds(): boolean {
    return this.#spool !== null;
  }

  /**
   * The client asked Expect: 100-continue, as HTTP/1 clients do (http1-upload.ts): the backend
   * gets a moment to answer it, then the proxy says 100 Continue itself. For a held body nobody
   * else can say it: at once.
   */
  expectContinue(): void {
    if (this.#spool !== null) {
      this.ownContinue = true;
      this.#host.sayContinue();
    } else this.#continueTimer = setTimeout(this.#onContinueTimeout, CONTINUE_WAIT_MS);
  }

  /** The backend has answered (its 100 or its response), or the body has begun: no Continue from the proxy. */
  stopContinue(): void {
    if (this.#continueTimer !== null) {
      clearTimeout(this.#continueTimer);
      this.#continueTimer = null;
    }
  }

  #onContinueTimeout = (): void => {
    this.#continueTimer = null;
    if (this.#bodyStarted || this.#host.finished()) return;
    this.ownContinue = true;
    this.#host.sayContinue();
  };

  /** The head (HTTP/1.1 text) goes to the backend now, or once a held body has ended. */
  start(head: string): void {
    const stream = this.#stream;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    if (this.#spool !== null) {
      this.#heldHead = head.slice(0, -2);
      return;
    }
    const exchange = this.#host.openExchange();
    if (this.#done) exchange.endRequest();
    exchange.writeHead(this.#chunked ? `${head.slice(0, -2)}Transfer-Encoding: chunked\r\n\r\n` : head);
  }

  /** The backend took what was written: the body may flow again. */
  drained(): void {
    if (this.#spool !== null) this.#spool.resume();
    else this.#stream.resume();
  }

  /** The stream is over: a body being held is thrown away. */
  close(): void {
    this.stopContinue();
    this.#spool?.close();
  }

  /** The stream has closed: its object no longer reaches this one (http2-stream.ts, #detach). */
  detach(): void {
    const stream = this.#stream;
    stream.off('trailers', this.#onTrailers);
    stream.off('data', this.#onData);
    stream.off('end', this.#onEnd);
    this.stopContinue();
  }

  #onData = (chunk: Buffer): void => {
    if (this.#host.finished()) return;
    if (!this.#bodyStarted) {
      this.#bodyStarted = true;
      this.stopContinue();
    }
    this.#host.received(chunk.length);
    const spool = this.#spool;
    if (spool !== null) {
      const answer = spool.add(chunk);
      if (answer === 'wait') this.#stream.pause();
      else if (answer === 'too-large') this.#refuse();
      return;
    }
    const exchange = this.#host.exchange();
    if (exchange === null) return;
    const flowing = this.#chunked ? exchange.writeChunk(chunk) : exchange.writeBody(chunk);
    if (!flowing) this.#stream.pause();
  };

  #onTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    // Trailers ride only in a chunked body: a held body is then sent chunked (#onSpooled).
    this.#trailers = trailers;
  };

  #onEnd = (): void => {
    this.#done = true;
    if (this.#spool !== null) {
      this.#spool.finish(this.#onSpooled);
      return;
    }
    const exchange = this.#host.exchange();
    if (exchange === null) return;
    exchange.endRequest();
    if (this.#chunked) exchange.writeFraming(lastChunk(this.#trailers));
  };

  /**
   * The held body is all in memory or in its file: the backend gets the head with the body's
   * Content-Length (chunked only to carry the stream's trailers), then the body.
   */
  #onSpooled = (error: NodeJS.ErrnoException | null): void => {
    const spool = this.#spool;
    if (this.#host.finished() || spool === null) return;
    if (error !== null) {
      this.#spoolFailed(spool, error);
      return;
    }
    const trailers = this.#trailers;
    sendHeldBody(
      this.#host.openExchange(),
      this.#heldHead,
      spool,
      trailers === null ? null : lastChunk(trailers),
      (readError) => {
        if (readError !== null) this.#spoolFailed(spool, readError);
        else this.#spool = null;
      },
    );
  };

  /** The held body could not be written or read back (a full disk): 500, and the operator told where. */
  #spoolFailed(spool: BodySpool, error: NodeJS.ErrnoException): void {
    this.#spool = null;
    dropHeldBody(this.#core, spool, error);
    this.#host.fail(500);
  }

  /** A body of unknown length over --max-buffered-body: 413, and the client asked to stop sending. */
  #refuse(): void {
    this.#spool?.close();
    this.#spool = null;
    this.#host.fail(413);
    // The answer is whole: the client is asked to stop sending the rest (RFC 9113 section 8.1).
    const stream = this.#stream;
    if (stream.writableEnded) stream.once('finish', () => setImmediate(() => stream.close(NGHTTP2_NO_ERROR)));
  }
}

/** RFC 9113's NO_ERROR (node:http2's constant, without loading the module for it). */
const NGHTTP2_NO_ERROR = 0;
