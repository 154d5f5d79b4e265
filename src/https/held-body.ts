// A request body held whole (body-spool.ts) goes to the backend once it has
// ended: one exchange for HTTP/1 and HTTP/2 alike. The head gets the body's
// Content-Length, or chunked framing when the client's trailers must ride
// along; then the body, read back with the backend's backpressure.

import type { BodySpool } from './body-spool.js';
import type { ProxyCore } from './core.js';
import type { Exchange } from './exchange.js';

/**
 * Sends `head` (the request head without its last CRLF) and the held body. `lastChunk`: the
 * chunked body's last chunk with its trailer section, or null to send a Content-Length. `done`
 * once every byte went (the request is then ended), or with the error reading it back.
 */
export function sendHeldBody(
  exchange: Exchange,
  head: string,
  spool: BodySpool,
  lastChunk: string | null,
  done: (error: NodeJS.ErrnoException | null) => void,
): void {
  const framing = lastChunk === null ? `Content-Length: ${spool.size}` : 'Transfer-Encoding: chunked';
  const sink = (chunk: Buffer): boolean => {
    if (!exchange.open) return true;
    return lastChunk === null ? exchange.writeBody(chunk) : exchange.writeChunk(chunk);
  };
  exchange.corked(() => {
    exchange.writeHead(`${head}${framing}\r\n\r\n`);
    spool.send(sink, (error) => {
      if (error === null) {
        exchange.endRequest();
        if (lastChunk !== null) exchange.writeFraming(lastChunk);
      }
      done(error);
    });
  });
}

/**
 * The held body could not be written or read back (a full or missing temp folder): it is
 * thrown away, and said once per request (the request is answered 500 by its protocol).
 */
export function dropHeldBody(core: ProxyCore, spool: BodySpool, error: NodeJS.ErrnoException): void {
  spool.close();
  core.logger.warn(
    { service: core.service, code: error.code, folder: spool.folder },
    'a request body without a length could not be held in the temp folder: 500',
  );
}
