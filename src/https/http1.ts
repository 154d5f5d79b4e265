// One HTTP/1.x client connection (after TLS): reads request heads strictly and
// hands each request to a backend exchange (exchange.ts) with a rewritten head,
// relaying the body as raw bytes with backpressure. Requests are handled one at
// a time in order; pipelined bytes wait, with the client paused, until the
// response before them is complete. After a 101 the two sockets are spliced
// (tunnel.ts). What one request needs lives in one object, made per request.
import type * as tls from 'node:tls';
import { countResponse } from '../stats/index.js';
import {
  type ClientConnection,
  cannedResponse,
  type ProxyCore,
  REFUSAL_REASONS,
  reportSocketError,
} from './core.js';
import { BackendExchange, type ExchangeClient, RELAY_QUEUE_BYTES } from './exchange.js';
import {
  buildRequestHead,
  buildResponseHead,
  type Peer,
  RESPONSE_CLOSE,
  RESPONSE_KEEP,
  RESPONSE_KEEP_ALIVE_10,
  requestIdFor,
} from './forwarding.js';
import { findHeadEnd, Head, parseRequestHead, statusForHeadError } from './head-parser.js';
import { Request } from './http1-request.js';
import { Http1Upload, type UploadHost } from './http1-upload.js';
import { type BackendConn, writeBorrowed } from './pool.js';
import { ResponseReader } from './response-reader.js';
import { Tunnel } from './tunnel.js';

/** Waiting for a request; nothing buffered. */
const C_IDLE = 0;
/** Part of a request head received. */
const C_HEAD = 1;
/** Head forwarded; relaying the request body. */
const C_BODY = 2;
/** Request forwarded whole; waiting for the response to end. */
const C_WAIT = 3;
/** After 101: bytes spliced both ways. */
const C_TUNNEL = 4;
const C_CLOSED = 5;

export class Http1Connection implements ExchangeClient, ClientConnection {
  readonly #socket: tls.TLSSocket;
  readonly #core: ProxyCore;
  readonly #peer: Peer;
  readonly #head = new Head();
  readonly #reader: ResponseReader;
  /** The request body's side, made when the first request with a body comes. */
  #upload: Http1Upload | null = null;
  #state = C_IDLE;
  #buf: Buffer | null = null;
  #headStartedAt = 0;
  #request: Request | null = null;
  #exchange: BackendExchange | null = null;
  #tunnel: Tunnel | null = null;
  #closeAfter = false;
  #clientPaused = false;
  #headerTimer = false;
  /** Bytes read from and written to the client on this connection, and where the current request's reading began. */
  #in = 0;
  #out = 0;
  #inMark = 0;
  /** The negotiated TLS version, read once (access log). */
  #tlsVersion: string | undefined;

