// One HTTP/2 stream forwarded to the backend as an HTTP/1.1 request over the
// same pool and with the same header rules as HTTP/1: the stream's head is
// written out as an HTTP/1.1 head and goes through the same strict parser.
// Bodies stream both ways with backpressure; chunked responses are decoded
// into DATA frames. The backend side is the one exchange (exchange.ts).
import type * as http2 from 'node:http2';
// The module's own binding: the global `performance` is a getter, called on every use.
import { performance } from 'node:perf_hooks';
import { countRequestTimes, countResponse } from '../stats/index.js';
import { cannedHeadLength, cannedResponse, failureReason, type ProxyCore, REFUSAL_REASONS } from './core.js';
import { BackendExchange, type ExchangeClient, RELAY_QUEUE_BYTES } from './exchange.js';
import { buildRequestHead, type Peer, requestIdFor } from './forwarding.js';
import { PREFLIGHT_REASON } from './grpc-web.js';
import { H2cRelay, type H2cRelayHost } from './h2c-relay.js';
import type { Head } from './head.js';
import { oversizeStatus, parseRequestText, statusForHeadError } from './head-parser.js';
import {
  h2cRequestHeaders,
  headerListLength,
  http1RequestHead,
  http2Answer,
  http2ResponseHeaders,
  http2Trailers,
} from './http2-head.js';
import type { StreamSpares } from './http2-spares.js';
import { H2Upload, type H2UploadHost } from './http2-upload.js';
import { H2Tunnel, newWebSocketKey, websocketAccept } from './http2-websocket.js';
import type { BackendConn } from './pool.js';
import { newRequestUuid } from './request-uuid.js';
import type { ResponseReader } from './response-reader.js';

/** One HTTP/2 stream: the client side of a backend exchange (exchange.ts). */
export class H2Stream implements ExchangeClient {
  readonly #core: ProxyCore;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #spares: StreamSpares;
  #exchange: BackendExchange | null = null;
  /** The exchange's response reader (from the spares; given back when the stream closes). */
  #reader: ResponseReader | undefined;
  /** The request body's side; null for a request without one. */
  #upload: H2Upload | null = null;
  /** With an h2c backend (--backend-protocol h2c): the stream to it, in place of an exchange. */
  #relay: H2cRelay | null = null;
  /** The client sent `te: trailers` (for an h2c backend, which gets the stream's own fields). */
  #teTrailers = false;
  /** With an h2c backend: the request body's trailers, when they came. */
  #requestTrailers: http2.IncomingHttpHeaders | null = null;
  #responded = false;
  #finished = false;
  #wantTrailers = false;
  /** Sent to the backend as X-Request-Id, and in the proxy's own answer; '' until the request is taken. */
  #requestId = '';
  readonly #peer: Peer;
  /** The request head as parsed (for the access log). */
  #head: Head | undefined;
  #status = 0;
  /** The gRPC call's status, from an h2c backend's grpc-status (trailers, or a trailers-only head); -1: none. */
  #grpcStatus = -1;
  /** Bytes of this stream from and to the client, and (performance.now()) when it began and the backend first answered. */
  #in = 0;
  #out = 0;
  #startedAt = 0;
  #backendAt = 0;
  /** Of #out, the response head's (counted in its HTTP/1 form, as #out counts it). */
  #headOut = 0;
  /**
   * A WebSocket's extended CONNECT (RFC 8441): the Sec-WebSocket-Key of the HTTP/1.1 handshake
   * the backend gets in its place; '' for any other stream.
   */
  readonly #websocketKey: string;

