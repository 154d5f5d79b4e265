// The answering side of one HTTP/1 client connection (http1.ts): what the
// backend exchange hands it (1xx, the response head held back for the first
// body bytes, the body with backpressure, the proxy's own answer when the
// exchange fails, a 101 that turns the connection into a tunnel), the
// connection's byte counts, and each request's access-log line.

// The module's own binding: the global `performance` is a getter, called on every use.
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import type * as tls from 'node:tls';
import { countRequestTimes, countResponse } from '../stats/index.js';
import { cannedHeadLength, cannedResponse, failureReason, type ProxyCore } from './core.js';
import { type ExchangeClient, RELAY_QUEUE_BYTES } from './exchange.js';
import {
  buildResponseHead,
  type Peer,
  RESPONSE_CLOSE,
  RESPONSE_KEEP,
  RESPONSE_KEEP_ALIVE_10,
} from './forwarding.js';
import type { Head } from './head.js';
import type { Request } from './http1-request.js';
import { type BackendConn, writeBorrowed } from './pool.js';
import { newRequestUuid } from './request-uuid.js';
import type { ResponseReader } from './response-reader.js';

/** What the answering side needs of its connection. */
export interface ReplyHost {
  /** The exchange is over: the connection forgets it (called before anything is written). */
  exchangeReleased(): void;
  /** The answer is written: read the next request, or close. */
  answered(): void;
  /** The backend took the request body queued so far. */
  requestDrained(): void;
  /** The backend answered: a pending 100-continue of the proxy's own is not needed. */
  stopContinue(): void;
  /** A 101 to an upgrade request (its head written): the connection is a tunnel from now on. */
  upgraded(conn: BackendConn, rest: Buffer): void;
}

export class Http1Reply implements ExchangeClient {
  readonly #core: ProxyCore;
  readonly #socket: tls.TLSSocket;
  /** The socket is corked until the next check phase (gatherWrites). */
  #gathering = false;
  readonly #peer: Peer;
  /** The connection's head object (parsed anew for each request), for the access log. */
  readonly #head: Head;
  readonly #reader: ResponseReader;
  readonly #host: ReplyHost;
  /** The request being answered; null between requests. */
  request: Request | null = null;
  /** The connection closes after this answer. */
  closeAfter = false;
  /** Bytes read from and written to the client on this connection, and where the current request's reading began. */
  #in = 0;
  #out = 0;
  #inMark = 0;

  constructor(
    core: ProxyCore,
    socket: tls.TLSSocket,
    peer: Peer,
    head: Head,
    reader: ResponseReader,
    host: ReplyHost,
  ) {
    this.#core = core;
    this.#socket = socket;
    this.#peer = peer;
    this.#head = head;
    this.#reader = reader;
    this.#host = host;
  }

  // ---- counts and the access log -----------------------------------------

  /** Bytes read from the client; `fresh`: the first of a request not yet begun. */
  received(bytes: number, fresh: boolean): void {
    this.#core.stats.bytesIn += bytes;
    if (fresh) this.#inMark = this.#in;
    this.#in += bytes;
  }

  /** The next request's bytes begin `buffered` bytes before the end of what was read. */
  nextFrom(buffered: number): void {
    this.#inMark = this.#in - buffered;
  }

  /** `request` is the one answered from now on. */
  begin(request: Request): void {
    this.request = request;
    request.startedAt = performance.now();
    if (this.#core.accessLog !== undefined) {
      request.inAt = this.#inMark;
      request.outAt = this.#out;
    }
  }

  /** Text of the proxy's own to the client. */
  write(text: string): boolean {
    this.#countOut(text.length);
    return this.#socket.write(text, 'latin1');
  }

