// A WebSocket over an HTTP/2 stream (RFC 8441, extended CONNECT): after the
// backend's 101 the stream and the backend connection are spliced, bytes
// relayed both ways with backpressure. The stream's END_STREAM and the
// backend's FIN pass on to each other; a reset on one side is a reset on the
// other (RFC 8441 section 5: RST_STREAM for a TCP reset, CONNECT_ERROR).
import { createHash, randomFillSync } from 'node:crypto';
import type * as http2 from 'node:http2';
import type { ProxyCore } from './core.js';
import { RELAY_QUEUE_BYTES } from './exchange.js';
import type { BackendConn, BackendOwner } from './pool.js';

/** RFC 6455 section 1.3: what the server's Sec-WebSocket-Accept is derived with. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Keys are made from random bytes drawn a batch at a time: randomBytes(16) per key was 5% of the proxy's CPU per WebSocket. */
const KEY_BATCH = 64;
const keyBytes = Buffer.alloc(16 * KEY_BATCH);
let nextKey = KEY_BATCH;

/**
 * A Sec-WebSocket-Key for the HTTP/1.1 handshake a stream's extended CONNECT becomes: HTTP/2
 * carries none (RFC 8441 section 5), so the proxy makes the one the backend answers (16 random
 * bytes in base64, RFC 6455 section 4.1).
 */
export function newWebSocketKey(): string {
  if (nextKey === KEY_BATCH) {
    randomFillSync(keyBytes);
    nextKey = 0;
  }
  const from = 16 * nextKey++;
  return keyBytes.toString('base64', from, from + 16);
}

/** The Sec-WebSocket-Accept a backend owes for `key` (RFC 6455 section 4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

/** RFC 9113 section 7: the connection established by CONNECT was reset or closed abnormally. */
const NGHTTP2_CONNECT_ERROR = 0xa;

export class H2Tunnel implements BackendOwner {
  readonly #core: ProxyCore;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #backend: BackendConn;
  /** The backend is paused until the stream drains. */
  #backendPaused = false;

  /** Takes `backend` over (its events come here from now on) and starts relaying; `rest`: backend bytes read after its 101. */
  constructor(core: ProxyCore, stream: http2.ServerHttp2Stream, backend: BackendConn, rest: Buffer) {
    this.#core = core;
    this.#stream = stream;
    this.#backend = backend;
    backend.owner = this;
    if (rest.length > 0) this.onBackendData(backend, rest);
    stream.on('data', this.#onClientData);
    stream.on('end', this.#onClientEnd);
    stream.on('drain', this.#onClientDrain);
    stream.on('close', this.#onClientClose);
  }

  #onClientData = (chunk: Buffer): void => {
    this.#core.stats.bytesIn += chunk.length;
    const socket = this.#backend.socket;
    if (!socket.write(chunk) && socket.writableLength > RELAY_QUEUE_BYTES) this.#stream.pause();
  };

  /** The client sent END_STREAM: the backend gets a FIN, and may still answer. */
  #onClientEnd = (): void => {
    this.#backend.socket.end();
  };

  #onClientDrain = (): void => {
    if (this.#backendPaused) {
      this.#backendPaused = false;
      this.#backend.socket.resume();
    }
  };

  /** The stream is closed (both ends done, reset, or the session gone): nothing more can reach the client. */
  #onClientClose = (): void => {
    const stream = this.#stream;
    stream.off('data', this.#onClientData);
    stream.off('end', this.#onClientEnd);
    stream.off('drain', this.#onClientDrain);
    stream.off('close', this.#onClientClose);
    this.#backend.owner = null;
    this.#backend.socket.destroy();
  };

  onBackendConnect(_conn: BackendConn): void {}

  onBackendData(_conn: BackendConn, chunk: Buffer): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.writableEnded) return;
    this.#core.stats.bytesOut += chunk.length;
    // nghttp2 sends DATA frames from the Buffer it was given, later: a copy, not the read buffer (pool.ts).
    if (!stream.write(Buffer.from(chunk)) && stream.writableLength > RELAY_QUEUE_BYTES) {
      this.#backend.socket.pause();
      this.#backendPaused = true;
    }
  }

  onBackendDrain(_conn: BackendConn): void {
    if (!this.#stream.destroyed) this.#stream.resume();
  }

  /** A quiet WebSocket is not a slow backend: it stays open. */
  onBackendTimeout(_conn: BackendConn): void {}

  /** The backend's FIN ends the stream (END_STREAM); a failure resets it. */
  onBackendGone(_conn: BackendConn, error: Error | null): void {
    const stream = this.#stream;
    if (stream.destroyed) return;
    if (error === null) stream.end();
    else stream.close(NGHTTP2_CONNECT_ERROR);
  }
}
