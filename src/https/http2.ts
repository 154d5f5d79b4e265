// HTTP/2 clients (ALPN h2): node:http2 speaks the protocol; each stream is
// forwarded to the backend as an HTTP/1.1 request over the same pool and with
// the same header rules as HTTP/1 (the stream's head is written out as an
// HTTP/1.1 head and goes through the same strict parser). Bodies stream both
// ways with backpressure; chunked responses are decoded into DATA frames.
import type * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type * as tls from 'node:tls';
import { countResponse } from '../stats/index.js';
import { parseTrailers } from './chunked.js';
import { type ClientConnection, cannedBody, type ProxyCore, RETRY_AFTER_SECONDS } from './core.js';
import { buildRequestHead, type Peer } from './forwarding.js';
import { findHeadEnd, Head, parseRequestHead, statusForHeadError } from './head-parser.js';
import type { BackendConn, BackendOwner } from './pool.js';
import { ResponseReader, type ResponseSink } from './response-reader.js';

/** Bytes queued on one side before the other is paused (a socket's own mark, 16 KiB, is less than one read). */
const RELAY_QUEUE_BYTES = 256 * 1024;

/** Request headers HTTP/2 forbids or the HTTP/1.1 head gets from elsewhere. */
const SKIP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);
/** Response headers that must not appear in an HTTP/2 response (RFC 9113 section 8.2.2). */
const SKIP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

class H2Exchange implements BackendOwner, ResponseSink {
  readonly #core: ProxyCore;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #reader: ResponseReader;
  #backend: BackendConn | null = null;
  #chunkedBody = false;
  /** A request body of unknown length, held while it fits; null once sent or when not held. */
  #held: Buffer[] | null = null;
  #heldBytes = 0;
  /** The request head for the backend without its last CRLF, while the body is held. */
  #heldHead = '';
  #requestDone = false;
  #responded = false;
  #finished = false;
  #reusable = true;
  #status = 0;
  #backendPaused = false;
  /** Armed while the backend waits on this stream's client: a client that takes nothing for the idle timeout is cut. */
  #stallTimer: NodeJS.Timeout | undefined;
  #wantTrailers = false;
  #requestTrailers: http2.IncomingHttpHeaders | null = null;

