// An HTTP/1.1 client's gRPC-Web call carried to the h2c backend (--backend-protocol
// h2c): a gRPC server speaks HTTP/2 only, and a gRPC-Web client that reached the
// proxy over HTTP/1.1 (a client library on Node's https, a browser behind an
// HTTP/1.1-only hop) would otherwise be forwarded as HTTP/1.1 and refused. The
// request goes to the backend as a stream of the proxy's h2c session through the
// same relay as an HTTP/2 client's (h2c-relay.ts: gRPC-Web transcoding, retries,
// 502/503/504); the relay's answer is written back as HTTP/1.1 bytes (a head, a
// chunked body) and read by the connection's own response reader, so the client's
// side (head rules, HSTS, keep-alive, counts, the access log) is the one every
// HTTP/1.1 answer goes through.
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type * as http2 from 'node:http2';
import { countResponse } from '../stats/index.js';
import { ChunkedParser } from './chunked.js';
import type { ProxyCore } from './core.js';
import type { Exchange, ExchangeClient } from './exchange.js';
import type { H2cBackend } from './h2c-backend.js';
import { H2cRelay, type H2cRelayHost, type RelayClient } from './h2c-relay.js';
import type { Head } from './head.js';
import { BODY_CHUNKED, type Request } from './http1-request.js';
import { h2cRequestHeaders, http1Fields } from './http2-head.js';
import type { ResponseReader, ResponseSink } from './response-reader.js';

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** The HTTP/1.1 connection's reply side, as the bridge uses it (http1-reply.ts). */
export interface BridgeClient extends ExchangeClient {
  /** Writes to the client until this turn's I/O is handled go out as one. */
  gatherWrites(): void;
}

export class H2cBridge implements Exchange, ResponseSink {
  readonly #core: ProxyCore;
  readonly #h2c: H2cBackend;
  readonly #client: BridgeClient;
  readonly #reader: ResponseReader;
  readonly #request: Request;
  readonly #stream = new BridgedStream(this);
  /** Body bytes still carry the client's chunked framing (a body relayed as it comes). */
  readonly #dechunk: ChunkedParser | null;
  #relay: H2cRelay | null = null;
  #status = 0;
  #over = false;
  /** What the client side said of the last response bytes: false when it is backed up. */
  #flowing = true;

  constructor(
    core: ProxyCore,
    h2c: H2cBackend,
    client: BridgeClient,
    reader: ResponseReader,
    request: Request,
    noBody: boolean,
  ) {
    this.#core = core;
    this.#h2c = h2c;
    this.#client = client;
    this.#reader = reader;
    this.#request = request;
    reader.reset(noBody, request.http10);
    this.#dechunk =
      request.bodyMode === BODY_CHUNKED && request.held === null
        ? new ChunkedParser(core.limits.maxHeaderBytes)
        : null;
  }

  get open(): boolean {
    return !this.#over;
  }

  // ---- the request, from the HTTP/1.1 connection ------------------------------

