// HTTP/2 clients (ALPN h2): node:http2 speaks the protocol, a server that
// never listens itself is handed the TLS sockets that negotiated h2, and each
// stream becomes an H2Stream (http2-stream.ts).
import type * as http2 from 'node:http2';
import type * as tls from 'node:tls';
import { SLOT } from '../sockets/live-set.js';
import type { ClientConnection, ProxyCore } from './core.js';
import type { Peer } from './forwarding.js';
import { StreamSpares } from './http2-spares.js';
import { H2Stream, noop } from './http2-stream.js';
import { installStreamTable } from './http2-stream-table.js';

const NGHTTP2_REFUSED_STREAM = 7;

/**
 * The HTTP/2 side of a proxy: TLS sockets that negotiated h2 are handed to
 * `accept`, which gives them to a node:http2 server that never listens itself.
 */
export class Http2Front {
  readonly #core: ProxyCore;
  readonly #server: http2.Http2Server;
  readonly #peers = new WeakMap<http2.Http2Session, Peer>();
  readonly #spares: StreamSpares;
  #pendingPeer: Peer | undefined;
  #pendingSocket: tls.TLSSocket | undefined;

  constructor(core: ProxyCore) {
    this.#core = core;
    this.#spares = new StreamSpares(core.limits.maxHeaderBytes);
    // Loaded on the first HTTP/2 client: a proxy only HTTP/1 clients use idles without it (~2 MB).
    const http2 = process.getBuiltinModule('node:http2') as typeof import('node:http2');
    this.#server = http2.createServer({
      maxSessionMemory: 32,
      // nghttp2 refuses (resets) a stream past these; they are set above the proxy's own head
      // limits (maxHeaderBytes, 200 lines), which answer 431 as HTTP/1 does (issue 9, item 23).
      maxHeaderListPairs: 400,
      settings: {
        enablePush: false,
        // WebSockets over HTTP/2 (RFC 8441): a browser opens them as streams of the connection
        // it has, instead of a TLS connection of its own each (http2-websocket.ts).
        enableConnectProtocol: true,
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
    this.#pendingSocket = socket;
    this.#server.emit('connection', socket);
    this.#pendingPeer = undefined;
    this.#pendingSocket = undefined;
  }

  #onSession = (session: http2.ServerHttp2Session): void => {
    // Before its first stream: streams that outlive their close no more (http2-stream-table.ts).
    installStreamTable(session);
    const peer = this.#pendingPeer;
    if (peer !== undefined) this.#peers.set(session, peer);
    const core = this.#core;
    const entry: ClientConnection = {
      [SLOT]: -1,
      drain: () => {
        if (!session.closed && !session.destroyed) session.close();
      },
      destroy: () => session.destroy(),
    };
    core.connections.add(entry);
    // The idle timeout on the session's TLS socket, kept by the proxy's sweep: its frames either
    // way are the session's activity (session.setTimeout re-arms a timer on every frame of every
    // stream: 5,500 instructions per request under callgrind). Closing is graceful: no new
    // streams, those open finish.
    const socket = this.#pendingSocket;
    const watch = socket === undefined ? undefined : core.sweep.watch(socket, () => session.close());
    watch?.set(core.limits.idleTimeoutMs);
    session.on('close', () => {
      core.connections.delete(entry);
      if (watch !== undefined) core.sweep.unwatch(watch);
    });
    session.on('error', noop);
    if (core.draining) session.close();
  };

  #onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const peer = this.#peers.get(stream.session as http2.ServerHttp2Session);
    if (peer === undefined) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    new H2Stream(this.#core, stream, headers, peer, this.#spares);
  };
}