  constructor(core: ProxyCore, socket: tls.TLSSocket, peer: Peer) {
    this.#core = core;
    this.#socket = socket;
    this.#peer = peer;
    this.#reader = new ResponseReader(core.limits.maxHeaderBytes);
    core.connections.add(this);
    socket.on('data', this.#onData);
    socket.on('drain', this.#onDrain);
    socket.on('timeout', this.#onTimeout);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    // The first request's head is due within the header timeout from the handshake, not the
    // idle timeout: a client that connects and sends nothing is a half-open one (issue 9, item 20).
    this.#headerTimer = core.limits.headerTimeoutMs !== core.limits.idleTimeoutMs;
    socket.setTimeout(core.limits.headerTimeoutMs);
  }

  drain(): void {
    this.#closeAfter = true;
    if (this.#state === C_IDLE) {
      // Nothing in flight: close at once, whatever the client does with its side.
      this.#state = C_CLOSED;
      this.#socket.destroySoon();
    }
  }

  destroy(): void {
    this.#socket.destroy();
  }

  // ---- client side -------------------------------------------------------

  #onData = (chunk: Buffer): void => {
    this.#core.stats.bytesIn += chunk.length;
    if (this.#state === C_IDLE && this.#buf === null) this.#inMark = this.#in;
    this.#in += chunk.length;
    switch (this.#state) {
      case C_IDLE:
      case C_HEAD:
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#readHead();
        break;
      case C_BODY:
        this.#upload?.feed(this.#exchange, chunk, 0);
        break;
      case C_WAIT:
        // Pipelined: keep it for after the response, and stop reading meanwhile.
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#pauseClient();
        break;
      case C_TUNNEL:
        if (!this.#tunnel?.toBackend(chunk)) this.#pauseClient();
        break;
    }
  };

  #onDrain = (): void => {
    this.#exchange?.clientDrained();
    this.#tunnel?.clientDrained();
  };

  // One inactivity timer per connection, armed once (Node refreshes it on every read and write):
  // idle between requests, the header timeout while a head is incomplete. While the backend
  // works or a tunnel is open, the backend's timer decides instead.
  #onTimeout = (): void => {
    const state = this.#state;
    if (state === C_HEAD) {
      this.#reject(408);
      return;
    }
    // An upload held back by a slow backend is not idle.
    if (state === C_BODY && this.#clientPaused) return;
    if (state !== C_WAIT && state !== C_TUNNEL) this.#socket.destroy();
  };

  #onError = (error: Error): void => {
    // The close handler cleans up; this only decides how loudly to say it.
    reportSocketError(this.#core, error, 'http1');
  };

  #onClose = (): void => {
    this.#upload?.close();
    this.#state = C_CLOSED;
    this.#core.connections.delete(this);
    this.#buf = null;
    this.#request?.held?.close();
    // An exchange in flight cannot complete: its backend connection is in an unknown state.
    if (this.#exchange !== null) {
      this.#exchange.abort();
      this.#exchange = null;
      // The client left before its answer: nginx's 499, so that the log has a line for it.
      this.#logAccess(499, 'client went away');
    }
    this.#tunnel?.clientGone();
  };

  #pauseClient(): void {
    if (!this.#clientPaused) {
      this.#clientPaused = true;
      this.#socket.pause();
    }
  }

  #resumeClient(): void {
    if (this.#clientPaused) {
      this.#clientPaused = false;
      this.#socket.resume();
    }
  }

  #readHead(): void {
    const buf = this.#buf;
    if (buf === null) return;
    const limits = this.#core.limits;
    const end = findHeadEnd(buf, 0, buf.length);
    if (end === -2) {
      this.#reject(400, 'bad-line-ending');
      return;
    }
    if (end === -1) {
      if (buf.length > limits.maxHeaderBytes) {
        this.#reject(431);
        return;
      }
      if (this.#state === C_IDLE) {
        this.#state = C_HEAD;
        this.#headStartedAt = Date.now();
        if (limits.headerTimeoutMs !== limits.idleTimeoutMs) {
          this.#headerTimer = true;
          this.#socket.setTimeout(limits.headerTimeoutMs);
        }
      } else if (Date.now() - this.#headStartedAt > limits.headerTimeoutMs) {
        this.#reject(408);
      }
      return;
    }
    if (end > limits.maxHeaderBytes) {
      this.#reject(431);
      return;
    }
    const error = parseRequestHead(this.#head, buf, 0, end);
    if (error !== null) {
      this.#reject(statusForHeadError(error), error);
      return;
    }
    this.#buf = end < buf.length ? buf.subarray(end) : null;
    this.#startRequest();
  }

  /** Refuses a request the proxy will not forward, and closes the connection. */
  #reject(status: number, reason?: string): void {
    if (reason !== undefined && this.#core.logger.isLevelEnabled('debug')) {
      this.#core.logger.debug({ service: this.#core.service, status, reason }, 'request refused');
    }
    countResponse(this.#core.stats, status);
    this.#writeClient(cannedResponse(status, true, this.#core.settings.hsts, this.#request?.id));
    this.#logAccess(status, reason ?? REFUSAL_REASONS[status] ?? 'refused');
    this.#close();
  }

  #close(): void {
    this.#state = C_CLOSED;
    this.#buf = null;
    const socket = this.#socket;
    socket.end();
    // A client that never closes its side must not keep the socket.
    socket.setTimeout(this.#core.limits.idleTimeoutMs);
  }

