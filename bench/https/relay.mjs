// The floor of a Node HTTPS proxy built the way harbor-sidecar is (Node's TLS
// server, 'data' events from the client, writes to it; a plain backend
// connection read through `onread` into one buffer): each client connection
// is piped to a backend connection of its own, with no HTTP logic at all. It
// answers correctly only for what a 1:1 pipe can carry (wrk's keep-alive
// requests to the origin), which is all floor.mjs asks of it.
// Each flag adds one piece of what the sidecar does per request, to tell
// where its cost above this floor goes:
//   timeouts  an inactivity timeout on both sockets (Node refreshes it on every read and write)
//   parse     the sidecar's strict parser on each request and response head (results unused)
//   string    the request goes to the backend as a latin1 string (the sidecar's rewritten head)
// Usage: node relay.mjs '{"port":N,"origin":M,"key":PATH,"cert":PATH,"flags":["parse"]}'
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Head } from '../../dist/https/head.js';
import { findHeadEnd, parseRequestHead, parseResponseHead } from '../../dist/https/head-parser.js';
import { SECURE_CONTEXT_OPTIONS } from '../../dist/https/tls.js';

const options = JSON.parse(process.argv[2] ?? '{}');
const flags = new Set(options.flags ?? []);
const read = Buffer.allocUnsafe(64 * 1024);
const requestHead = new Head();
const responseHead = new Head();

function parseHead(head, bytes, parser) {
  const end = findHeadEnd(bytes, 0, bytes.length);
  if (end > 0) parser(head, bytes, 0, end);
}

const server = tls.createServer(
  {
    ...SECURE_CONTEXT_OPTIONS,
    key: readFileSync(options.key),
    cert: readFileSync(options.cert),
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
  },
  (client) => {
    const backend = net.connect({
      host: '127.0.0.1',
      port: options.origin,
      noDelay: true,
      keepAlive: true,
      onread: {
        buffer: read,
        callback: (bytes) => {
          const chunk = read.subarray(0, bytes);
          if (flags.has('parse')) parseHead(responseHead, chunk, parseResponseHead);
          // The read buffer is reused: a write that cannot go out at once keeps a copy.
          client.write(client.writableLength > 0 ? Buffer.from(chunk) : chunk);
        },
      },
    });
    if (flags.has('timeouts')) {
      client.setTimeout(120_000, () => client.destroy());
      backend.setTimeout(60_000, () => backend.destroy());
    }
    client.on('data', (chunk) => {
      if (flags.has('parse')) parseHead(requestHead, chunk, parseRequestHead);
      if (flags.has('string')) backend.write(chunk.toString('latin1'), 'latin1');
      else backend.write(chunk);
    });
    client.on('error', () => backend.destroy());
    client.on('close', () => backend.destroy());
    backend.on('error', () => client.destroy());
    backend.on('end', () => client.end());
  },
);
server.listen(options.port, '127.0.0.1');
