// One HTTP/1.x client connection (after TLS): reads request heads strictly,
// forwards each request to a pooled backend connection with a rewritten head
// (one write) and relays bodies as raw bytes with backpressure both ways.
// Requests are handled one at a time in order; pipelined bytes wait, with the
// client paused, until the response before them is complete. After a 101 the
// two sockets are spliced.
import type * as tls from 'node:tls';
import { countResponse } from '../stats/index.js';
import { ChunkedParser } from './chunked.js';
import { type ClientConnection, cannedResponse, type ProxyCore, reportSocketError } from './core.js';
import {
  buildRequestHead,
  buildResponseHead,
  type Peer,
  RESPONSE_CLOSE,
  RESPONSE_KEEP,
  RESPONSE_KEEP_ALIVE_10,
} from './forwarding.js';
import { findHeadEnd, Head, parseRequestHead, statusForHeadError } from './head-parser.js';
import type { BackendConn, BackendOwner } from './pool.js';
import { ResponseReader, type ResponseSink } from './response-reader.js';

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

/** How long the backend may take to answer Expect: 100-continue before the proxy does. */
const CONTINUE_WAIT_MS = 250;

/** Bytes queued for a slow client before the backend is paused. */
const RELAY_QUEUE_BYTES = 256 * 1024;

const BODY_NONE = 0;
const BODY_LENGTH = 1;
const BODY_CHUNKED = 2;

export class Http1Connection implements BackendOwner, ResponseSink, ClientConnection {
  readonly #socket: tls.TLSSocket;
  readonly #core: ProxyCore;
  readonly #peer: Peer;
  readonly #head = new Head();
  readonly #reader: ResponseReader;
  readonly #reqChunked: ChunkedParser;
  #state = C_IDLE;
  #buf: Buffer | null = null;
  #headStartedAt = 0;
  #backend: BackendConn | null = null;
  #bodyMode = BODY_NONE;
  #remaining = 0;
  #requestDone = false;
  #sentHead = '';
  #bodyBytesSent = 0;
  #retried = false;
  #closeAfter = false;
  #keepAlive10 = false;
  #http10 = false;
  #upgrade = false;
  #responseStarted = false;
  #backendReusable = true;
  #status = 0;
  #clientPaused = false;
  #backendPaused = false;
  #headerTimer = false;
  #continueTimer: NodeJS.Timeout | null = null;
  /** The proxy answered Expect: 100-continue itself (the backend's own 100 is then dropped). */
  #ownContinue = false;
  /** True once the backend sent any byte of this exchange: then a failure is not retried. */
  #backendSpoke = false;
  /** A response head not yet written: it goes out with the first body bytes, in one write. */
  #pendingHead: string | null = null;
  #pendingRaw: Buffer | null = null;
  #pendingRawStart = 0;
  #pendingRawEnd = 0;

  constructor(core: ProxyCore, socket: tls.TLSSocket, peer: Peer) {
    this.#core = core;
    this.#socket = socket;
    this.#peer = peer;
    this.#reader = new ResponseReader(core.limits.maxHeaderBytes);
    this.#reqChunked = new ChunkedParser(core.limits.maxHeaderBytes);
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
    switch (this.#state) {
      case C_IDLE:
      case C_HEAD:
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#readHead();
        break;
      case C_BODY:
        this.#relayBody(chunk, 0);
        break;
      case C_WAIT:
        // Pipelined: keep it for after the response, and stop reading meanwhile.
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#pauseClient();
        break;
      case C_TUNNEL: {
        const backend = this.#backend;
        if (
          backend !== null &&
          !backend.socket.write(chunk) &&
          backend.socket.writableLength > RELAY_QUEUE_BYTES
        ) {
          this.#pauseClient();
        }
        break;
      }
    }
  };

