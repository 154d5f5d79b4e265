// One HTTP/2 client stream forwarded as a stream of the proxy's h2c session to
// the backend (--backend-protocol h2c): the request's header list as the
// header rules made it, both bodies relayed as they come with backpressure,
// 1xx answers, the response's trailers (gRPC's status) and resets passed on.
// A client that resets its stream cancels the backend's (a gRPC call
// cancelled reaches the server); a backend that fails before answering gets
// the client the same 502, 503 or 504 as on HTTP/1.1.
import type * as http2 from 'node:http2';
import { CONTINUE_WAIT_MS, type ProxyCore } from './core.js';
import { type GrpcWeb, grpcWebOf } from './grpc-web.js';
import type { H2cBackend, StreamRequest } from './h2c-backend.js';
import { h2cResponseHeaders, headerListLength } from './http2-head.js';

/**
 * The client's side of a relayed stream, as the relay uses it: an HTTP/2 client's own stream
 * (node:http2's ServerHttp2Stream), or an HTTP/1.1 gRPC-Web request bridged to the h2c backend
 * (http1-h2c.ts).
 */
export interface RelayClient {
  readonly readableEnded: boolean;
  readonly endAfterHeaders: boolean;
  readonly destroyed: boolean;
  readonly closed: boolean;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  /** A 1xx head. */
  additionalHeaders(headers: http2.OutgoingHttpHeaders): void;
  /** The final head; throws when it cannot be sent. */
  respond(
    headers: http2.OutgoingHttpHeaders,
    options: { endStream: boolean; waitForTrailers: boolean },
  ): void;
  /** Response body bytes; false: the client is backed up (the owner calls `clientDrained`). */
  write(chunk: Buffer): boolean;
  /** The response body's end, with its last bytes; 'wantTrailers' follows when `respond` asked for it. */
  end(chunk?: Buffer): void;
  sendTrailers(headers: http2.OutgoingHttpHeaders): void;
  /** Cuts the client's side (an HTTP/2 error code): its owner aborts the relay. */
  close(code: number): void;
  /** The request body: 'data' and 'end' events, paused and resumed. */
  pause(): void;
  resume(): void;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'end' | 'wantTrailers', listener: () => void): unknown;
  once(event: 'wantTrailers', listener: () => void): unknown;
}

/** What the relay tells the client stream's owner (http2-stream.ts, http1-h2c.ts). */
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
  /**
   * The request body's trailers, null when none came. Listened for from the stream's start: they
   * may come, with the whole body, before the relay takes a backend stream.
   */
  requestTrailers(): http2.IncomingHttpHeaders | null;
  /** The call's gRPC status (grpc-status), when the backend gave one: for the access log. */
  grpcStatus(status: number): void;
}

/** System errors under which the backend was not there to take the stream: 503 until it has answered once. */
const NOT_LISTENING = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE']);

/**
 * Request body bytes kept until the response begins, so that a stream the backend refused
 * (REFUSED_STREAM: a GOAWAY raced it, or a limit lowered under it; RFC 9113 section 8.7 says
 * it was not processed) can be sent again on another. A gRPC call's request is usually one
 * small message; a larger body is not retried.
 */
const REPLAY_BYTES = 64 * 1024;

export class H2cRelay {
  readonly #core: ProxyCore;
  readonly #h2c: H2cBackend;
  readonly #client: RelayClient;
  readonly #host: H2cRelayHost;
  readonly #headers: http2.OutgoingHttpHeaders;
  readonly #hasBody: boolean;
  /** A gRPC-Web call (a browser's): both bodies transcoded, the trailers sent in the body; else null. */
  readonly #web: GrpcWeb | null;
  /** The same, once the backend's answer is gRPC (any other answer passes as it is). */
  #webResponse: GrpcWeb | null = null;
  /** The backend's stream; undefined while the request waits for one. */
  #backend: http2.ClientHttp2Stream | undefined;
  /** The request waiting for a stream (h2c-backend.ts), until it gets one. */
  #request: StreamRequest | undefined;
  #timer: NodeJS.Timeout | undefined;
  #responded = false;
  #over = false;
  #trailers: http2.OutgoingHttpHeaders = {};
  /**
   * Set while the client takes no more of the response: past the idle timeout it is cut and the
   * backend's stream cancelled (a client that stops reading must not hold a call on the server).
   */
  #stallTimer: NodeJS.Timeout | undefined;
  /** Set while the client waits for 100 Continue (Expect: 100-continue). */
  #continueTimer: NodeJS.Timeout | undefined;
  /** The proxy said 100 itself: a late one from the backend is dropped. */
  #saidContinue = false;
  /** The request body sent so far, while it may still be sent again (REPLAY_BYTES); null past that. */
  #sent: Buffer[] | null = [];
  #sentBytes = 0;
  #requestEnded = false;
  #retried = false;

