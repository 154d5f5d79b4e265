// One HTTP/1.x client connection (after TLS): reads request heads strictly and
// hands each request to a backend exchange (exchange.ts; a gRPC-Web call to an
// h2c backend to the bridge of http1-h2c.ts) with a rewritten head,
// relaying the body as raw bytes with backpressure (http1-upload.ts); the
// answers are written by its reply side (http1-reply.ts). Requests are handled
// one at a time in order; pipelined bytes wait, with the client paused, until
// the response before them is complete. After a 101 the two sockets are
// spliced (tunnel.ts). What one request needs lives in one object, made per
// request.
import type * as tls from 'node:tls';
import type { Watch } from '../sockets/inactivity.js';
import { SLOT } from '../sockets/live-set.js';
import { type ClientConnection, type ProxyCore, REFUSAL_REASONS, reportSocketError } from './core.js';
import { BackendExchange, type Exchange } from './exchange.js';
import { buildRequestHead, type Peer, requestIdFor } from './forwarding.js';
import { grpcWebOf, PREFLIGHT_REASON } from './grpc-web.js';
import { Head } from './head.js';
import { H2cBridge } from './http1-h2c.js';
import { HEAD_PARTIAL, HEAD_READ, RequestIntake } from './http1-intake.js';
import { Http1Reply, type ReplyHost } from './http1-reply.js';
import { Request } from './http1-request.js';
import { Http1Upload, type UploadHost } from './http1-upload.js';
import { http1Fields } from './http2-head.js';
import type { BackendConn } from './pool.js';
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

export class Http1Connection implements ClientConnection, ReplyHost {
  [SLOT] = -1;
  readonly #socket: tls.TLSSocket;
  readonly #core: ProxyCore;
  readonly #peer: Peer;
  readonly #head = new Head();
  readonly #reader: ResponseReader;
  readonly #reply: Http1Reply;
  /** The connection's inactivity timeout (see #onTimeout). */
  readonly #watch: Watch;
  /** What the client sent that is not handled yet, and the request heads read from it. */
  readonly #intake: RequestIntake;
  /** The request body's side, made when the first request with a body comes. */
  #upload: Http1Upload | null = null;
  #state = C_IDLE;
  #exchange: Exchange | null = null;
  #tunnel: Tunnel | null = null;
  #clientPaused = false;

