// Keeping a small control-plane HTTP server (the admin endpoint, harbor-node's
// API) answerable and stoppable whatever its clients do (issue 9, items 2 and
// 19):
//   - a connection that sends nothing for `firstByteMs` is closed;
//   - at the connection cap, the oldest connection with no request in flight
//     makes room for the new one, so idle or half-open clients can never lock
//     out a probe (a plain `maxConnections` refuses the probe instead);
//   - shutdown closes at once every connection with no request in flight,
//     half-sent heads included, and the rest at the deadline.
// A slow head (slowloris) is cut by the server's headersTimeout, checked every
// second here.
//
// On an HTTPS server the connection is the TCP socket the server accepted,
// while requests arrive on the TLS socket over it (req.socket): each TLS
// socket is led back to its TCP socket by their shared address pair, so the
// first-byte timer, the cap and shutdown act on one object per connection.
// The whole handshake is bounded by the server's own handshakeTimeout, an
// option given where the server is made.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { type TLSSocket, Server as TlsServer } from 'node:tls';

export interface ConnectionGuardOptions {
  /** Open connections at most; the oldest without a request in flight is closed for a new one. */
  readonly maxConnections: number;
  /** A connection must send its first byte (and, kept alive, its next request) within this. */
  readonly firstByteMs: number;
  /** The whole request head within this (Node's headersTimeout). */
  readonly headersTimeoutMs: number;
}

export interface ConnectionGuard {
  /** Stops accepting; closes idle and half-open connections now, the rest after `deadlineMs`. */
  shutdown(deadlineMs: number): Promise<void>;
  /** Open connections, for tests and status. */
  readonly open: number;
}

export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  // Insertion order is age order: the first entry without a request in flight is the oldest idle.
  const sockets = new Set<Socket>();
  const inFlight = new Set<Socket>();
  const overTls = server instanceof TlsServer;
  /** TLS only: the TCP socket under each TLS socket, and the TCP sockets by address pair until their handshake ends. */
  const tcpOf = new WeakMap<Socket, Socket>();
  const handshaking = new Map<string, Socket>();
  server.headersTimeout = options.headersTimeoutMs;
  server.requestTimeout = Math.max(server.requestTimeout, options.headersTimeoutMs);
  server.keepAliveTimeout = Math.min(server.keepAliveTimeout, options.firstByteMs);

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    const pair = overTls ? addressPair(socket) : undefined;
    if (pair !== undefined) handshaking.set(pair, socket);
    socket.once('close', () => {
      sockets.delete(socket);
      inFlight.delete(socket);
      if (pair !== undefined && handshaking.get(pair) === socket) handshaking.delete(pair);
    });
    socket.setTimeout(options.firstByteMs, () => {
      if (!inFlight.has(socket)) socket.destroy();
    });
    if (sockets.size > options.maxConnections) {
      let victim: Socket | undefined;
      for (const candidate of sockets) {
        if (!inFlight.has(candidate)) {
          victim = candidate;
          break;
        }
      }
      victim?.destroy();
    }
  });
  if (overTls) {
    (server as unknown as TlsServer).on('secureConnection', (tlsSocket: TLSSocket) => {
      const pair = addressPair(tlsSocket);
      const tcp = pair === undefined ? undefined : handshaking.get(pair);
      if (pair === undefined || tcp === undefined) return;
      handshaking.delete(pair);
      tcpOf.set(tlsSocket, tcp);
    });
  }
  let closing = false;
  server.on('request', (req, res) => {
    const carrier = req.socket;
    const socket = tcpOf.get(carrier) ?? carrier;
    inFlight.add(socket);
    // It spoke: a request in flight is not timed here (Node's own socket 'timeout' handler
    // would end it); between requests Node's keep-alive timeout applies.
    socket.setTimeout(0);
    if (closing) res.setHeader('connection', 'close');
    res.once('close', () => {
      inFlight.delete(socket);
      // Shutting down: a connection whose answer is out is not kept for another request.
      if (closing) carrier.end();
    });
  });

  return {
    get open() {
      return sockets.size;
    },
    shutdown(deadlineMs) {
      closing = true;
      return new Promise<void>((resolve) => {
        const deadline = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, deadlineMs);
        server.close(() => {
          clearTimeout(deadline);
          resolve();
        });
        for (const socket of sockets) if (!inFlight.has(socket)) socket.destroy();
      });
    },
  };
}

/** Both ends of a TCP connection, as its TCP and TLS sockets both report them; undefined once it is gone. */
function addressPair(socket: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || localAddress === undefined) return undefined;
  return `${remoteAddress} ${remotePort} ${localAddress} ${localPort}`;
}
