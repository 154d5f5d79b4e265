// The backend spoken to as HTTP/2 in clear text (h2c, prior knowledge: RFC 9113
// section 3.3), as a gRPC server needs (--backend-protocol h2c). One session
// carries every HTTP/2 client's streams; a new one is opened when it has
// closed, failed or been told to go away (GOAWAY: the streams already open on
// it finish there).
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Address } from '../config/types.js';

/** What the proxy's HTTP/2 session to its backend is opened with. */
const SESSION_OPTIONS: http2.ClientSessionOptions = {
  maxSessionMemory: 32,
  settings: { enablePush: false },
};

export class H2cBackend {
  readonly #address: Address;
  #session: http2.ClientHttp2Session | undefined;

  constructor(address: Address) {
    this.#address = address;
  }

  /**
   * A stream to the backend carrying `headers` (`endStream`: the request has no body). A
   * session that cannot connect fails its streams with ERR_HTTP2_STREAM_CANCEL, the
   * connection's error as its `cause`.
   */
  request(headers: http2.OutgoingHttpHeaders, endStream: boolean): http2.ClientHttp2Stream {
    return this.#open().request(headers, { endStream });
  }

  #open(): http2.ClientHttp2Session {
    const current = this.#session;
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const http2 = process.getBuiltinModule('node:http2') as typeof import('node:http2');
    const a = this.#address;
    const session = http2.connect(a.kind === 'unix' ? 'http://localhost' : 'http://backend', {
      ...SESSION_OPTIONS,
      createConnection: () =>
        a.kind === 'unix'
          ? net.connect({ path: a.path })
          : net.connect({ host: a.host, port: a.port, noDelay: true }),
    });
    // Its streams carry the error to their requests; the session's own is not thrown.
    session.on('error', noop);
    // Streams already open finish on it; new ones go to a new session.
    session.on('goaway', () => this.#forget(session));
    session.on('close', () => this.#forget(session));
    // No request keeps the process alive through an idle session.
    session.unref();
    this.#session = session;
    return session;
  }

  #forget(session: http2.ClientHttp2Session): void {
    if (this.#session === session) this.#session = undefined;
  }

  /** No new streams: the session closes once those open have finished (draining). */
  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  /** Closes the session and every stream on it now. */
  destroy(): void {
    this.#session?.destroy();
    this.#session = undefined;
  }
}

function noop(): void {}
