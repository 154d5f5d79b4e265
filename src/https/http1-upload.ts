// The request body of an HTTP/1 client connection (http1.ts): relayed to the
// backend exchange as it comes, with backpressure both ways, or, for a chunked
// body, held whole in a spool (body-spool.ts) and sent with its length once it
// has ended (held-body.ts). Also the proxy's own 100 Continue when the backend
// does not say it in time. One per connection, taking one request at a time.
import { BodySpool, type SpoolAdd } from './body-spool.js';
import { ChunkedParser } from './chunked.js';
import { CONTINUE_WAIT_MS, type ProxyCore } from './core.js';
import type { Exchange } from './exchange.js';
import { dropHeldBody, sendHeldBody } from './held-body.js';
import { BODY_CHUNKED, BODY_LENGTH, type Request } from './http1-request.js';

/** What the body side asks of its connection. */
export interface UploadHost {
  /** Stops reading from the client (the backend or the spool is backed up). */
  pauseClient(): void;
  /** Reads from the client again, if it is still sending this body. */
  resumeBody(): void;
  /** The body has ended; `rest` (bytes after it: the next request's) waits for the response. */
  bodyEnded(rest: Buffer | null): void;
  /**
   * The request cannot go on: its exchange (if any) is dropped, and the client gets `status`,
   * or a cut when a byte of a response went out already.
   */
  fail(status: number, reason?: string): void;
  /** The proxy's own 100 Continue, to the client. */
  sayContinue(): void;
  /** Whether `request` is still the connection's current one (the connection is open). */
  current(request: Request): boolean;
  /** The backend exchange for `request`, its body being whole. */
  openExchange(request: Request): Exchange;
}

export class Http1Upload {
  readonly #core: ProxyCore;
  readonly #host: UploadHost;
  readonly #chunked: ChunkedParser;
  /** The request whose body is being read; null between bodies. */
  #request: Request | null = null;
  #continueTimer: NodeJS.Timeout | null = null;

  constructor(core: ProxyCore, host: UploadHost) {
    this.#core = core;
    this.#host = host;
    this.#chunked = new ChunkedParser(core.limits.maxHeaderBytes);
  }

  /**
   * A request with a body begins. A chunked body is held whole and sent with its length (many
   * backends, uWSGI's --http-socket among them, read none), unless --max-buffered-body is off.
   */
  begin(request: Request): void {
    this.#request = request;
    if (request.bodyMode !== BODY_CHUNKED) return;
    const limit = this.#core.limits.maxBufferedBodyBytes;
    if (limit > 0 && !request.upgrade) request.held = new BodySpool(limit, this.#onHeldWritable);
    this.#chunked.reset(request.held !== null);
  }

  /**
   * Many framework servers (uWSGI among them) never answer Expect: the client would wait about
   * a second before sending its body. The backend gets a moment to answer; then the proxy says
   * 100 Continue itself. For a held body nobody else can say it: at once.
   */
  expectContinue(request: Request): void {
    if (request.held !== null) {
      request.ownContinue = true;
      this.#host.sayContinue();
    } else this.#continueTimer = setTimeout(this.#onContinueTimeout, CONTINUE_WAIT_MS);
  }

  /** Body bytes from `start`; answers false when the client must wait (it is paused). */
  feed(exchange: Exchange | null, buf: Buffer, start: number): boolean {
    const request = this.#request;
    if (request === null) return false;
    return request.held !== null
      ? this.#hold(request, request.held, buf, start)
      : this.#relay(request, exchange, buf, start);
  }

  /** The backend has answered (its 100 or its response), or the request is over: no Continue from the proxy. */
  stopContinue(): void {
    if (this.#continueTimer !== null) {
      clearTimeout(this.#continueTimer);
      this.#continueTimer = null;
    }
  }

  /** The connection is closing (its request's held body, if any, is closed by it). */
  close(): void {
    this.stopContinue();
    this.#request = null;
  }

  /** Relays body bytes to the exchange. */
  #relay(request: Request, exchange: Exchange | null, buf: Buffer, start: number): boolean {
    this.stopContinue();
    let stop: number;
    if (request.bodyMode === BODY_LENGTH) {
      stop = Math.min(buf.length, start + request.remaining);
      request.remaining -= stop - start;
      if (request.remaining === 0) request.done = true;
    } else {
      const end = this.#chunked.execute(buf, start, buf.length, null);
      if (end === -2) {
        this.#request = null;
        this.#host.fail(400, this.#chunked.error ?? 'bad chunked body');
        return false;
      }
      stop = end === -1 ? buf.length : end;
      if (end >= 0) request.done = true;
    }
    let flowing = true;
    if (stop > start && exchange !== null) {
      request.bodyBytes += stop - start;
      flowing = exchange.writeBody(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
      if (!flowing) this.#host.pauseClient();
    }
    if (request.done) {
      this.#request = null;
      exchange?.endRequest();
      this.#host.bodyEnded(stop < buf.length ? buf.subarray(stop) : null);
    }
    return flowing;
  }

  /** Decodes chunked body bytes into the held body; once it has ended, the backend gets it. */
  #hold(request: Request, spool: BodySpool, buf: Buffer, start: number): boolean {
    const parser = this.#chunked;
    let answer = 'more' as SpoolAdd;
    const end = parser.execute(buf, start, buf.length, {
      onChunkData: (data, from, to) => {
        const added = spool.add(data.subarray(from, to));
        if (added === 'too-large' || answer === 'more') answer = added;
      },
    });
    if (end === -2 || answer === 'too-large') {
      spool.close();
      request.held = null;
      this.#request = null;
      if (end === -2) this.#host.fail(400, parser.error ?? 'bad chunked body');
      else this.#host.fail(413);
      return false;
    }
    request.bodyBytes += (end === -1 ? buf.length : end) - start;
    if (end === -1) {
      if (answer === 'wait') this.#host.pauseClient();
      return answer === 'more';
    }
    request.done = true;
    this.#request = null;
    this.#host.bodyEnded(end < buf.length ? buf.subarray(end) : null);
    const trailers = parser.trailers;
    spool.finish((error) =>
      this.#sendHeld(request, spool, error, trailers === '' ? null : `0\r\n${trailers}\r\n`),
    );
    return false;
  }

  /** The held body is whole (or could not be kept): the backend gets it now. */
  #sendHeld(
    request: Request,
    spool: BodySpool,
    error: NodeJS.ErrnoException | null,
    lastChunk: string | null,
  ): void {
    if (request.held !== spool || !this.#host.current(request)) return;
    if (error !== null) {
      this.#heldFailed(request, spool, error);
      return;
    }
    const exchange = this.#host.openExchange(request);
    sendHeldBody(exchange, request.heldHead, spool, lastChunk, (readError) => {
      if (readError !== null) this.#heldFailed(request, spool, readError);
      else request.held = null;
    });
  }

  #heldFailed(request: Request, spool: BodySpool, error: NodeJS.ErrnoException): void {
    request.held = null;
    dropHeldBody(this.#core, spool, error);
    this.#host.fail(500);
  }

  #onHeldWritable = (): void => {
    this.#host.resumeBody();
  };

  #onContinueTimeout = (): void => {
    this.#continueTimer = null;
    const request = this.#request;
    if (request === null || request.started || request.bodyBytes > 0) return;
    request.ownContinue = true;
    this.#host.sayContinue();
  };
}