  constructor(
    core: ProxyCore,
    h2c: H2cBackend,
    client: RelayClient,
    headers: http2.OutgoingHttpHeaders,
    host: H2cRelayHost,
    expectContinue: boolean,
  ) {
    this.#core = core;
    this.#h2c = h2c;
    this.#client = client;
    this.#host = host;
    const contentType = headers['content-type'];
    this.#web = grpcWebOf(typeof contentType === 'string' ? contentType : undefined);
    this.#headers = this.#web === null ? headers : this.#web.requestHeaders(headers);
    this.#hasBody = !client.readableEnded && !client.endAfterHeaders;
    // The backend's whole wait: for a stream (a full backend), then for the response head.
    this.#timer = setTimeout(this.#onTimeout, core.limits.backendTimeoutMs);
    // As for an HTTP/1.1 backend (R15): the backend gets the Expect and CONTINUE_WAIT_MS to answer
    // it, then the proxy says 100 itself, so that the client does not wait its own timeout.
    if (expectContinue && this.#hasBody)
      this.#continueTimer = setTimeout(this.#sayContinue, CONTINUE_WAIT_MS);
    this.#ask();
  }

  #sayContinue = (): void => {
    this.#continueTimer = undefined;
    const client = this.#client;
    if (this.#over || client.destroyed || client.headersSent) return;
    this.#saidContinue = true;
    try {
      client.additionalHeaders({ ':status': 100 });
    } catch {
      // The client reset the stream meanwhile.
    }
  };

  #ask(): void {
    const request: StreamRequest = {
      headers: this.#headers,
      endStream: !this.#hasBody,
      waitForTrailers: this.#hasBody,
      give: this.#take,
      fail: this.#onError,
    };
    this.#request = request;
    this.#h2c.request(request);
  }

