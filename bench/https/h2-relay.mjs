// The floor of a Node HTTP/2 proxy built the way harbor-sidecar is: node:http2's
// core stream API on the client side, and per stream a pooled keep-alive
// HTTP/1.1 connection to the backend (plain net, read through `onread` into
// one buffer). It does the least such a proxy can: a two-line request head,
// the response's status and Content-Length found with indexOf, and the answer
// sent with the same two headers as bare-node.mjs's. No header rules, no
// strict parsing, no chunked bodies, no timeouts, no errors answered: it is
// correct only for what floor.mjs --h2 sends it (small GETs to the origin),
// and what it costs above bare-node.mjs's own HTTP/2 server is what carrying
// a request to a backend and back costs any Node proxy.
// Each session's table of streams is the sidecar's (http2-stream-table.ts): node:http2's own
// Map costs about 10 us per request under load, which the floor should not count.
// An HTTP/1.1 client (the bench's readiness probe) gets a 200 of its own and is closed.
// Usage: node h2-relay.mjs '{"port":N,"origin":M,"key":PATH,"cert":PATH}'
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { installStreamTable } from '../../dist/https/http2-stream-table.js';
import { SECURE_CONTEXT_OPTIONS } from '../../dist/https/tls.js';

const options = JSON.parse(process.argv[2] ?? '{}');
const read = Buffer.allocUnsafe(64 * 1024);
const END_OF_HEAD = Buffer.from('\r\n\r\n');
/** Header names are matched as the origin (nginx) writes them, lower-cased here. */
const LENGTH = '\r\ncontent-length:';
const idle = [];

/** One keep-alive backend connection; `owner` is the exchange it carries, null while idle. */
class Backend {
  owner = null;
  socket = net.connect({
    host: '127.0.0.1',
    port: options.origin,
    noDelay: true,
    onread: {
      buffer: read,
      callback: (bytes) => {
        this.owner?.data(read.subarray(0, bytes));
        return true;
      },
    },
  });

  constructor() {
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      const i = idle.indexOf(this);
      if (i !== -1) idle.splice(i, 1);
    });
  }
}

/** One stream's request to the backend and its answer back. */
class Exchange {
  /** Bytes of the response that came in earlier reads (copied: the read buffer is reused). */
  held = null;

  constructor(stream, headers) {
    this.stream = stream;
    this.backend = idle.pop() ?? new Backend();
    this.backend.owner = this;
    this.backend.socket.write(
      `${headers[':method']} ${headers[':path']} HTTP/1.1\r\nHost: ${headers[':authority']}\r\n\r\n`,
      'latin1',
    );
  }

  data(chunk) {
    const bytes = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
    this.held = null;
    const end = bytes.indexOf(END_OF_HEAD);
    const at = end === -1 ? -1 : bytes.toString('latin1', 0, end).toLowerCase().indexOf(LENGTH);
    const length = at === -1 ? -1 : Number.parseInt(bytes.toString('latin1', at + LENGTH.length, end), 10);
    if (length < 0 || bytes.length < end + 4 + length) {
      this.held = Buffer.from(bytes);
      return;
    }
    this.backend.owner = null;
    idle.push(this.backend);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    stream.respond({
      ':status': Number(bytes.toString('latin1', 9, 12)),
      'content-type': 'text/plain',
      'content-length': String(length),
    });
    stream.end(Buffer.from(bytes.subarray(end + 4, end + 4 + length)));
  }
}

// As in the sidecar: one TLS server, and the sockets that chose h2 handed to a node:http2
// server that never listens itself.
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 128 } });
h2.on('session', installStreamTable);
h2.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  new Exchange(stream, headers);
});
const server = tls.createServer(
  {
    ...SECURE_CONTEXT_OPTIONS,
    key: readFileSync(options.key),
    cert: readFileSync(options.cert),
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['h2', 'http/1.1'],
  },
  (socket) => {
    if (socket.alpnProtocol === 'h2') {
      h2.emit('connection', socket);
      return;
    }
    socket.on('error', () => {});
    socket.once('data', () =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n'),
    );
  },
);
server.listen(options.port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
