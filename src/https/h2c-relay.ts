// One HTTP/2 client stream forwarded as a stream of the proxy's h2c session to
// the backend (--backend-protocol h2c): the request's header list as the
// header rules made it, both bodies relayed as they come with backpressure,
// 1xx answers, the response's trailers (gRPC's status) and resets passed on.
// A client that resets its stream cancels the backend's (a gRPC call
// cancelled reaches the server); a backend that fails before answering gets
// the client the same 502, 503 or 504 as on HTTP/1.1.
import type * as http2 from 'node:http2';
import type { ProxyCore } from './core.js';
import type { H2cBackend } from './h2c-backend.js';
import { h2cResponseHeaders, headerListLength } from './http2-head.js';

/** What the relay tells the client stream's owner (http2-stream.ts). */
export interface H2cRelayHost {
  /** The backend's response head went to the client: its status and its size (as HTTP/1.1 lines). */
  responded(status: number, headBytes: number): void;
  /** Request body bytes taken from the client, response body bytes given to it. */
  received(bytes: number): void;
  sent(bytes: number): void;
  /** The response has ended whole (its trailers, if any, are on their way). */
  ended(): void;
  /** The backend failed: before the response, the answer the client is owed; after, the stream is cut. */
  failed(status: number, detail: string): void;
}

/** System errors under which the backend was not there to take the stream: 503 until it has answered once. */
const NOT_LISTENING = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE']);

export class H2cRelay {
  readonly #core: ProxyCore;
  readonly #client: http2.ServerHttp2Stream;
  readonly #host: H2cRelayHost;
  readonly #backend: http2.ClientHttp2Stream;
  #timer: NodeJS.Timeout | undefined;
  #responded = false;
  #over = false;
  #trailers: http2.OutgoingHttpHeaders = {};