  constructor(
    core: ProxyCore,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    peer: Peer,
    spares: StreamSpares,
  ) {
    this.#core = core;
    this.#stream = stream;
    this.#peer = peer;
    this.#spares = spares;
    // Extended CONNECT (RFC 8441; the server's SETTINGS allow it): only WebSockets are carried.
    const extended = headers[':protocol'];
    this.#websocketKey =
      extended !== undefined && String(extended).toLowerCase() === 'websocket' ? newWebSocketKey() : '';
    const { text, hasLength } = http1RequestHead(headers, this.#websocketKey);
    // Counted as HTTP/1 counts a request: its head (here in its HTTP/1.1 form) and its body.
    core.stats.bytesIn += text.length;
    this.#in = text.length;
    this.#startedAt = performance.now();
    const head = spares.head();
    this.#head = head;
    // nghttp2 keeps CR, LF and NUL out of names and values (RFC 9113 section 8.2.1: it drops
    // such a field, or resets the stream for a bad :path; pinned in test/https/http2.test.ts):
    // the text's only line breaks are the ones it was built with, the last four its end.
    const limit = core.limits.maxHeaderBytes;
    if (text.length > limit) {
      // The same answers as HTTP/1: a header list over the limit is 431, 414 when the request
      // line alone is (nghttp2's own limit is set above ours, so that the client gets this
      // answer rather than a reset stream).
      this.#finished = true;
      this.#respondCanned(oversizeStatus(text.indexOf('\n'), limit));
      return;
    }
    const error = parseRequestText(head, text.slice(0, text.length - 4));
    if (error !== null || head.method === 'CONNECT') {
      // A tunnel to a host (CONNECT) is not what a reverse proxy is for; a protocol other than
      // WebSocket over extended CONNECT (WebTransport, say) is one it does not carry.
      this.#finished = true;
      this.#respondCanned(error !== null ? statusForHeadError(error) : extended === undefined ? 400 : 501);
      return;
    }
    stream.on('close', this.#onClose);
    stream.on('error', noop);
    this.#teTrailers = headers.te === 'trailers';
    // An h2c backend takes the body as a stream of its own: nothing is held. Its trailers may
    // come with the whole body before the backend stream is taken: listened for from here.
    // A WebSocket's frames are no body: they wait in the stream until the backend's 101.
    if (this.#websocketKey !== '' || stream.endAfterHeaders) {
      // nothing to take before the backend answers
    } else if (core.h2c !== undefined) stream.once('trailers', this.#onRequestTrailers);
    else this.#upload = new H2Upload(core, stream, this.#uploadHost(), hasLength);
    // The backend is taken one turn of the event loop later: a stream its client resets at
    // once (HTTP/2 rapid reset, CVE-2023-44487: HEADERS then RST_STREAM in one packet, over and
    // over) is gone by then and costs no backend connection (issue 9, item 23). Its body, if
    // any, waits in the stream meanwhile: 'data' is not listened to yet.
    setImmediate(() => this.#start(head, peer));
  }

  #start(head: Head, peer: Peer): void {
    const stream = this.#stream;
    if (this.#finished || stream.destroyed || stream.closed) return;
    stream.on('drain', this.#onDrain);
    this.#requestId = requestIdFor(head, this.#core.settings);
    const upload = this.#upload;
    const websocket = this.#websocketKey !== '';
    const sent = buildRequestHead(head, peer, this.#core.settings, websocket, this.#requestId, upload?.holds);
    const h2c = this.#core.h2c;
    // A WebSocket goes to the backend as the HTTP/1.1 handshake it stands for, h2c or not.
    if (h2c !== undefined && !websocket) {
      const origins = this.#core.grpcWebOrigins;
      const preflight = origins?.preflightFor(head) ?? null;
      if (preflight !== null) {
        this.#answerPreflight(preflight);
        return;
      }
      const headers = h2cRequestHeaders(sent, this.#teTrailers);
      this.#relay = new H2cRelay(this.#core, h2c, stream, headers, this.#relayHost(), head.expectContinue);
      return;
    }
    if (upload !== null) {
      upload.start(sent);
      if (head.expectContinue) upload.expectContinue();
      return;
    }
    const exchange = this.#openExchange(false);
    exchange.endRequest();
    exchange.writeHead(sent);
  }

  #openExchange(sendsBody: boolean): BackendExchange {
    const core = this.#core;
    const reader = this.#spares.reader();
    this.#reader = reader;
    const exchange = new BackendExchange(core, this, reader, sendsBody, this.#head!.method === 'HEAD', true);
    this.#exchange = exchange;
    return exchange;
  }

  #uploadHost(): H2UploadHost {
    return {
      openExchange: () => this.#openExchange(true),
      exchange: () => this.#exchange,
      finished: () => this.#finished,
      fail: (status: number) => {
        this.#exchange?.abort();
        this.#exchange = null;
        this.#finished = true;
        this.#respondCanned(status);
      },
      received: (bytes: number) => {
        this.#core.stats.bytesIn += bytes;
        this.#in += bytes;
      },
      sayContinue: () => this.#sendInformational({ ':status': 100 }),
    };
  }

  #relayHost(): H2cRelayHost {
    return {
      responded: (status: number, headBytes: number) => {
        this.#responded = true;
        this.#status = status;
        this.#headOut = headBytes;
        this.#core.stats.bytesOut += headBytes;
        this.#out += headBytes;
        this.#backendAt = performance.now();
      },
      received: (bytes: number) => {
        this.#core.stats.bytesIn += bytes;
        this.#in += bytes;
      },
      sent: (bytes: number) => {
        this.#core.stats.bytesOut += bytes;
        this.#out += bytes;
      },
      ended: () => {
        if (this.#finished) return;
        this.#finished = true;
        countResponse(this.#core.stats, this.#status);
        this.#recordEnd(this.#status, undefined);
      },
      failed: (status: number, detail: string) => {
        this.onExchangeFailed(status, detail);
      },
      requestTrailers: () => this.#requestTrailers,
      grpcStatus: (status: number) => {
        this.#grpcStatus = status;
      },
    };
  }

  #onRequestTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.#requestTrailers = trailers;
  };

  #onDrain = (): void => {
    this.#exchange?.clientDrained();
    this.#relay?.clientDrained();
  };

  #onClose = (): void => {
    if (!this.#finished) {
      this.#finished = true;
      this.#upload?.close();
      this.#exchange?.abort();
      this.#exchange = null;
      this.#relay?.abort();
      // The client reset the stream (or went away) before its answer: nginx's 499.
      this.#recordEnd(499, 'client went away');
    }
    // The exchange is over (ended, failed or aborted just above): its reader and the head are free.
    this.#spares.give(this.#head, this.#reader);
    this.#head = undefined;
    this.#reader = undefined;
    this.#detach();
  };

  /**
   * Nothing of the proxy stays reachable from a closed stream's object, which may outlive its
   * close: where node:http2's own Map of streams stays (a Node on which http2-stream-table.ts
   * cannot replace it), V8's replaced tables keep every stream they held until a full
   * collection, and whatever the stream reaches is copied and promoted meanwhile
   * (docs/benchmarks.md, "What outlives a connection or a stream").
   */
  #detach(): void {
    const stream = this.#stream;
    stream.off('close', this.#onClose);
    stream.off('drain', this.#onDrain);
    stream.off('wantTrailers', this.#sendTrailers);
    stream.off('trailers', this.#onRequestTrailers);
    this.#upload?.detach();
    this.#relay?.detach();
    this.#relay = null;
  }

  // ---- the exchange's events ---------------------------------------------

  onRequestDrained(): void {
    this.#upload?.drained();
  }

  afterBackendRead(): void {
    // No body bytes came with the head in this read: the head goes now, the body later.
    if (this.#pendingHead !== undefined) this.#respond(false);
  }

  onClientStalled(): void {
    // The backend waited the whole idle timeout for this client to take data (issue 9, item 16).
    if (!this.#stream.destroyed) this.#stream.close(NGHTTP2_CANCEL);
  }

  onInformational(head: Head): void {
    const upload = this.#upload;
    if (head.status === 100 && upload !== null) {
      upload.stopContinue();
      // The proxy already said it; once is enough.
      if (upload.ownContinue) return;
    }
    // The head's own fields too: a 103's Link headers are what it is for.
    this.#sendInformational(http2ResponseHeaders(head, undefined));
  }

  #sendInformational(headers: http2.OutgoingHttpHeaders): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    try {
      stream.additionalHeaders(headers);
    } catch {
      // The client reset the stream meanwhile, or a field HTTP/2 cannot carry: the hint is dropped.
    }
  }

  onResponseHead(head: Head, _raw: Buffer, start: number, end: number): void {
    this.#upload?.stopContinue();
    const stream = this.#stream;
    this.#core.stats.bytesOut += end - start;
    this.#out += end - start;
    this.#headOut = end - start;
    this.#status = head.status;
    this.#backendAt = performance.now();
    const headers = http2ResponseHeaders(head, this.#core.settings.hsts);
    this.#wantTrailers = head.chunked && head.hasTrailer;
    if (stream.destroyed || stream.closed) {
      this.#responded = true;
      return;
    }
    // Held until the body's first bytes (or the end of this backend read): a body that turns
    // out malformed right after the head still gets the 502 the client is owed, as on HTTP/1.
    this.#pendingHead = headers;
  }

  /** Sends the response head held back; false when HTTP/2 cannot carry it (the stream then fails alone). */
  #respond(endStream: boolean): boolean {
    const headers = this.#pendingHead;
    if (headers === undefined) return true;
    this.#pendingHead = undefined;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) {
      this.#responded = true;
      return true;
    }
    try {
      stream.respond(headers, { endStream, waitForTrailers: this.#wantTrailers && !endStream });
    } catch (error) {
      // A header value HTTP/2 cannot carry, or a stream reset meanwhile: the stream fails alone.
      const detail = `response head not valid for HTTP/2: ${(error as Error).message}`;
      this.#core.pool.failure(detail, null, 502);
      this.#exchange?.abort();
      this.onExchangeFailed(502, detail);
      return false;
    }
    this.#responded = true;
    if (this.#wantTrailers && !endStream) stream.once('wantTrailers', this.#sendTrailers);
    return true;
  }

  /** The response head, built, until it is sent (#respond). */
  #pendingHead: http2.OutgoingHttpHeaders | undefined;

  #sendTrailers = (): void => {
    try {
      this.#stream.sendTrailers(http2Trailers(this.#trailerText));
    } catch {
      this.#stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  /** The response's trailers, kept when the exchange ends (its reader is reused no more, but read them once). */
  #trailerText = '';

  onResponseBody(buf: Buffer, start: number, end: number): boolean {
    const stream = this.#stream;
    if (!this.#respond(false)) return true;
    if (stream.destroyed) return true;
    this.#core.stats.bytesOut += end - start;
    this.#out += end - start;
    // nghttp2 sends DATA frames from the Buffer it was given, later: a copy, not the read buffer (pool.ts).
    const ok = stream.write(Buffer.from(buf.subarray(start, end)));
    return ok || stream.writableLength <= RELAY_QUEUE_BYTES;
  }

  onExchangeEnd(): void {
    if (this.#finished) return;
    const reader = this.#exchange!.reader;
    this.#trailerText = reader.trailers;
    // The whole response came in one read with no body: one HEADERS frame that ends the
    // stream, unless trailers are to follow (then END_STREAM comes with them). Sent before
    // the stream counts as finished, so that a head HTTP/2 cannot carry still gets its 502.
    const headOnly = this.#pendingHead !== undefined;
    if (headOnly && !this.#respond(!this.#wantTrailers)) return;
    this.#finished = true;
    this.#exchange = null;
    const stream = this.#stream;
    if ((!headOnly || this.#wantTrailers) && !stream.destroyed && !stream.writableEnded && reader.gotHead) {
      stream.end();
    }
    this.#recordEnd(this.#status, undefined);
  }

  /** The stream is over: its times to the latency histograms, its line to the access log. */
  #recordEnd(status: number, reason: string | undefined): void {
    const endedAt = performance.now();
    countRequestTimes(this.#core.stats, status, this.#startedAt, this.#backendAt, endedAt);
    const log = this.#core.accessLog;
    if (log === undefined) return;
    const head = this.#head;
    log.write(
      {
        service: this.#core.service,
        client: this.#peer.forwardedFor,
        head: head !== undefined && head.method !== '' ? head : null,
        protocol: 'h2',
        status,
        bytesIn: this.#in,
        bytesOut: this.#out,
        headBytesOut: this.#headOut,
        startedAt: this.#startedAt,
        backendAt: this.#backendAt,
        tls: this.#peer.tls,
        requestId: this.#requestId,
        reason,
        grpcStatus: this.#grpcStatus,
      },
      endedAt,
    );
  }

  onSwitchingProtocols(
    head: Head,
    _raw: Buffer,
    start: number,
    end: number,
    rest: Buffer,
    conn: BackendConn,
  ): void {
    this.#exchange = null;
    const key = this.#websocketKey;
    const refusal =
      key === ''
        ? '101 on an HTTP/2 stream'
        : head.upgrade?.toLowerCase() !== 'websocket'
          ? `101 to a WebSocket handshake upgrades to ${JSON.stringify(head.upgrade ?? '')}`
          : head.header('sec-websocket-accept') !== websocketAccept(key)
            ? '101 with a Sec-WebSocket-Accept that does not match the key'
            : '';
    if (refusal !== '') {
      this.#refuseSwitch(conn, `bad response: ${refusal}`);
      return;
    }
    // The WebSocket is open: on HTTP/2 a 200 says so (RFC 8441 section 5), with the backend's
    // subprotocol and extensions; the accept key was the HTTP/1.1 handshake's own.
    const headers = http2ResponseHeaders(head, undefined);
    headers[':status'] = 200;
    delete headers['sec-websocket-accept'];
    const stream = this.#stream;
    try {
      stream.respond(headers);
    } catch (error) {
      this.#refuseSwitch(conn, `response head not valid for HTTP/2: ${(error as Error).message}`);
      return;
    }
    this.#responded = true;
    this.#finished = true;
    this.#status = 101;
    this.#backendAt = performance.now();
    this.#core.stats.bytesOut += end - start;
    this.#out += end - start;
    this.#headOut = end - start;
    // Logged as its 101, as a WebSocket over HTTP/1.1 is: the 200 is how HTTP/2 says it.
    this.#recordEnd(101, undefined);
    // The stream and the backend connection spliced: the tunnel holds itself through their listeners.
    new H2Tunnel(this.#core, stream, conn, rest);
  }

  /** A 101 this stream cannot take: the backend connection (the backend's protocol now) is closed, the client gets its 502. */
  #refuseSwitch(conn: BackendConn, detail: string): void {
    this.#core.pool.failure(detail, null, 502);
    conn.owner = null;
    conn.socket.destroy();
    this.onExchangeFailed(502, detail);
  }

  onExchangeFailed(status: number, detail: string): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#exchange = null;
    // A head not sent yet is replaced by the answer the client is owed.
    this.#pendingHead = undefined;
    if (this.#responded) {
      // A response already under way can only be cut: RST_STREAM with no END_STREAM before it,
      // so that the client knows the body is incomplete. close(code) would end the writable
      // side first, which sends END_STREAM, and the client would take half a body as whole
      // (issue 9, item 17); destroy() resets the stream without ending it.
      if (!this.#stream.destroyed) this.#stream.destroy(new Error('the backend failed mid-response'));
      this.#recordEnd(this.#status, failureReason(status, detail));
      return;
    }
    this.#respondCanned(status, failureReason(status, detail));
  }

  /**
   * A CORS preflight from a page of another site allowed to make gRPC-Web calls
   * (--grpc-web-origins), answered here with `headers`: a gRPC server cannot.
   */
  #answerPreflight(headers: http2.OutgoingHttpHeaders): void {
    headers['x-request-id'] = this.#requestId;
    this.#finished = true;
    this.#stream.respond(headers, { endStream: true });
    const headBytes = headerListLength(headers);
    this.#ownAnswerSent(204, headBytes, headBytes, PREFLIGHT_REASON);
  }

  #respondCanned(status: number, reason = REFUSAL_REASONS[status] ?? 'refused'): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) {
      countResponse(this.#core.stats, status);
      return;
    }
    // A head refused before it became a request gets an id too (see http1-reply.ts).
    if (this.#requestId === '') this.#requestId = newRequestUuid();
    // HTTP/1's answer, and counted as HTTP/1 counts it (as a backend's head is: in HTTP/1 form).
    const text = cannedResponse(status, false, this.#core.settings.hsts, this.#requestId);
    const { headers, body } = http2Answer(text);
    stream.respond(headers);
    stream.end(body);
    this.#ownAnswerSent(status, cannedHeadLength(text), text.length, reason);
  }

  /** An answer of the proxy's own has gone (`bytes` of it, its head `headBytes`): counted and logged. */
  #ownAnswerSent(status: number, headBytes: number, bytes: number, reason: string): void {
    countResponse(this.#core.stats, status);
    this.#core.stats.bytesOut += bytes;
    this.#out += bytes;
    this.#headOut = headBytes;
    this.#recordEnd(status, reason);
  }
}

export function noop(): void {}

// RFC 9113 error codes (node:http2's constants, without loading the module for them).
const NGHTTP2_CANCEL = 8;
const NGHTTP2_INTERNAL_ERROR = 2;