  /** The head as built for an HTTP/1.1 backend: its header list starts the backend's stream. */
  writeHead(text: string): void {
    if (this.#over || this.#relay !== null) return;
    const headers = h2cRequestHeaders(text, false);
    // The connection's own 100 Continue logic (http1-upload.ts) answers Expect.
    this.#relay = new H2cRelay(this.#core, this.#h2c, this.#stream, headers, this.#relayHost(), false);
  }

  writeBody(data: Buffer): boolean {
    if (this.#over) return true;
    const parser = this.#dechunk;
    if (parser === null) return this.#stream.push(data);
    const stream = this.#stream;
    let flowing = true;
    const end = parser.execute(data, 0, data.length, {
      onChunkData: (buf, start, stop) => {
        flowing = stream.push(Buffer.from(buf.subarray(start, stop))) && flowing;
      },
    });
    // Bad framing (-2) never comes here: the connection's own parser refuses it first (a 400).
    if (end >= 0) stream.finish();
    return flowing;
  }

  /** Framing of a held body sent chunked (held-body.ts): the stream frames its own data. */
  writeFraming(_text: string): boolean {
    return true;
  }

  /** One chunk's data of a held body. */
  writeChunk(data: Buffer): boolean {
    return this.#over ? true : this.#stream.push(data);
  }

  corked(work: () => void): void {
    work();
  }

  endRequest(): void {
    this.#stream.finish();
  }

  clientDrained(): void {
    this.#relay?.clientDrained();
  }

  /** The client went away or gave up: the backend's stream is cancelled. */
  abort(): void {
    if (this.#over) return;
    this.#over = true;
    this.#stream.gone();
    this.#relay?.abort();
    this.#relay?.detach();
  }

  /** The client is cut: its connection closes, and closing aborts this exchange (a 499 line). */
  cutClient(): void {
    if (!this.#over) this.#client.onClientStalled();
  }

  /** The client's side can take request body again (the stream had held it back). */
  requestDrained(): void {
    if (!this.#over) this.#client.onRequestDrained();
  }

  // ---- the response, as HTTP/1.1 bytes through the connection's reader ---------

  /** Bytes of the response as an HTTP/1.1 backend would have sent them; false: the client is backed up. */
  feed(bytes: Buffer): boolean {
    if (this.#over) return true;
    this.#flowing = true;
    this.#client.gatherWrites();
    this.#reader.feed(bytes, this);
    if (!this.#over) this.#client.afterBackendRead();
    return this.#flowing;
  }

  onInformational(head: Head, raw: Buffer, start: number, end: number): void {
    if (!this.#over) this.#client.onInformational(head, raw, start, end);
  }

  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void {
    if (this.#over) return;
    this.#status = head.status;
    this.#client.onResponseHead(head, raw, start, end);
  }

  onResponseBody(buf: Buffer, start: number, end: number): void {
    if (!this.#over && !this.#client.onResponseBody(buf, start, end)) this.#flowing = false;
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    this.onResponseBody(buf, start, end);
  }

  onResponseEnd(_rest: number): void {
    if (this.#over) return;
    this.#over = true;
    countResponse(this.#core.stats, this.#status);
    this.#client.onExchangeEnd();
  }

  onSwitchingProtocols(): void {
    this.onResponseError('101 from an h2c stream');
  }

  onResponseError(reason: string): void {
    this.#core.pool.failure(`bad response: ${reason}`, null, 502);
    this.#failed(502, `bad response: ${reason}`);
    this.#relay?.abort();
  }

  #failed(status: number, detail: string): void {
    if (this.#over) return;
    this.#over = true;
    this.#stream.gone();
    this.#relay?.detach();
    this.#client.onExchangeFailed(status, detail);
  }

  #relayHost(): H2cRelayHost {
    // Bytes, times and the status are counted from the HTTP/1.1 answer itself (http1-reply.ts).
    return {
      responded: noop,
      received: noop,
      sent: noop,
      ended: noop,
      failed: (status: number, detail: string) => this.#failed(status, detail),
      requestTrailers: () => null,
      grpcStatus: (status: number) => {
        this.#request.grpcStatus = status;
      },
    };
  }
}

/**
 * The relay's client stream for a bridged request: the request body as 'data' and 'end'
 * events (held while the relay has no backend stream to give them to, or has paused), and the
 * response written as HTTP/1.1 bytes to the bridge.
 */
class BridgedStream extends EventEmitter implements RelayClient {
  readonly #bridge: H2cBridge;
  /** Request body not yet given to the relay. */
  readonly #queue: Buffer[] = [];
  #paused = false;
  /** The client was told to wait (a push answered false): told again once the queue is empty. */
  #blocked = false;
  #ended = false;
  #flushing = false;
  readableEnded = false;
  endAfterHeaders = false;
  destroyed = false;
  closed = false;
  headersSent = false;
  writableEnded = false;
  #waitForTrailers = false;

  constructor(bridge: H2cBridge) {
    super();
    this.#bridge = bridge;
    this.on('newListener', (event: string) => {
      // The relay listens once it has a backend stream: what came before goes then.
      if (event === 'data' || event === 'end') queueMicrotask(() => this.#flush());
    });
  }

  // ---- request body ----

  /** Request body bytes; false when they wait (the client is paused until `requestDrained`). */
  push(data: Buffer): boolean {
    if (this.destroyed || this.#ended || data.length === 0) return true;
    this.#queue.push(data);
    this.#flush();
    if (this.#queue.length === 0) return true;
    this.#blocked = true;
    return false;
  }

  /** The request body has ended (a request without one: before the relay is made). */
  finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    // Read when the relay is made: it sends the head with END_STREAM and takes no body.
    if (this.#queue.length === 0 && this.listenerCount('data') === 0) this.endAfterHeaders = true;
    this.#flush();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#flush();
  }

  #flush(): void {
    if (this.#flushing || this.destroyed) return;
    this.#flushing = true;
    while (!this.#paused && this.#queue.length > 0 && this.listenerCount('data') > 0) {
      this.emit('data', this.#queue.shift() as Buffer);
    }
    this.#flushing = false;
    if (this.#queue.length > 0) return;
    if (this.#ended && !this.readableEnded && this.listenerCount('end') > 0) {
      this.readableEnded = true;
      this.emit('end');
    }
    if (this.#blocked && !this.#paused) {
      this.#blocked = false;
      this.#bridge.requestDrained();
    }
  }

  /** The exchange is over: nothing more goes either way. */
  gone(): void {
    this.destroyed = true;
    this.closed = true;
    this.#queue.length = 0;
  }

  // ---- response ----

  additionalHeaders(headers: http2.OutgoingHttpHeaders): void {
    this.#bridge.feed(Buffer.from(`${headText(headers)}\r\n`, 'latin1'));
  }

  respond(
    headers: http2.OutgoingHttpHeaders,
    options: { endStream: boolean; waitForTrailers: boolean },
  ): void {
    this.headersSent = true;
    this.#waitForTrailers = options.waitForTrailers;
    const framing = options.endStream ? 'content-length: 0' : 'transfer-encoding: chunked';
    this.#bridge.feed(Buffer.from(`${headText(headers)}${framing}\r\n\r\n`, 'latin1'));
    if (options.endStream) this.writableEnded = true;
  }

  write(chunk: Buffer): boolean {
    // An empty chunk would end a chunked body.
    if (chunk.length === 0) return true;
    return this.#bridge.feed(Buffer.concat(framed(chunk)));
  }

  end(chunk?: Buffer): void {
    this.writableEnded = true;
    if (this.#waitForTrailers) {
      if (chunk !== undefined) this.write(chunk);
      this.emit('wantTrailers');
      return;
    }
    // The last data (gRPC-Web's trailers frame) and the body's end in one read: one write to the client.
    this.#bridge.feed(
      chunk === undefined || chunk.length === 0 ? LAST_CHUNK : Buffer.concat([...framed(chunk), LAST_CHUNK]),
    );
  }

  sendTrailers(headers: http2.OutgoingHttpHeaders): void {
    this.#bridge.feed(Buffer.from(`0\r\n${http1Fields(headers)}\r\n`, 'latin1'));
  }

  /** The relay cuts the client (it stopped reading for the idle timeout): its connection goes. */
  close(_code: number): void {
    this.#bridge.cutClient();
  }
}

/** `chunk` as one chunk of a chunked body: its size line, its data, its CRLF. */
function framed(chunk: Buffer): Buffer[] {
  return [Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF];
}

/** `HTTP/1.1 STATUS REASON` and the fields of an HTTP/2 header list (`:status` given), as lines. */
function headText(headers: http2.OutgoingHttpHeaders): string {
  const status = Number(headers[':status']);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${http1Fields(headers)}`;
}

function noop(): void {}
