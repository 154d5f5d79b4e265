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
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

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
  server.headersTimeout = options.headersTimeoutMs;
  server.requestTimeout = Math.max(server.requestTimeout, options.headersTimeoutMs);
  server.keepAliveTimeout = Math.min(server.keepAliveTimeout, options.firstByteMs);

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      inFlight.delete(socket);
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
  let closing = false;
  server.on('request', (req, res) => {
    const socket = req.socket;
    inFlight.add(socket);
    // It spoke: a request in flight is not timed here (Node's own socket 'timeout' handler
    // would end it); between requests Node's keep-alive timeout applies.
    socket.setTimeout(0);
    if (closing) res.setHeader('connection', 'close');
    res.once('close', () => {
      inFlight.delete(socket);
      // Shutting down: a connection whose answer is out is not kept for another request.
      if (closing) socket.end();
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
