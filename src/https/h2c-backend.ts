// The backend spoken to as HTTP/2 in clear text (h2c, prior knowledge: RFC 9113
// section 3.3), as a gRPC server needs (--backend-protocol h2c). Streams go
// to a session once its SETTINGS have come, and no more to one than the
// backend's SETTINGS_MAX_CONCURRENT_STREAMS allows: a stream past that limit
// is refused by the backend (grpc-go, Node's server), so requests wait for
// room, and when every session is full another is opened, up to
// MAX_SESSIONS (then they wait for a stream to end; --backend-timeout bounds
// the wait). A session the backend closed, failed or told to go away
// (GOAWAY) takes no new stream; those open on it finish there.
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Address } from '../config/types.js';
import { installFastAsyncBind } from './async-bind.js';
import { installStreamTable } from './http2-stream-table.js';

/** What the proxy's HTTP/2 sessions to its backend are opened with. */
const SESSION_OPTIONS: http2.ClientSessionOptions = {
  maxSessionMemory: 32,
  settings: { enablePush: false },
};

/** Sessions open to the backend at most; past them, requests wait for a stream to end. */
export const MAX_SESSIONS = 16;

/**
 * A request waiting for a stream: given one, or the error of the session it waited for
 * (`notHttp2`: the backend took the connection but did not speak HTTP/2 on it).
 */
export interface StreamRequest {
  readonly headers: http2.OutgoingHttpHeaders;
  readonly endStream: boolean;
  /** The stream's end waits for trailers ('wantTrailers'): a request body's, if its client sends them. */
  readonly waitForTrailers: boolean;
  readonly give: (stream: http2.ClientHttp2Stream) => void;
  readonly fail: (error: Error, notHttp2?: boolean) => void;
}

class BackendSession {
  readonly session: http2.ClientHttp2Session;
  /** Streams open on it. */
  active = 0;
  /** The backend's SETTINGS have come: its stream limit is known. */
  ready = false;
  /** Closed, failed or told to go away: no new streams. */
  gone = false;

  constructor(session: http2.ClientHttp2Session) {
    this.session = session;
  }

  get room(): boolean {
    return this.ready && !this.gone && this.active < this.session.remoteSettings.maxConcurrentStreams!;
  }
}

export class H2cBackend {
  readonly #address: Address;
  /** Told each time a session's connection is accepted (the pool's "answered", as a TCP connect is). */
  readonly #onConnect: () => void;
  readonly #sessions: BackendSession[] = [];
  readonly #waiting: StreamRequest[] = [];

  constructor(address: Address, onConnect: () => void) {
    this.#address = address;
    this.#onConnect = onConnect;
    // Every request node:http2's client makes goes through AsyncResource#bind (async-bind.ts).
    installFastAsyncBind();
  }

  /** Asks for a stream; `request.give` gets it now or once there is room. */
  request(request: StreamRequest): void {
    this.#waiting.push(request);
    this.#dispatch();
  }

  /** A request that no longer wants its stream (its client went away while it waited). */
  cancel(request: StreamRequest): void {
    const i = this.#waiting.indexOf(request);
    if (i !== -1) this.#waiting.splice(i, 1);
  }

  #dispatch(): void {
    const waiting = this.#waiting;
    while (waiting.length > 0) {
      const target = this.#sessions.find((s) => s.room);
      if (target === undefined) {
        // A session still connecting will take them when its SETTINGS come.
        if (this.#sessions.length < MAX_SESSIONS && !this.#sessions.some((s) => !s.ready && !s.gone)) {
          this.#open();
        }
        return;
      }
      this.#start(target, waiting.shift() as StreamRequest);
    }
  }

  #start(target: BackendSession, request: StreamRequest): void {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = target.session.request(request.headers, {
        endStream: request.endStream,
        waitForTrailers: request.waitForTrailers,
        // node:http2's defaults, given: it adds each one missing to the options object of every
        // stream, which cost gRPC unary calls 10-12% of their CPU (docs/benchmarks.md, h2c).
        weight: 16,
        parent: 0,
        exclusive: false,
        silent: false,
      } as http2.ClientSessionRequestOptions);
    } catch (error) {
      // The session closed under it (ERR_HTTP2_INVALID_SESSION, ERR_HTTP2_GOAWAY_SESSION).
      target.gone = true;
      request.fail(error as Error);
      return;
    }
    target.active++;
    stream.once('close', () => {
      target.active--;
      this.#dispatch();
    });
    request.give(stream);
  }

  #open(): void {
    const http2 = process.getBuiltinModule('node:http2') as typeof import('node:http2');
    const a = this.#address;
    const session = http2.connect(a.kind === 'unix' ? 'http://localhost' : 'http://backend', {
      ...SESSION_OPTIONS,
      createConnection: () =>
        a.kind === 'unix'
          ? net.connect({ path: a.path })
          : net.connect({ host: a.host, port: a.port, noDelay: true }),
    });
    // Before its first stream, as for the clients' sessions (http2-stream-table.ts).
    installStreamTable(session);
    const entry = new BackendSession(session);
    this.#sessions.push(entry);
    session.on('remoteSettings', () => {
      entry.ready = true;
      this.#dispatch();
    });
    let connected = false;
    session.on('connect', () => {
      connected = true;
      this.#onConnect();
    });
    session.on('error', (error: Error) => {
      // Streams open on it fail with the error themselves; requests that waited for a session
      // that never came up fail with it: the backend is not listening, or it took the
      // connection and answered something other than HTTP/2 (an HTTP/1.1 server's 400).
      if (!entry.ready) for (const request of this.#waiting.splice(0)) request.fail(error, connected);
      this.#forget(entry);
    });
    session.on('goaway', () => this.#forget(entry));
    session.on('close', () => this.#forget(entry));
    // No request keeps the process alive through an idle session.
    session.unref();
  }

  #forget(entry: BackendSession): void {
    entry.gone = true;
    const i = this.#sessions.indexOf(entry);
    if (i === -1) return;
    this.#sessions.splice(i, 1);
    this.#dispatch();
  }

  /** No new streams: each session closes once the streams open on it have ended (draining). */
  close(): void {
    for (const entry of this.#sessions.splice(0)) {
      entry.gone = true;
      entry.session.close();
    }
  }

  /** Closes every session and stream now; requests still waiting fail. */
  destroy(): void {
    for (const entry of this.#sessions.splice(0)) {
      entry.gone = true;
      entry.session.destroy();
    }
    const closed = new Error('the proxy is closing');
    for (const request of this.#waiting.splice(0)) request.fail(closed);
  }
}
