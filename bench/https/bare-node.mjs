// The floor for any Node front end: Node's own https server answering by
// itself (no proxying) with the same bodies as the origin. Same TLS defaults a
// Node proxy gets (session tickets on, TLS 1.2-1.3). With `h2Port`, an HTTP/2
// server there too (Node's core stream API, the cheapest Node has): the floor
// for HTTP/2, on a port of its own so that the HTTP/1 server stays plain https.
// Usage: node bare-node.mjs '{"port":N,"h2Port":M,"key":PATH,"cert":PATH}'
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
// The sidecar's TLS policy (suites and their order, curves), so that the floor seals as it does.
import { SECURE_CONTEXT_OPTIONS } from '../../dist/https/tls.js';

const options = JSON.parse(process.argv[2] ?? '{}');
const small = Buffer.from('hello, harbor\n');
const large = Buffer.alloc(1024 * 1024);
for (let i = 0; i < large.length; i++) large[i] = (i * 7 + 13) & 0xff;
const smallHeaders = { 'content-type': 'text/plain', 'content-length': String(small.length) };
const largeHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(large.length) };

const server = https.createServer(
  {
    ...SECURE_CONTEXT_OPTIONS,
    key: readFileSync(options.key),
    cert: readFileSync(options.cert),
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
  },
  (req, res) => {
    if (req.url === '/1m.bin') {
      res.writeHead(200, largeHeaders);
      res.end(large);
    } else {
      res.writeHead(200, smallHeaders);
      res.end(small);
    }
  },
);
server.keepAliveTimeout = 120_000;
server.listen(options.port, '127.0.0.1');

const h2 =
  options.h2Port === undefined
    ? null
    : http2.createSecureServer({
        ...SECURE_CONTEXT_OPTIONS,
        key: readFileSync(options.key),
        cert: readFileSync(options.cert),
        minVersion: 'TLSv1.2',
      });
h2?.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  const large = headers[':path'] === '/1m.bin';
  stream.respond({ ':status': 200, ...(large ? largeHeaders : smallHeaders) });
  stream.end(large ? large : small);
});
h2?.listen(options.h2Port, '127.0.0.1');

const stop = () => {
  h2?.close();
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