  /** The proxy's own answer `status` to the current request (or to a head refused before it became one). */
  answer(status: number, reason: string | undefined): void {
    countResponse(this.#core.stats, status);
    const request = this.request;
    // A head refused before it became a request gets an id too: the one the client quotes from
    // the answer is the one its log line holds.
    const id = request === null || request.id === '' ? newRequestUuid() : request.id;
    const outFrom = this.#outFrom();
    const text = cannedResponse(status, this.closeAfter, this.#core.settings.hsts, id);
    this.write(text);
    this.#record(status, reason, id, outFrom, cannedHeadLength(text));
  }

  /**
   * The proxy's own bodiless answer `status` to the current request, with `fields` (HTTP/1.1
   * lines): a CORS preflight's (--grpc-web-origins), which a gRPC server cannot answer.
   */
  answerWith(status: number, fields: string, reason: string): void {
    countResponse(this.#core.stats, status);
    const request = this.request!;
    const outFrom = this.#outFrom();
    const hsts = this.#core.settings.hsts;
    const text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${fields}X-Request-Id: ${request.id}\r\n${hsts === undefined ? '' : `Strict-Transport-Security: ${hsts}\r\n`}${this.closeAfter ? 'Connection: close\r\n' : ''}\r\n`;
    this.write(text);
    request.started = true;
    this.#record(status, reason, request.id, outFrom, text.length);
  }

  /** The request is over (answered, cut, or its client gone): its times are counted and its line logged. */
  recordEnd(status: number, reason: string | undefined): void {
    this.#record(status, reason, this.request?.id ?? '', this.#outFrom(), 0);
  }

  /** Where the bytes of the current answer begin: at its request's start, else from now on. */
  #outFrom(): number {
    const request = this.request;
    return request === null || this.#core.accessLog === undefined ? this.#out : request.outAt;
  }

  /**
   * The current request (or a head refused before it became one) is over: its times to the
   * latency histograms, its line to the access log; `ownHead`: the head of the proxy's own
   * answer, when it gave one.
   */
  #record(
    status: number,
    reason: string | undefined,
    requestId: string,
    outFrom: number,
    ownHead: number,
  ): void {
    const request = this.request;
    const startedAt = request?.startedAt ?? 0;
    const backendAt = request?.backendAt ?? 0;
    const endedAt = performance.now();
    countRequestTimes(this.#core.stats, status, startedAt, backendAt, endedAt);
    const log = this.#core.accessLog;
    if (log === undefined) return;
    log.write(
      {
        service: this.#core.service,
        client: this.#peer.forwardedFor,
        head: request === null ? null : this.#head,
        protocol: request?.http10 ? 'HTTP/1.0' : 'HTTP/1.1',
        status,
        bytesIn: this.#in - (request?.inAt ?? this.#inMark),
        bytesOut: this.#out - outFrom,
        headBytesOut: (request?.headOut ?? 0) + ownHead,
        startedAt,
        backendAt,
        tls: this.#peer.tls,
        requestId,
        reason,
        grpcStatus: request?.grpcStatus ?? -1,
      },
      endedAt,
    );
  }

  #countOut(bytes: number): void {
    this.#core.stats.bytesOut += bytes;
    this.#out += bytes;
  }

  // ---- the exchange's events ---------------------------------------------

  onRequestDrained(): void {
    this.#host.requestDrained();
  }

  /**
   * What is written to the client until this turn of the event loop's I/O is handled goes out in
   * one write: an h2c answer's message and its trailers (http1-h2c.ts) come as separate events of
   * one backend read, and each write to a TLS socket is a record and a system call of its own.
   */
  gatherWrites(): void {
    if (this.#gathering) return;
    this.#gathering = true;
    this.#socket.cork();
    setImmediate(this.#releaseWrites);
  }

  #releaseWrites = (): void => {
    this.#gathering = false;
    this.#socket.uncork();
  };

  onClientStalled(): void {
    // The backend waited the whole idle timeout for this client to take data.
    this.#socket.destroy();
  }

  onInformational(head: Head, raw: Buffer, start: number, end: number): void {
    const request = this.request!;
    // HTTP/1.0 clients do not understand 1xx (RFC 9110 section 15.2).
    if (request.http10) return;
    if (head.status === 100) {
      this.#host.stopContinue();
      // The proxy already said it; once is enough.
      if (request.ownContinue) return;
    }
    this.#countOut(end - start);
    request.headOut += end - start;
    writeBorrowed(this.#socket, raw.subarray(start, end));
  }

  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void {
    const request = this.request!;
    request.backendAt = performance.now();
    this.#host.stopContinue();
    const reader = this.#reader;
    request.status = head.status;
    const bodyless = reader.active === false;
    const dechunk = request.http10 && head.chunked && !bodyless;
    if (reader.untilClose || dechunk || !request.done || this.#core.draining) this.closeAfter = true;
    const connection = this.closeAfter
      ? RESPONSE_CLOSE
      : request.keepAlive10
        ? RESPONSE_KEEP_ALIVE_10
        : RESPONSE_KEEP;
    request.holdHead(buildResponseHead(head, connection, dechunk, this.#core.settings.hsts), raw, start, end);
    // Written with the first body bytes when they come in the same read; else after the read.
  }

  afterBackendRead(): void {
    this.#flushHead();
  }

  /** Writes a response head still held back (no body bytes came with it). */
  #flushHead(): void {
    const out = this.request?.takeHead();
    if (out === undefined) return;
    this.#countOut(out.length);
    if (typeof out === 'string') this.#socket.write(out, 'latin1');
    else writeBorrowed(this.#socket, out);
  }

  onResponseBody(buf: Buffer, start: number, end: number): boolean {
    const request = this.request!;
    let out = request.withHead(buf, start, end);
    if (out === undefined) {
      this.#flushHead();
      out = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    }
    this.#countOut(out.length);
    // A socket's write buffer is "full" at 16 KiB, less than one backend read: pausing there would
    // stop and restart the backend on every read. Pause once a few reads are queued instead ('drain'
    // still comes, when the queue is empty).
    return writeBorrowed(this.#socket, out) || this.#socket.writableLength <= RELAY_QUEUE_BYTES;
  }

  onExchangeEnd(): void {
    this.#host.exchangeReleased();
    this.#flushHead();
    const request = this.request!;
    this.recordEnd(request.status, undefined);
    if (!request.done) this.closeAfter = true;
    this.#host.answered();
  }

  onExchangeFailed(status: number, detail: string): void {
    this.#host.exchangeReleased();
    const request = this.request!;
    const reason = failureReason(status, detail);
    // A head still held back (no byte of it written) can be replaced by the answer the client
    // is owed: a malformed body right after the head used to close the connection with no
    // answer at all (issue 9, item 23). Once a byte went out, only a cut is left, and its line.
    if (request.started && !request.dropHead()) {
      this.recordEnd(request.status, reason);
      this.#socket.destroy();
      return;
    }
    if (!request.done) this.closeAfter = true;
    this.answer(status, reason);
    this.#host.answered();
  }

  onSwitchingProtocols(
    head: Head,
    raw: Buffer,
    start: number,
    end: number,
    rest: Buffer,
    conn: BackendConn,
  ): void {
    this.#host.exchangeReleased();
    const request = this.request!;
    if (!request.upgrade) {
      // A 101 nobody asked for: the connection is the backend's protocol now, not HTTP.
      this.#core.pool.failure('bad response: 101 without an upgrade request', null, 502);
      conn.owner = null;
      conn.socket.destroy();
      this.onExchangeFailed(502, 'bad response: 101 without an upgrade request');
      return;
    }
    const text = buildResponseHead(head, RESPONSE_KEEP, false);
    request.headOut += text === null ? end - start : text.length;
    if (text === null) {
      this.#countOut(end - start);
      writeBorrowed(this.#socket, raw.subarray(start, end));
    } else this.write(text);
    request.started = true;
    this.recordEnd(101, undefined);
    this.#host.upgraded(conn, rest);
  }
}