  #onDrain = (): void => {
    if (this.#backendPaused) {
      this.#backendPaused = false;
      const backend = this.#backend;
      if (backend !== null) {
        backend.socket.resume();
      }
    }
  };

  // One inactivity timer per connection, armed once (Node refreshes it on every read and write):
  // idle between requests, the header timeout while a head is incomplete. While the backend
  // works or a tunnel is open, the backend's timer decides instead.
  #onTimeout = (): void => {
    // The backend is paused because this client took nothing for the whole idle timeout: a
    // client that stops reading must not hold a backend worker for ever (issue 9, item 16).
    if (this.#backendPaused) {
      this.#socket.destroy();
      return;
    }
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
    this.#stopContinueTimer();
    this.#state = C_CLOSED;
    this.#core.connections.delete(this);
    this.#buf = null;
    const backend = this.#backend;
    if (backend !== null) {
      // The exchange in flight cannot complete: the backend connection is in an unknown state.
      this.#backend = null;
      backend.owner = null;
      backend.socket.destroy();
    }
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
    this.#writeClient(cannedResponse(status, true));
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
    this.#core.stats.bytesOut += text.length;
    return this.#socket.write(text, 'latin1');
  }

  #startRequest(): void {
    const head = this.#head;
    const core = this.#core;
    if (head.method === 'CONNECT') {
      this.#reject(405, 'connect');
      return;
    }
    this.#http10 = head.minor === 0;
    this.#upgrade = head.upgrade !== undefined && head.connectionHas('upgrade');
    this.#closeAfter =
      core.draining ||
      this.#closeAfter ||
      (this.#http10 ? !head.connectionHas('keep-alive') : head.connectionHas('close'));
    this.#keepAlive10 = this.#http10 && !this.#closeAfter;
    if (head.chunked) {
      this.#bodyMode = BODY_CHUNKED;
      this.#reqChunked.reset();
    } else if (head.contentLength > 0) {
      this.#bodyMode = BODY_LENGTH;
      this.#remaining = head.contentLength;
    } else {
      this.#bodyMode = BODY_NONE;
    }
    this.#requestDone = this.#bodyMode === BODY_NONE;
    this.#ownContinue = false;
    if (head.expectContinue && !this.#requestDone && !this.#http10) {
      // Many framework servers (uWSGI among them) never answer Expect: the client would wait
      // about a second before sending its body. The backend gets a moment to answer; then the
      // proxy says 100 Continue itself.
      this.#continueTimer = setTimeout(this.#onContinueTimeout, CONTINUE_WAIT_MS);
    }
    this.#reader.reset(head.method === 'HEAD', this.#http10);
    this.#sentHead = buildRequestHead(head, this.#peer, core.settings, this.#upgrade);
    this.#bodyBytesSent = 0;
    this.#retried = false;
    this.#backendSpoke = false;
    this.#responseStarted = false;
    this.#backendReusable = true;
    this.#status = 0;
    this.#state = this.#requestDone ? C_WAIT : C_BODY;
    if (this.#headerTimer) {
      this.#headerTimer = false;
      this.#socket.setTimeout(core.limits.idleTimeoutMs);
    }

    const backend = core.pool.acquire(this);
    this.#backend = backend;
    const rest = this.#buf;
    if (this.#requestDone) {
      backend.socket.write(this.#sentHead, 'latin1');
      // Anything after a bodiless request is pipelined: it waits.
      if (rest !== null) this.#pauseClient();
      return;
    }
    this.#buf = null;
    backend.socket.cork();
    backend.socket.write(this.#sentHead, 'latin1');
    if (rest !== null) this.#relayBody(rest, 0);
    backend.socket.uncork();
    // Reading may have been paused for pipelined bytes; the body must flow now.
    if (this.#state === C_BODY && backend.socket.writableLength <= RELAY_QUEUE_BYTES) this.#resumeClient();
  }

  #onContinueTimeout = (): void => {
    this.#continueTimer = null;
    if (this.#state !== C_BODY || this.#responseStarted || this.#bodyBytesSent > 0) return;
    this.#ownContinue = true;
    this.#writeClient('HTTP/1.1 100 Continue\r\n\r\n');
  };

  #stopContinueTimer(): void {
    if (this.#continueTimer !== null) {
      clearTimeout(this.#continueTimer);
      this.#continueTimer = null;
    }
  }

  #relayBody(buf: Buffer, start: number): void {
    if (this.#continueTimer !== null) this.#stopContinueTimer();
    const backend = this.#backend;
    let stop: number;
    if (this.#bodyMode === BODY_LENGTH) {
      stop = Math.min(buf.length, start + this.#remaining);
      this.#remaining -= stop - start;
      if (this.#remaining === 0) this.#requestDone = true;
    } else {
      const end = this.#reqChunked.execute(buf, start, buf.length, null);
      if (end === -2) {
        this.#badRequestBody(this.#reqChunked.error ?? 'bad chunked body');
        return;
      }
      stop = end === -1 ? buf.length : end;
      if (end >= 0) this.#requestDone = true;
    }
    if (stop > start && backend !== null) {
      this.#bodyBytesSent += stop - start;
      const ok = backend.socket.write(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
      if (!ok && backend.socket.writableLength > RELAY_QUEUE_BYTES) this.#pauseClient();
    }
    if (this.#requestDone) {
      if (stop < buf.length) {
        this.#buf = buf.subarray(stop);
        this.#pauseClient();
      }
      if (this.#state === C_BODY) this.#state = C_WAIT;
    }
  }

  #badRequestBody(reason: string): void {
    this.#dropBackend();
    if (this.#responseStarted) {
      this.#socket.destroy();
      return;
    }
    this.#reject(400, reason);
  }

  // ---- backend side ------------------------------------------------------

  onBackendConnect(_conn: BackendConn): void {}

  onBackendData(conn: BackendConn, chunk: Buffer): void {
    this.#backendSpoke = true;
    if (this.#state === C_TUNNEL) {
      this.#core.stats.bytesOut += chunk.length;
      if (!this.#socket.write(chunk) && this.#socket.writableLength > RELAY_QUEUE_BYTES) {
        conn.socket.pause();
        this.#backendPaused = true;
      }
      return;
    }
    this.#reader.feed(chunk, this);
    this.#flushHead();
  }

  onBackendDrain(_conn: BackendConn): void {
    if (this.#state === C_BODY || this.#state === C_TUNNEL) this.#resumeClient();
  }

  onBackendTimeout(_conn: BackendConn): void {
    // Paused because the client reads slowly, or a quiet tunnel: not the backend's delay.
    if (this.#backendPaused || this.#state === C_TUNNEL) return;
    this.#core.pool.failure('timeout', null);
    this.#dropBackend();
    if (this.#responseStarted || this.#state === C_TUNNEL) {
      this.#socket.destroy();
      return;
    }
    this.#answer(504, !this.#requestDone);
  }

  onBackendGone(conn: BackendConn, error: Error | null): void {
    this.#backend = null;
    if (this.#state === C_TUNNEL) {
      if (error === null) this.#socket.end();
      else this.#socket.destroy();
      return;
    }
    if (this.#state === C_CLOSED) return;
    const reader = this.#reader;
    if (reader.closed()) {
      // A body that runs until the backend closes has ended.
      this.#backendReusable = false;
      this.#finishExchange();
      return;
    }
    if (this.#responseStarted) {
      this.#core.pool.failure('closed mid-response', error);
      this.#socket.destroy();
      return;
    }
    if (!conn.connected) {
      this.#core.pool.failure('connect', error);
      this.#answer(this.#core.pool.answered ? 502 : 503, !this.#requestDone);
      return;
    }
    if (conn.reused && !this.#backendSpoke && this.#bodyBytesSent === 0 && !this.#retried) {
      // A kept-alive connection the backend closed as we reused it: try once on a fresh one.
      this.#retried = true;
      const fresh = this.#core.pool.dial(this);
      this.#backend = fresh;
      fresh.socket.write(this.#sentHead, 'latin1');
      return;
    }
    this.#core.pool.failure('closed before answering', error);
    this.#answer(502, !this.#requestDone);
  }

  /** The proxy answers in the backend's place (502/503/504) and carries on if it can. */
  #answer(status: number, close: boolean): void {
    this.#dropBackend();
    if (close) this.#closeAfter = true;
    countResponse(this.#core.stats, status);
    this.#writeClient(cannedResponse(status, this.#closeAfter));
    this.#afterExchange();
  }

  #dropBackend(): void {
    const backend = this.#backend;
    if (backend !== null) {
      this.#backend = null;
      backend.owner = null;
      backend.socket.destroy();
    }
  }

  // ---- response ----------------------------------------------------------

  onInformational(head: Head, raw: Buffer, start: number, end: number): void {
    // HTTP/1.0 clients do not understand 1xx (RFC 9110 section 15.2).
    if (this.#http10) return;
    if (head.status === 100) {
      this.#stopContinueTimer();
      // The proxy already said it; once is enough.
      if (this.#ownContinue) return;
    }
    this.#core.stats.bytesOut += end - start;
    this.#socket.write(raw.subarray(start, end));
  }

  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void {
    if (this.#continueTimer !== null) this.#stopContinueTimer();
    this.#status = head.status;
    if (head.minor === 0 ? !head.connectionHas('keep-alive') : head.connectionHas('close')) {
      this.#backendReusable = false;
    }
    const bodyless = this.#reader.active === false;
    const untilClose = this.#reader.untilClose;
    const dechunk = this.#http10 && head.chunked && !bodyless;
    if (untilClose || dechunk || !this.#requestDone || this.#core.draining) this.#closeAfter = true;
    const connection = this.#closeAfter
      ? RESPONSE_CLOSE
      : this.#keepAlive10
        ? RESPONSE_KEEP_ALIVE_10
        : RESPONSE_KEEP;
    const text = buildResponseHead(head, connection, dechunk);
    this.#responseStarted = true;
    if (text === null) {
      this.#pendingRaw = raw;
      this.#pendingRawStart = start;
      this.#pendingRawEnd = end;
    } else {
      this.#pendingHead = text;
    }
  }

  /** Writes a response head still held back (no body bytes came with it). */
  #flushHead(): void {
    const raw = this.#pendingRaw;
    if (raw !== null) {
      this.#pendingRaw = null;
      this.#core.stats.bytesOut += this.#pendingRawEnd - this.#pendingRawStart;
      this.#socket.write(raw.subarray(this.#pendingRawStart, this.#pendingRawEnd));
    } else if (this.#pendingHead !== null) {
      const text = this.#pendingHead;
      this.#pendingHead = null;
      this.#writeClient(text);
    }
  }

  onResponseBody(buf: Buffer, start: number, end: number): void {
    let out: Buffer;
    const raw = this.#pendingRaw;
    const head = this.#pendingHead;
    if (raw === buf && this.#pendingRawEnd === start) {
      // Head and body arrived together and the head needs no change: relay them as one slice.
      this.#pendingRaw = null;
      start = this.#pendingRawStart;
      out = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    } else if (head !== null && end - start <= 16384) {
      // A rewritten head and a small body: one buffer, one write, one TLS record.
      this.#pendingHead = null;
      out = Buffer.allocUnsafe(head.length + end - start);
      out.write(head, 0, 'latin1');
      buf.copy(out, head.length, start, end);
    } else {
      this.#flushHead();
      out = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    }
    this.#core.stats.bytesOut += out.length;
    const ok = this.#socket.write(out);
    // A socket's write buffer is "full" at 16 KiB, less than one backend read: pausing there would
    // stop and restart the backend on every read. Pause once a few reads are queued instead ('drain'
    // still comes, when the queue is empty).
    if (!ok && !this.#backendPaused && this.#socket.writableLength > RELAY_QUEUE_BYTES) {
      const backend = this.#backend;
      if (backend !== null) {
        // The client reads slowly: stop reading the backend, and do not count it as the backend's delay.
        this.#backendPaused = true;
        backend.socket.pause();
      }
    }
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    this.onResponseBody(buf, start, end);
  }

  onResponseEnd(rest: number): void {
    if (rest > 0) this.#backendReusable = false;
    this.#finishExchange();
  }

  onSwitchingProtocols(head: Head, raw: Buffer, start: number, end: number, rest: Buffer): void {
    const backend = this.#backend;
    if (!this.#upgrade || backend === null) {
      this.onResponseError('101 without an upgrade request');
      return;
    }
    this.#status = 101;
    countResponse(this.#core.stats, 101);
    const text = buildResponseHead(head, RESPONSE_KEEP, false);
    if (text === null) this.#socket.write(raw.subarray(start, end));
    else this.#writeClient(text);
    this.#state = C_TUNNEL;
    this.#responseStarted = true;
    if (rest.length > 0) this.onBackendData(backend, rest);
    const pending = this.#buf;
    this.#buf = null;
    if (pending !== null) backend.socket.write(pending);
    this.#resumeClient();
  }

  onResponseError(reason: string): void {
    this.#core.pool.failure(`bad response: ${reason}`, null);
    this.#dropBackend();
    // A head still held back (no byte of it written) can be replaced by the 502 the client
    // is owed: a malformed body right after the head used to close the connection with no
    // answer at all (issue 9, item 23). Once a byte went out, only a cut is left.
    const headUnsent = this.#pendingHead !== null || this.#pendingRaw !== null;
    if (this.#responseStarted && !headUnsent) {
      this.#socket.destroy();
      return;
    }
    this.#pendingHead = null;
    this.#pendingRaw = null;
    this.#responseStarted = false;
    this.#answer(502, !this.#requestDone);
  }

  #finishExchange(): void {
    this.#flushHead();
    countResponse(this.#core.stats, this.#status);
    const backend = this.#backend;
    this.#backend = null;
    if (backend !== null) {
      if (this.#backendPaused) {
        this.#backendPaused = false;
        backend.socket.resume();
      }
      if (this.#backendReusable && this.#requestDone && !this.#reader.untilClose) {
        this.#core.pool.release(backend);
      } else {
        backend.owner = null;
        backend.socket.destroy();
      }
    }
    if (!this.#requestDone) this.#closeAfter = true;
    this.#afterExchange();
  }

  #afterExchange(): void {
    this.#stopContinueTimer();
    if (this.#closeAfter) {
      this.#close();
      return;
    }
    this.#state = C_IDLE;
    if (this.#buf !== null) this.#readHead();
    if (this.#state === C_IDLE || this.#state === C_HEAD) this.#resumeClient();
  }
}