  constructor(core: ProxyCore, socket: tls.TLSSocket, peer: Peer) {
    this.#core = core;
    this.#socket = socket;
    this.#peer = peer;
    this.#reader = new ResponseReader(core.limits.maxHeaderBytes);
    this.#reply = new Http1Reply(core, socket, peer, this.#head, this.#reader, this);
    core.connections.add(this);
    socket.on('data', this.#onData);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    this.#watch = core.sweep.watch(socket, this.#onTimeout);
    this.#intake = new RequestIntake(core.limits, this.#watch);
  }

  drain(): void {
    this.#reply.closeAfter = true;
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
    this.#reply.received(chunk.length, this.#state === C_IDLE && this.#intake.pending === null);
    switch (this.#state) {
      case C_IDLE:
      case C_HEAD:
        this.#intake.add(chunk);
        this.#readHead();
        break;
      case C_BODY:
        this.#upload?.feed(this.#exchange, chunk, 0);
        break;
      case C_WAIT:
        // Pipelined: keep it for after the response, and stop reading meanwhile.
        this.#intake.add(chunk);
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

  // One inactivity timeout per connection (every read and write starts it again): idle between
  // requests, the header timeout while a head is incomplete. While the backend
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
    this.#core.sweep.unwatch(this.#watch);
    this.#intake.take();
    this.#reply.request?.held?.close();
    // An exchange in flight cannot complete: its backend connection is in an unknown state.
    if (this.#exchange !== null) {
      this.#exchange.abort();
      this.#exchange = null;
      // The client left before its answer: nginx's 499, so that the log has a line for it.
      this.#reply.recordEnd(499, 'client went away');
    }
    this.#tunnel?.clientGone();
    this.#detach();
  };

  /**
   * Nothing of this connection stays reachable from its socket. Node frees a closed TLS socket's
   * native side only when a full collection finds it (its wrapper is weak, and a young
   * collection keeps such wrappers), so whatever the socket still reaches lives until then and
   * is copied and promoted on the way: the heads, the reader, the reply (docs/benchmarks.md,
   * "What outlives a connection or a stream").
   */
  #detach(): void {
    const socket = this.#socket;
    socket.off('data', this.#onData);
    socket.off('drain', this.#onDrain);
    socket.off('close', this.#onClose);
    // 'close' is a socket's last event; an error after it has no one to tell.
    socket.off('error', this.#onError);
    socket.on('error', ignoreLateError);
  }

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
    // Nothing pending: no head has begun, and the connection stays idle.
    if (this.#intake.pending === null) return;
    const outcome = this.#intake.read(this.#head, this.#state === C_IDLE);
    if (outcome === HEAD_READ) this.#startRequest();
    else if (outcome === HEAD_PARTIAL) this.#state = C_HEAD;
    else this.#reject(outcome, this.#intake.refusal);
  }

  /** Refuses a request the proxy will not forward, and closes the connection. */
  #reject(status: number, reason?: string): void {
    if (reason !== undefined && this.#core.logger.isLevelEnabled('debug')) {
      this.#core.logger.debug({ service: this.#core.service, status, reason }, 'request refused');
    }
    this.#reply.closeAfter = true;
    this.#reply.answer(status, reason ?? REFUSAL_REASONS[status] ?? 'refused');
    this.#close();
  }

  /**
   * Ends the connection. `atOnce`: the client said it closes and sent nothing more, so the
   * socket goes as soon as the answer is out (Node's own HTTP server does the same). Otherwise
   * the client may still be sending (a body not read, a pipelined request): the socket stays
   * open, reading, until the client closes its side, so that the kernel does not answer those
   * bytes with a reset that could discard the answer before the client reads it.
   */
  #close(atOnce = false): void {
    this.#state = C_CLOSED;
    this.#intake.take();
    const socket = this.#socket;
    if (atOnce) {
      socket.destroySoon();
      return;
    }
    socket.end();
    // A client that never closes its side must not keep the socket.
    this.#watch.set(this.#core.limits.idleTimeoutMs);
  }

  #startRequest(): void {
    const head = this.#head;
    const core = this.#core;
    if (head.method === 'CONNECT') {
      this.#reject(405, 'connect');
      return;
    }
    const http10 = head.minor === 0;
    const reply = this.#reply;
    const request = new Request(head, core.draining || reply.closeAfter);
    if (core.draining || request.clientCloses) reply.closeAfter = true;
    // The request's id, and the access log's marks.
    request.id = requestIdFor(head, core.settings);
    // A gRPC-Web call goes to an h2c backend as HTTP/2, as a gRPC server needs (http1-h2c.ts).
    request.toH2c =
      core.h2c !== undefined && !request.upgrade && grpcWebOf(head.header('content-type')) !== null;
    reply.begin(request);
    const preflight = core.h2c === undefined ? null : (core.grpcWebOrigins?.preflightFor(head) ?? null);
    if (preflight !== null) {
      // A gRPC-Web page's CORS preflight, answered here as on HTTP/2 (a gRPC server cannot).
      if (!request.done) reply.closeAfter = true;
      reply.answerWith(204, http1Fields(preflight), PREFLIGHT_REASON);
      this.answered();
      return;
    }
    if (request.done) {
      this.#state = C_WAIT;
      const exchange = this.#openExchange(request, false);
      exchange.endRequest();
      exchange.writeHead(buildRequestHead(head, this.#peer, core.settings, request.upgrade, request.id));
      // Anything after a bodiless request is pipelined: it waits.
      if (this.#intake.pending !== null) this.#pauseClient();
      return;
    }
    this.#state = C_BODY;
    const rest = this.#intake.take();
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

  #openExchange(request: Request, sendsBody: boolean): Exchange {
    const core = this.#core;
    const noBody = this.#head.method === 'HEAD';
    const exchange =
      request.toH2c && core.h2c !== undefined
        ? new H2cBridge(core, core.h2c, this.#reply, this.#reader, request, noBody)
        : new BackendExchange(core, this.#reply, this.#reader, sendsBody, noBody, request.http10);
    this.#exchange = exchange;
    return exchange;
  }

  /** The request cannot go on: its exchange is dropped; the client gets `status`, or a cut once a response started. */
  #fail(status: number, reason?: string): void {
    this.#exchange?.abort();
    this.#exchange = null;
    if (this.#reply.request?.started) {
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
          this.#intake.keep(rest);
          this.#pauseClient();
        }
        if (this.#state === C_BODY) this.#state = C_WAIT;
      },
      fail: (status: number, reason?: string) => this.#fail(status, reason),
      sayContinue: () => {
        this.#reply.write('HTTP/1.1 100 Continue\r\n\r\n');
      },
      current: (request: Request) => this.#reply.request === request && this.#state !== C_CLOSED,
      openExchange: (request: Request) => this.#openExchange(request, true),
    };
  }

  // ---- what the reply side asks of the connection (ReplyHost) ----------------

  exchangeReleased(): void {
    this.#exchange = null;
  }

  requestDrained(): void {
    const held = this.#reply.request?.held;
    if (held != null) held.resume();
    else if (this.#state === C_BODY) this.#resumeClient();
  }

  stopContinue(): void {
    this.#upload?.stopContinue();
  }

  /** After a 101: the client's bytes and the backend's are spliced. */
  upgraded(conn: BackendConn, rest: Buffer): void {
    this.#state = C_TUNNEL;
    const tunnel = new Tunnel(this.#core, this.#socket, conn, () => this.#resumeClient());
    this.#tunnel = tunnel;
    if (rest.length > 0) tunnel.fromBackend(rest);
    const pending = this.#intake.take();
    if (pending !== null) tunnel.toBackend(pending);
    this.#resumeClient();
  }

  /** The answer is written: the next request (perhaps pipelined already), or the close. */
  answered(): void {
    this.#upload?.stopContinue();
    const reply = this.#reply;
    const request = reply.request;
    reply.request = null;
    if (reply.closeAfter) {
      this.#close(request?.clientCloses === true && request.done && this.#intake.pending === null);
      return;
    }
    this.#state = C_IDLE;
    // Bytes of the next request already read (pipelined) count from here.
    reply.nextFrom(this.#intake.pending?.length ?? 0);
    this.#readHead();
    if (this.#state === C_IDLE || this.#state === C_HEAD) this.#resumeClient();
  }
}

function ignoreLateError(): void {}