  constructor(
    core: ProxyCore,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    peer: Peer,
  ) {
    this.#core = core;
    this.#stream = stream;
    this.#reader = new ResponseReader(core.limits.maxHeaderBytes);
    const text = this.#http1Head(stream, headers);
    const head = new Head();
    const buf = Buffer.from(text, 'latin1');
    const end = findHeadEnd(buf, 0, buf.length);
    const error =
      buf.length > core.limits.maxHeaderBytes
        ? 'too-many-headers'
        : end < 0
          ? 'bad-line-ending'
          : parseRequestHead(head, buf, 0, end);
    if (error !== null || head.method === 'CONNECT') {
      // The same answers as HTTP/1: a header list over the limit is 431 (nghttp2's own limit is
      // set above ours, so that the client gets this answer rather than a reset stream).
      this.#finished = true;
      this.#respondCanned(error === null ? 400 : statusForHeadError(error));
      return;
    }
    const method = head.method;
    this.#reader.reset(method === 'HEAD', true);
    stream.on('close', this.#onClose);
    stream.on('error', noop);
    // Trailers are an event, not buffered like data: kept from the start.
    stream.on('trailers', this.#onTrailers);
    // The backend is taken one turn of the event loop later: a stream its client resets at
    // once (HTTP/2 rapid reset, CVE-2023-44487: HEADERS then RST_STREAM in one packet, over and
    // over) is gone by then and costs no backend connection (issue 9, item 23). Its body, if
    // any, waits in the stream meanwhile: 'data' is not listened to yet.
    setImmediate(() => this.#start(head, peer));
  }

  #start(head: Head, peer: Peer): void {
    const stream = this.#stream;
    if (this.#finished || stream.destroyed || stream.closed) return;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('drain', this.#onDrain);
    const core = this.#core;
    const backend = core.pool.acquire(this);
    this.#backend = backend;
    const sent = buildRequestHead(head, peer, core.settings, false);
    if (this.#held !== null) {
      // The framing header goes in once the body's size is known (#release).
      this.#heldHead = sent.slice(0, -2);
      if (this.#requestTrailers !== null) this.#release(false);
      return;
    }
    backend.socket.write(sent, 'latin1');
  }

  /**
   * Sends the head held for a body of unknown length: with its Content-Length when the whole
   * body came within the limit (many backends, uWSGI's --http-socket among them, read no
   * chunked request body: issue 9, item 22), else chunked, with what was held as the first chunk.
   */
  #release(whole: boolean): void {
    const held = this.#held;
    const backend = this.#backend;
    if (held === null) return;
    this.#held = null;
    if (backend === null) return;
    const body = Buffer.concat(held);
    if (whole) {
      backend.socket.write(`${this.#heldHead}Content-Length: ${body.length}\r\n\r\n`, 'latin1');
      backend.socket.write(body);
      return;
    }
    this.#chunkedBody = true;
    backend.socket.write(`${this.#heldHead}Transfer-Encoding: chunked\r\n\r\n`, 'latin1');
    if (body.length > 0) writeChunk(backend.socket, body);
  }

  /** The stream's head as an HTTP/1.1 head, so that one parser and one set of rules serve both protocols. */
  #http1Head(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): string {
    const method = String(headers[':method'] ?? 'GET');
    const path = String(headers[':path'] ?? '/');
    const authority = headers[':authority'] ?? headers.host;
    let out = `${method} ${path} HTTP/1.1\r\n`;
    if (authority !== undefined) out += `Host: ${authority}\r\n`;
    let hasLength = false;
    for (const name of Object.keys(headers)) {
      if (name.charCodeAt(0) === 0x3a || SKIP_REQUEST.has(name)) continue;
      if (name === 'te') continue;
      const value = headers[name];
      if (value === undefined) continue;
      if (name === 'content-length') hasLength = true;
      if (Array.isArray(value)) for (const v of value) out += `${name}: ${v}\r\n`;
      else out += `${name}: ${value}\r\n`;
    }
    if (stream.endAfterHeaders) {
      this.#requestDone = true;
    } else if (!hasLength) {
      // A body of unknown length is held (up to HELD_BODY_BYTES) to learn its length.
      this.#held = [];
    }
    return `${out}\r\n`;
  }

  #onData = (chunk: Buffer): void => {
    const backend = this.#backend;
    if (backend === null) return;
    this.#core.stats.bytesIn += chunk.length;
    const held = this.#held;
    if (held !== null) {
      held.push(chunk);
      this.#heldBytes += chunk.length;
      if (this.#heldBytes > HELD_BODY_BYTES) this.#release(false);
      return;
    }
    const socket = backend.socket;
    const ok = this.#chunkedBody ? writeChunk(socket, chunk) : socket.write(chunk);
    if (!ok && socket.writableLength > RELAY_QUEUE_BYTES) this.#stream.pause();
  };

  #onTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.#requestTrailers = trailers;
    // Trailers ride only in a chunked body (once there is a backend to send it to: #start).
    if (this.#backend !== null) this.#release(false);
  };

  #onEnd = (): void => {
    this.#requestDone = true;
    this.#release(true);
    const backend = this.#backend;
    if (backend === null || !this.#chunkedBody) return;
    let last = '0\r\n';
    const trailers = this.#requestTrailers;
    if (trailers !== null) {
      // Request trailers ride in the chunked body's trailer section (nghttp2 has checked their syntax).
      for (const name of Object.keys(trailers)) {
        const value = trailers[name];
        if (name.charCodeAt(0) === 0x3a || value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) last += `${name}: ${v}\r\n`;
      }
    }
    backend.socket.write(`${last}\r\n`, 'latin1');
  };

  #onDrain = (): void => {
    if (this.#backendPaused) {
      this.#backendPaused = false;
      clearTimeout(this.#stallTimer);
      const backend = this.#backend;
      if (backend !== null) {
        backend.socket.resume();
      }
    }
  };

  #onStalled = (): void => {
    if (this.#backendPaused && !this.#stream.destroyed) this.#stream.close(NGHTTP2_CANCEL);
  };

  #onClose = (): void => {
    clearTimeout(this.#stallTimer);
    if (!this.#finished) {
      this.#finished = true;
      this.#dropBackend();
    }
  };

  onBackendConnect(_conn: BackendConn): void {}

  onBackendData(_conn: BackendConn, chunk: Buffer): void {
    this.#reader.feed(chunk, this);
  }

  onBackendDrain(_conn: BackendConn): void {
    this.#stream.resume();
  }

  onBackendTimeout(_conn: BackendConn): void {
    if (this.#backendPaused) return;
    this.#core.pool.failure('timeout', null);
    this.#fail(504);
  }

  onBackendGone(conn: BackendConn, error: Error | null): void {
    this.#backend = null;
    if (this.#finished) return;
    if (this.#reader.closed()) {
      this.#reusable = false;
      this.onResponseEnd(0);
      return;
    }
    if (!conn.connected) {
      this.#core.pool.failure('connect', error);
      this.#fail(this.#core.pool.answered ? 502 : 503);
      return;
    }
    this.#core.pool.failure(this.#responded ? 'closed mid-response' : 'closed before answering', error);
    this.#fail(502);
  }

  onInformational(head: Head): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    try {
      stream.additionalHeaders({ ':status': head.status });
    } catch {
      // The client reset the stream meanwhile.
    }
  }

  onResponseHead(head: Head): void {
    const stream = this.#stream;
    this.#status = head.status;
    if (head.minor === 0 ? !head.connectionHas('keep-alive') : head.connectionHas('close'))
      this.#reusable = false;
    const headers: http2.OutgoingHttpHeaders = { ':status': head.status };
    for (let i = 0; i < head.count; i++) {
      const name = head.name(i).toLowerCase();
      if (SKIP_RESPONSE.has(name)) continue;
      const value = head.value(i);
      const prior = headers[name];
      if (prior === undefined) headers[name] = value;
      else if (name === 'set-cookie')
        headers[name] = Array.isArray(prior) ? [...prior, value] : [String(prior), value];
      else headers[name] = `${String(prior)}, ${value}`;
    }
    this.#wantTrailers = head.chunked && head.hasTrailer;
    if (stream.destroyed || stream.closed) {
      this.#responded = true;
      return;
    }
    const endStream = !this.#reader.active && this.#reader.gotHead;
    try {
      stream.respond(headers, { endStream, waitForTrailers: this.#wantTrailers && !endStream });
    } catch (error) {
      // A header value HTTP/2 cannot carry, or a stream reset meanwhile: the stream fails alone.
      this.#core.pool.failure(`response head not valid for HTTP/2: ${(error as Error).message}`, null);
      this.#fail(502);
      return;
    }
    this.#responded = true;
    if (this.#wantTrailers) stream.once('wantTrailers', this.#sendTrailers);
  }

  #sendTrailers = (): void => {
    const trailers: http2.OutgoingHttpHeaders = {};
    for (const [name, value] of parseTrailers(this.#reader.trailers)) {
      if (!SKIP_RESPONSE.has(name)) trailers[name] = value;
    }
    try {
      this.#stream.sendTrailers(trailers);
    } catch {
      this.#stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  onResponseBody(buf: Buffer, start: number, end: number): void {
    const stream = this.#stream;
    if (stream.destroyed) return;
    this.#core.stats.bytesOut += end - start;
    const ok = stream.write(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
    if (!ok && stream.writableLength > RELAY_QUEUE_BYTES) {
      const backend = this.#backend;
      if (backend !== null && !this.#backendPaused) {
        this.#backendPaused = true;
        backend.socket.pause();
        // A client that stops reading would hold the backend (a worker of a threaded app) for
        // ever: it gets the idle timeout to take data, then the stream is cancelled (issue 9, item 16).
        this.#stallTimer = setTimeout(this.#onStalled, this.#core.limits.idleTimeoutMs);
      }
    }
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    this.onResponseBody(buf, start, end);
  }

  onResponseEnd(rest: number): void {
    if (this.#finished) return;
    this.#finished = true;
    countResponse(this.#core.stats, this.#status);
    const backend = this.#backend;
    this.#backend = null;
    if (backend !== null) {
      if (this.#backendPaused) backend.socket.resume();
      if (this.#reusable && rest === 0 && this.#requestDone && !this.#reader.untilClose) {
        this.#core.pool.release(backend);
      } else {
        backend.owner = null;
        backend.socket.destroy();
      }
    }
    const stream = this.#stream;
    if (!stream.destroyed && !stream.writableEnded && this.#reader.gotHead) stream.end();
  }

  onSwitchingProtocols(): void {
    this.onResponseError('101 on an HTTP/2 stream');
  }

  onResponseError(reason: string): void {
    this.#core.pool.failure(`bad response: ${reason}`, null);
    this.#fail(502);
  }

  #fail(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#dropBackend();
    if (this.#responded) {
      // A response already under way can only be cut: RST_STREAM with no END_STREAM before it,
      // so that the client knows the body is incomplete. close(code) would end the writable
      // side first, which sends END_STREAM, and the client would take half a body as whole
      // (issue 9, item 17); destroy() resets the stream without ending it.
      if (!this.#stream.destroyed) this.#stream.destroy(new Error('the backend failed mid-response'));
      return;
    }
    this.#respondCanned(status);
  }

  #respondCanned(status: number): void {
    countResponse(this.#core.stats, status);
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    const headers: http2.OutgoingHttpHeaders = {
      ':status': status,
      'content-type': 'text/plain; charset=utf-8',
    };
    if (status === 503) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
    stream.respond(headers);
    stream.end(cannedBody(status));
  }

  #dropBackend(): void {
    const backend = this.#backend;
    if (backend !== null) {
      this.#backend = null;
      backend.owner = null;
      backend.socket.destroy();
    }
  }
}

function noop(): void {}

/** Writes `data` as one chunk of a chunked body, in one go; answers what the last write did. */
function writeChunk(socket: Socket, data: Buffer): boolean {
  socket.cork();
  socket.write(`${data.length.toString(16)}\r\n`, 'latin1');
  socket.write(data);
  const ok = socket.write('\r\n', 'latin1');
  socket.uncork();
  return ok;
}

/**
 * A request body without content-length is held up to this much to be sent with one; a
 * longer one goes chunked. Bounds the memory a stream can take this way.
 */
const HELD_BODY_BYTES = 1024 * 1024;

// RFC 9113 error codes (node:http2's constants, without loading the module for them).
const NGHTTP2_REFUSED_STREAM = 7;
const NGHTTP2_CANCEL = 8;
const NGHTTP2_INTERNAL_ERROR = 2;

/**
 * The HTTP/2 side of a proxy: TLS sockets that negotiated h2 are handed to
 * `accept`, which gives them to a node:http2 server that never listens itself.
 */
export class Http2Front {
  readonly #core: ProxyCore;
  readonly #server: http2.Http2Server;
  readonly #peers = new WeakMap<http2.Http2Session, Peer>();
  #pendingPeer: Peer | undefined;

  constructor(core: ProxyCore) {
    this.#core = core;
    // Loaded on the first HTTP/2 client: a proxy only HTTP/1 clients use idles without it (~2 MB).
    const http2 = process.getBuiltinModule('node:http2') as typeof import('node:http2');
    this.#server = http2.createServer({
      maxSessionMemory: 32,
      // nghttp2 refuses (resets) a stream past these; they are set above the proxy's own head
      // limits (maxHeaderBytes, 200 lines), which answer 431 as HTTP/1 does (issue 9, item 23).
      maxHeaderListPairs: 400,
      settings: {
        enablePush: false,
        maxConcurrentStreams: 128,
        maxHeaderListSize: 2 * core.limits.maxHeaderBytes,
      },
    });
    this.#server.on('session', this.#onSession);
    this.#server.on('stream', this.#onStream);
  }

  accept(socket: tls.TLSSocket, peer: Peer): void {
    // 'session' is emitted synchronously inside emit('connection'): hand it the peer there.
    this.#pendingPeer = peer;
    this.#server.emit('connection', socket);
    this.#pendingPeer = undefined;
  }

  #onSession = (session: http2.ServerHttp2Session): void => {
    const peer = this.#pendingPeer;
    if (peer !== undefined) this.#peers.set(session, peer);
    const core = this.#core;
    const entry: ClientConnection = {
      drain: () => {
        if (!session.closed && !session.destroyed) session.close();
      },
      destroy: () => session.destroy(),
    };
    core.connections.add(entry);
    session.on('close', () => core.connections.delete(entry));
    session.on('error', noop);
    session.setTimeout(core.limits.idleTimeoutMs, () => session.close());
    if (core.draining) session.close();
  };

  #onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const peer = this.#peers.get(stream.session as http2.ServerHttp2Session);
    if (peer === undefined) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    new H2Exchange(this.#core, stream, headers, peer);
  };
}