  #writeClient(text: string): boolean {
    this.#countOut(text.length);
    return this.#socket.write(text, 'latin1');
  }

  /** The negotiated TLS version, read once (access log). */
  #tls(): string {
    if (this.#tlsVersion === undefined) this.#tlsVersion = this.#socket.getProtocol() ?? '';
    return this.#tlsVersion;
  }

  #countOut(bytes: number): void {
    this.#core.stats.bytesOut += bytes;
    this.#out += bytes;
  }

  /** One access-log line for the request (or for a head refused before it became one). */
  #logAccess(status: number, reason: string | undefined): void {
    const log = this.#core.accessLog;
    if (log === undefined) return;
    const request = this.#request;
    log.write({
      service: this.#core.service,
      client: this.#peer.forwardedFor,
      head: request === null ? null : this.#head,
      protocol: request?.http10 ? 'HTTP/1.0' : 'HTTP/1.1',
      status,
      bytesIn: this.#in - (request?.inAt ?? this.#inMark),
      bytesOut: this.#out - (request?.outAt ?? this.#out),
      startedAt: request?.startedAt ?? 0,
      backendAt: request?.backendAt ?? 0,
      tls: this.#tls(),
      requestId: request?.id ?? '',
      reason,
    });
  }

  #startRequest(): void {
    const head = this.#head;
    const core = this.#core;
    if (head.method === 'CONNECT') {
      this.#reject(405, 'connect');
      return;
    }
    const http10 = head.minor === 0;
    this.#closeAfter =
      core.draining ||
      this.#closeAfter ||
      (http10 ? !head.connectionHas('keep-alive') : head.connectionHas('close'));
    const request = new Request(head, this.#closeAfter);
    this.#request = request;
    // The head is taken: the idle timeout again, the request's id, the access log's marks.
    if (this.#headerTimer) {
      this.#headerTimer = false;
      this.#socket.setTimeout(core.limits.idleTimeoutMs);
    }
    request.id = requestIdFor(head, core.settings);
    if (core.accessLog !== undefined) {
      request.startedAt = performance.now();
      request.inAt = this.#inMark;
      request.outAt = this.#out;
    }
    const rest = this.#buf;
    if (request.done) {
      this.#state = C_WAIT;
      const exchange = this.#openExchange(request, false);
      exchange.endRequest();
      exchange.writeHead(buildRequestHead(head, this.#peer, core.settings, request.upgrade, request.id));
      // Anything after a bodiless request is pipelined: it waits.
      if (rest !== null) this.#pauseClient();
      return;
    }
    this.#state = C_BODY;
    this.#buf = null;
    this.#upload ??= new Http1Upload(core, this.#uploadHost());
    const upload = this.#upload;
    upload.begin(request);
    if (head.expectContinue && !http10) upload.expectContinue(request);
    let flowing = true;
    if (request.held !== null) {
      // Nothing goes to the backend until the body has ended.
      request.heldHead = buildRequestHead(head, this.#peer, core.settings, false, request.id, true).slice(
        0,
        -2,
      );
      if (rest !== null) flowing = upload.feed(null, rest, 0);
    } else {
      const exchange = this.#openExchange(request, true);
      exchange.corked(() => {
        exchange.writeHead(buildRequestHead(head, this.#peer, core.settings, request.upgrade, request.id));
        if (rest !== null) flowing = upload.feed(exchange, rest, 0);
      });
    }
    // Reading may have been paused for pipelined bytes; the body must flow now.
    if (this.#state === C_BODY && flowing) this.#resumeClient();
  }

  #openExchange(request: Request, sendsBody: boolean): BackendExchange {
    const exchange = new BackendExchange(
      this.#core,
      this,
      this.#reader,
      sendsBody,
      this.#head.method === 'HEAD',
      request.http10,
    );
    this.#exchange = exchange;
    return exchange;
  }

  /** The request cannot go on: its exchange is dropped; the client gets `status`, or a cut once a response started. */
  #fail(status: number, reason?: string): void {
    this.#exchange?.abort();
    this.#exchange = null;
    if (this.#request?.started) {
      this.#socket.destroy();
      return;
    }
    this.#reject(status, reason);
  }

  #uploadHost(): UploadHost {
    return {
      pauseClient: () => this.#pauseClient(),
      resumeBody: () => {
        if (this.#state === C_BODY) this.#resumeClient();
      },
      bodyEnded: (rest: Buffer | null) => {
        if (rest !== null) {
          this.#buf = rest;
          this.#pauseClient();
        }
        if (this.#state === C_BODY) this.#state = C_WAIT;
      },
      fail: (status: number, reason?: string) => this.#fail(status, reason),
      sayContinue: () => {
        this.#writeClient('HTTP/1.1 100 Continue\r\n\r\n');
      },
      current: (request: Request) => this.#request === request && this.#state !== C_CLOSED,
      openExchange: (request: Request) => this.#openExchange(request, true),
    };
  }

  // ---- the exchange's events ---------------------------------------------

  onRequestDrained(): void {
    const held = this.#request?.held;
    if (held != null) held.resume();
    else if (this.#state === C_BODY) this.#resumeClient();
  }

  onClientStalled(): void {
    // The backend waited the whole idle timeout for this client to take data.
    this.#socket.destroy();
  }

  onInformational(head: Head, raw: Buffer, start: number, end: number): void {
    const request = this.#request!;
    // HTTP/1.0 clients do not understand 1xx (RFC 9110 section 15.2).
    if (request.http10) return;
    if (head.status === 100) {
      this.#upload?.stopContinue();
      // The proxy already said it; once is enough.
      if (request.ownContinue) return;
    }
    this.#countOut(end - start);
    writeBorrowed(this.#socket, raw.subarray(start, end));
  }

  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void {
    if (this.#core.accessLog !== undefined) this.#request!.backendAt = performance.now();
    this.#upload?.stopContinue();
    const request = this.#request!;
    const reader = this.#reader;
    request.status = head.status;
    const bodyless = reader.active === false;
    const dechunk = request.http10 && head.chunked && !bodyless;
    if (reader.untilClose || dechunk || !request.done || this.#core.draining) this.#closeAfter = true;
    const connection = this.#closeAfter
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
    const out = this.#request?.takeHead();
    if (out === undefined) return;
    this.#countOut(out.length);
    if (typeof out === 'string') this.#socket.write(out, 'latin1');
    else writeBorrowed(this.#socket, out);
  }

  onResponseBody(buf: Buffer, start: number, end: number): boolean {
    const request = this.#request!;
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
    this.#flushHead();
    this.#exchange = null;
    this.#logAccess(this.#request!.status, undefined);
    if (!this.#request!.done) this.#closeAfter = true;
    this.#afterExchange();
  }

  onExchangeFailed(status: number): void {
    this.#exchange = null;
    const request = this.#request!;
    // A head still held back (no byte of it written) can be replaced by the answer the client
    // is owed: a malformed body right after the head used to close the connection with no
    // answer at all (issue 9, item 23). Once a byte went out, only a cut is left.
    if (request.started && !request.dropHead()) {
      this.#socket.destroy();
      return;
    }
    if (!request.done) this.#closeAfter = true;
    countResponse(this.#core.stats, status);
    this.#writeClient(cannedResponse(status, this.#closeAfter, this.#core.settings.hsts, request.id));
    this.#logAccess(status, REFUSAL_REASONS[status]);
    this.#afterExchange();
  }

  onSwitchingProtocols(
    head: Head,
    raw: Buffer,
    start: number,
    end: number,
    rest: Buffer,
    conn: BackendConn,
  ): void {
    this.#exchange = null;
    if (!this.#request!.upgrade) {
      // A 101 nobody asked for: the connection is the backend's protocol now, not HTTP.
      this.#core.pool.failure('bad response: 101 without an upgrade request', null);
      conn.owner = null;
      conn.socket.destroy();
      this.onExchangeFailed(502);
      return;
    }
    const text = buildResponseHead(head, RESPONSE_KEEP, false);
    if (text === null) {
      this.#countOut(end - start);
      writeBorrowed(this.#socket, raw.subarray(start, end));
    } else this.#writeClient(text);
    this.#state = C_TUNNEL;
    this.#request!.started = true;
    this.#logAccess(101, undefined);
    const tunnel = new Tunnel(this.#core, this.#socket, conn, () => this.#resumeClient());
    this.#tunnel = tunnel;
    if (rest.length > 0) tunnel.fromBackend(rest);
    const pending = this.#buf;
    this.#buf = null;
    if (pending !== null) tunnel.toBackend(pending);
    this.#resumeClient();
  }

  #afterExchange(): void {
    this.#upload?.stopContinue();
    this.#request = null;
    if (this.#closeAfter) {
      this.#close();
      return;
    }
    this.#state = C_IDLE;
    // Bytes of the next request already read (pipelined) count from here.
    this.#inMark = this.#in - (this.#buf?.length ?? 0);
    if (this.#buf !== null) this.#readHead();
    if (this.#state === C_IDLE || this.#state === C_HEAD) this.#resumeClient();
  }
}