  constructor(
    core: ProxyCore,
    h2c: H2cBackend,
    client: http2.ServerHttp2Stream,
    headers: http2.OutgoingHttpHeaders,
    host: H2cRelayHost,
  ) {
    this.#core = core;
    this.#client = client;
    this.#host = host;
    const hasBody = !client.readableEnded && !client.endAfterHeaders;
    const backend = h2c.request(headers, !hasBody);
    this.#backend = backend;
    this.#timer = setTimeout(this.#onTimeout, core.limits.backendTimeoutMs);
    backend.on('response', this.#onResponse);
    backend.on('headers', this.#onInformational);
    backend.on('data', this.#onData);
    backend.on('trailers', this.#onTrailers);
    backend.on('end', this.#onEnd);
    backend.on('error', this.#onError);
    backend.on('close', this.#onClose);
    backend.on('drain', this.#onBackendDrain);
    if (hasBody) {
      client.on('data', this.#onRequestData);
      client.on('end', this.#onRequestEnd);
    }
  }

  /** The client's stream can take more of the response. */
  clientDrained(): void {
    if (!this.#over) this.#backend.resume();
  }

  /** The client went away (reset its stream): the backend's stream is cancelled. */
  abort(): void {
    if (this.#over) return;
    this.#finish();
    if (!this.#backend.destroyed) this.#backend.close(NGHTTP2_CANCEL);
  }

  /** Nothing of the relay stays reachable from the client's stream (see H2Stream's #detach). */
  detach(): void {
    this.#client.off('data', this.#onRequestData);
    this.#client.off('end', this.#onRequestEnd);
    this.#client.off('wantTrailers', this.#sendTrailers);
  }

  // ---- the request body, client to backend ----------------------------------

  #onRequestData = (chunk: Buffer): void => {
    this.#host.received(chunk.length);
    if (this.#over || this.#backend.destroyed) return;
    if (!this.#backend.write(chunk)) this.#client.pause();
  };

  #onBackendDrain = (): void => {
    if (!this.#over) this.#client.resume();
  };

  #onRequestEnd = (): void => {
    if (!this.#over && !this.#backend.destroyed) this.#backend.end();
  };

  // ---- the response, backend to client ---------------------------------------

  #onInformational = (headers: http2.IncomingHttpHeaders): void => {
    const client = this.#client;
    if (this.#over || client.destroyed || client.headersSent) return;
    try {
      client.additionalHeaders(h2cResponseHeaders(headers, undefined));
    } catch {
      // The client reset the stream meanwhile: the hint is dropped.
    }
  };

  #onResponse = (incoming: http2.IncomingHttpHeaders, flags: number): void => {
    clearTimeout(this.#timer);
    if (this.#over) return;
    const core = this.#core;
    core.pool.markAnswered();
    const headers = h2cResponseHeaders(incoming, core.settings.hsts);
    const ends = (flags & END_STREAM) !== 0;
    const client = this.#client;
    if (client.destroyed || client.closed) return;
    try {
      // The response's trailers (gRPC's grpc-status) can only follow when the client's stream
      // waits for them: every response that does not end with its head does.
      client.respond(headers, { endStream: ends, waitForTrailers: !ends });
    } catch (error) {
      core.pool.failure(`bad response: ${(error as Error).message}`, null);
      this.#fail(502, `bad response: ${(error as Error).message}`);
      return;
    }
    this.#responded = true;
    this.#host.responded(Number(incoming[':status']), headerListLength(headers));
    if (ends) this.#complete();
    else client.once('wantTrailers', this.#sendTrailers);
  };

  #onData = (chunk: Buffer): void => {
    const client = this.#client;
    if (this.#over || client.destroyed) return;
    this.#host.sent(chunk.length);
    if (!client.write(chunk)) this.#backend.pause();
  };

  #onTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.#trailers = h2cResponseHeaders(trailers, undefined);
  };

  #onEnd = (): void => {
    if (this.#over || !this.#responded) return;
    const client = this.#client;
    if (!client.destroyed && !client.writableEnded) client.end();
    this.#complete();
  };

  #sendTrailers = (): void => {
    try {
      this.#client.sendTrailers(this.#trailers);
    } catch {
      this.#client.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  #complete(): void {
    this.#finish();
    this.#host.ended();
  }

  // ---- failures -------------------------------------------------------------

  #onTimeout = (): void => {
    if (this.#over) return;
    this.#core.pool.failure('timeout', null);
    this.#backend.close(NGHTTP2_CANCEL);
    this.#fail(504, 'timeout');
  };

  #onError = (error: Error): void => {
    if (this.#over) return;
    const cause = (error as { cause?: { code?: string } }).cause;
    const connectCode = cause?.code;
    if (!this.#responded && connectCode !== undefined && NOT_LISTENING.has(connectCode)) {
      this.#core.pool.failure('connect', cause as Error);
      this.#fail(this.#core.pool.answered ? 502 : 503, 'connect');
      return;
    }
    const detail = this.#responded ? 'closed mid-response' : 'closed before answering';
    this.#core.pool.failure(detail, error);
    this.#fail(502, detail);
  };

  #onClose = (): void => {
    if (this.#over) return;
    // Closed with no error and no end: reset by the backend (RST_STREAM NO_ERROR, or a GOAWAY).
    const detail = this.#responded ? 'closed mid-response' : 'closed before answering';
    this.#core.pool.failure(`${detail} (reset, code ${this.#backend.rstCode ?? 0})`, null);
    this.#fail(502, detail);
  };

  #fail(status: number, detail: string): void {
    this.#finish();
    if (!this.#backend.destroyed) this.#backend.close(NGHTTP2_CANCEL);
    this.#host.failed(status, detail);
  }

  #finish(): void {
    this.#over = true;
    clearTimeout(this.#timer);
    this.#client.resume();
  }
}

// RFC 9113 codes and flags (node:http2's constants, without loading the module for them).
const NGHTTP2_CANCEL = 8;
const NGHTTP2_INTERNAL_ERROR = 2;
const END_STREAM = 0x1;