  #take = (backend: http2.ClientHttp2Stream): void => {
    this.#request = undefined;
    if (this.#over) {
      backend.close(NGHTTP2_CANCEL);
      return;
    }
    this.#backend = backend;
    backend.on('response', this.#onResponse);
    backend.on('headers', this.#onInformational);
    backend.on('data', this.#onData);
    backend.on('trailers', this.#onTrailers);
    backend.on('end', this.#onEnd);
    backend.on('error', this.#onError);
    backend.on('close', this.#onClose);
    backend.on('drain', this.#onBackendDrain);
    backend.on('wantTrailers', this.#sendRequestTrailers);
    if (!this.#hasBody) return;
    if (this.#retried) {
      // Sent again as it went the first time.
      for (const chunk of this.#sent ?? []) backend.write(chunk);
      if (this.#requestEnded) backend.end();
      else this.#client.resume();
      return;
    }
    this.#client.on('data', this.#onRequestData);
    this.#client.on('end', this.#onRequestEnd);
  };

  /** The client's stream can take more of the response. */
  clientDrained(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (!this.#over) this.#backend?.resume();
  }

  #onStalled = (): void => {
    this.#stallTimer = undefined;
    // The client's side closes (an HTTP/2 stream reset, an HTTP/1.1 connection cut), and its
    // owner aborts the relay, which cancels the backend's stream.
    if (!this.#over) this.#client.close(NGHTTP2_CANCEL);
  };

  /** The client went away (reset its stream): the backend's stream is cancelled. */
  abort(): void {
    if (this.#over) return;
    this.#finish();
  }

  /** Nothing of the relay stays reachable from the client's stream (see H2Stream's #detach). */
  detach(): void {
    this.#client.off('data', this.#onRequestData);
    this.#client.off('end', this.#onRequestEnd);
    this.#client.off('wantTrailers', this.#sendTrailers);
  }

  // ---- the request body, client to backend ----------------------------------

  #onRequestData = (received: Buffer): void => {
    this.#host.received(received.length);
    const backend = this.#backend;
    if (this.#over) return;
    const chunk = this.#web === null ? received : this.#web.decodeRequest(received);
    if (this.#sent !== null && !this.#responded) {
      this.#sentBytes += chunk.length;
      if (this.#sentBytes <= REPLAY_BYTES) this.#sent.push(chunk);
      else this.#sent = null;
    }
    // Waiting for another stream (the first was refused): it gets this chunk with the rest,
    // unless the body has outgrown what is kept.
    if (backend === undefined) {
      if (this.#sent === null) this.#backendFailed('closed before answering (refused)', null, 502);
      else this.#client.pause();
      return;
    }
    if (!backend.write(chunk)) this.#client.pause();
  };

  #onBackendDrain = (): void => {
    if (!this.#over) this.#client.resume();
  };

  /** The request body has gone: its trailers (or none) end the backend's side of the stream. */
  #sendRequestTrailers = (): void => {
    const backend = this.#backend;
    if (backend === undefined || backend.destroyed) return;
    const trailers = this.#host.requestTrailers();
    try {
      backend.sendTrailers(trailers === null ? {} : h2cResponseHeaders(trailers, undefined));
    } catch {
      backend.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  #onRequestEnd = (): void => {
    this.#requestEnded = true;
    if (this.#over) return;
    if (this.#web?.requestCut) {
      // A body that is not whole base64 would reach the server as a cut message.
      this.#fail(400, 'gRPC-Web text body is not base64');
      return;
    }
    this.#backend?.end();
  };

  // ---- the response, backend to client ---------------------------------------

  #onInformational = (headers: http2.IncomingHttpHeaders): void => {
    const client = this.#client;
    if (this.#over || client.destroyed || client.headersSent) return;
    if (Number(headers[':status']) === 100) {
      this.#stopContinue();
      // The proxy already said it; once is enough.
      if (this.#saidContinue) return;
    }
    try {
      client.additionalHeaders(h2cResponseHeaders(headers, undefined));
    } catch {
      // The client reset the stream meanwhile: the hint is dropped.
    }
  };

  #onResponse = (incoming: http2.IncomingHttpHeaders, flags: number): void => {
    clearTimeout(this.#timer);
    this.#stopContinue();
    if (this.#over) return;
    this.#sent = null;
    const core = this.#core;
    const headers = h2cResponseHeaders(incoming, core.settings.hsts);
    const web = this.#web?.responseHeaders(headers) ? this.#web : null;
    this.#webResponse = web;
    if (web !== null) this.#markForOrigin(headers);
    const ends = (flags & END_STREAM) !== 0;
    const client = this.#client;
    if (client.destroyed || client.closed) return;
    // A trailers-only answer (a gRPC error) has its status in its head. Noted first: a bridged
    // HTTP/1.1 client's answer (http1-h2c.ts) may end, and be logged, as its head is written.
    this.#noteGrpcStatus(incoming['grpc-status']);
    try {
      // The response's trailers (gRPC's grpc-status) can only follow when the client's stream
      // waits for them: every response that does not end with its head does.
      // A gRPC-Web client gets them in the body instead.
      client.respond(headers, { endStream: ends, waitForTrailers: !ends && web === null });
    } catch (error) {
      this.#backendFailed(`bad response: ${(error as Error).message}`, null, 502);
      return;
    }
    this.#responded = true;
    this.#host.responded(Number(incoming[':status']), headerListLength(headers));
    if (ends) this.#complete();
    else if (web === null) client.once('wantTrailers', this.#sendTrailers);
  };

  /** A gRPC-Web answer to a page of another site allowed to call (--grpc-web-origins), marked for it. */
  #markForOrigin(headers: http2.OutgoingHttpHeaders): void {
    const origins = this.#core.grpcWebOrigins;
    const origin = this.#headers.origin;
    const allow = origins?.allow(typeof origin === 'string' ? origin : undefined) ?? null;
    if (allow !== null) origins?.mark(headers, allow);
  }

  #onData = (data: Buffer): void => {
    const client = this.#client;
    if (this.#over || client.destroyed) return;
    const chunk = this.#webResponse === null ? data : this.#webResponse.encodeResponse(data);
    this.#host.sent(chunk.length);
    if (client.write(chunk)) return;
    this.#backend?.pause();
    this.#stallTimer ??= setTimeout(this.#onStalled, this.#core.limits.idleTimeoutMs);
  };

  #onTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.#trailers = h2cResponseHeaders(trailers, undefined);
    this.#noteGrpcStatus(trailers['grpc-status']);
  };

  #noteGrpcStatus(value: string | string[] | undefined): void {
    if (typeof value === 'string' && /^\d{1,2}$/.test(value)) this.#host.grpcStatus(Number(value));
  }

  #onEnd = (): void => {
    if (this.#over || !this.#responded) return;
    const client = this.#client;
    if (!client.destroyed && !client.writableEnded) {
      const web = this.#webResponse;
      if (web !== null) {
        const last = web.endResponse(this.#trailers);
        this.#host.sent(last.length);
        client.end(last);
      } else client.end();
    }
    this.#complete();
  };

  #sendTrailers = (): void => {
    try {
      this.#client.sendTrailers(this.#trailers);
    } catch {
      this.#client.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  #stopContinue(): void {
    clearTimeout(this.#continueTimer);
    this.#continueTimer = undefined;
  }

  /** Over: no timer of the relay's may fire. */
  #stopTimers(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#stopContinue();
  }

  #complete(): void {
    this.#over = true;
    this.#stopTimers();
    this.#host.ended();
  }

  // ---- failures -------------------------------------------------------------

  #onTimeout = (): void => {
    if (!this.#over) this.#backendFailed('timeout', null, 504);
  };

  #onError = (error: Error, notHttp2 = false): void => {
    if (this.#over || this.#retry()) return;
    const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
    if (notHttp2) {
      this.#backendFailed('bad response: not HTTP/2 (is --backend-protocol h2c right?)', error, 502);
    } else if (!this.#responded && code !== undefined && NOT_LISTENING.has(code)) {
      this.#backendFailed('connect', error, this.#core.pool.answered ? 502 : 503);
    } else if (this.#responded) this.#backendFailed('closed mid-response', error, 0);
    else this.#backendFailed('closed before answering', error, 502);
  };

  #onClose = (): void => {
    if (this.#over || this.#retry()) return;
    // Closed with no error and no end: reset by the backend (RST_STREAM NO_ERROR, or a GOAWAY).
    const code = this.#backend?.rstCode ?? 0;
    if (this.#responded) this.#backendFailed(`closed mid-response (reset, code ${code})`, null, 0);
    else this.#backendFailed(`closed before answering (reset, code ${code})`, null, 502);
  };

  /**
   * The backend failed: counted and logged (the pool's one line per burst), then the client gets
   * `status`, or with 0 its response under way is cut.
   */
  #backendFailed(detail: string, error: Error | null, status: number): void {
    this.#core.pool.failure(detail, error, status);
    this.#fail(status === 0 ? 502 : status, detail);
  }

  /**
   * A stream the backend refused before answering (REFUSED_STREAM: not processed) is asked for
   * once more, its body sent again, when all of that body is still at hand.
   */
  #retry(): boolean {
    const backend = this.#backend;
    if (
      backend?.rstCode !== NGHTTP2_REFUSED_STREAM ||
      this.#responded ||
      this.#retried ||
      this.#sent === null
    ) {
      return false;
    }
    this.#retried = true;
    this.#unlisten(backend);
    this.#backend = undefined;
    this.#ask();
    return true;
  }

  #unlisten(backend: http2.ClientHttp2Stream): void {
    backend.off('response', this.#onResponse);
    backend.off('headers', this.#onInformational);
    backend.off('data', this.#onData);
    backend.off('trailers', this.#onTrailers);
    backend.off('end', this.#onEnd);
    backend.off('error', this.#onError);
    backend.off('close', this.#onClose);
    backend.off('drain', this.#onBackendDrain);
    backend.off('wantTrailers', this.#sendRequestTrailers);
    // Its own end may still come: nothing of it matters now.
    backend.on('error', noop);
  }

  #fail(status: number, detail: string): void {
    this.#finish();
    this.#host.failed(status, detail);
  }

  /** Over: the backend's stream cancelled (or the wait for one given up), the client's body let go. */
  #finish(): void {
    this.#over = true;
    this.#stopTimers();
    if (this.#request !== undefined) this.#h2c.cancel(this.#request);
    this.#request = undefined;
    const backend = this.#backend;
    if (backend !== undefined && !backend.destroyed) backend.close(NGHTTP2_CANCEL);
    this.#client.resume();
  }
}

function noop(): void {}

// RFC 9113 codes and flags (node:http2's constants, without loading the module for them).
const NGHTTP2_CANCEL = 8;
const NGHTTP2_INTERNAL_ERROR = 2;
const NGHTTP2_REFUSED_STREAM = 7;
const END_STREAM = 0x1;
