// After a 101 Switching Protocols (a WebSocket, say): the client socket and the
// backend connection spliced, bytes relayed both ways with backpressure, and
// one side's end passed on to the other.
import type * as tls from 'node:tls';
import type { ProxyCore } from './core.js';
import { RELAY_QUEUE_BYTES } from './exchange.js';
import { type BackendConn, type BackendOwner, writeBorrowed } from './pool.js';

export class Tunnel implements BackendOwner {
  readonly #core: ProxyCore;
  readonly #client: tls.TLSSocket;
  readonly #backend: BackendConn;
  readonly #resumeClient: () => void;
  #backendPaused = false;

  /** Takes `backend` over (its events come here from now on). `resumeClient`: the client may be read again. */
  constructor(core: ProxyCore, client: tls.TLSSocket, backend: BackendConn, resumeClient: () => void) {
    this.#core = core;
    this.#client = client;
    this.#backend = backend;
    this.#resumeClient = resumeClient;
    backend.owner = this;
  }

  /** Client bytes to the backend; false when the backend is backed up (pause the client until drained). */
  toBackend(chunk: Buffer): boolean {
    const socket = this.#backend.socket;
    return socket.write(chunk) || socket.writableLength <= RELAY_QUEUE_BYTES;
  }

  /** Backend bytes to the client; a client that is backed up pauses the backend. */
  fromBackend(chunk: Buffer): void {
    this.#core.stats.bytesOut += chunk.length;
    if (!writeBorrowed(this.#client, chunk) && this.#client.writableLength > RELAY_QUEUE_BYTES) {
      this.#backend.socket.pause();
      this.#backendPaused = true;
    }
  }

  clientDrained(): void {
    if (this.#backendPaused) {
      this.#backendPaused = false;
      this.#backend.socket.resume();
    }
  }

  /** The client side closed: nothing more can reach it. */
  clientGone(): void {
    this.#backend.owner = null;
    this.#backend.socket.destroy();
  }

  onBackendConnect(_conn: BackendConn): void {}

  onBackendData(_conn: BackendConn, chunk: Buffer): void {
    this.fromBackend(chunk);
  }

  onBackendDrain(_conn: BackendConn): void {
    this.#resumeClient();
  }

  /** A quiet tunnel is not a slow backend: it stays open. */
  onBackendTimeout(_conn: BackendConn): void {}

  onBackendGone(_conn: BackendConn, error: Error | null): void {
    if (error === null) this.#client.end();
    else this.#client.destroy();
  }
}
