// The first bytes of an accepted connection, before TLS: a PROXY protocol header
// (believed only from an address --trust-proxy names; it names the real client
// and is taken off), then a TLS handshake (0x16) handed to the TLS server, or
// plain HTTP answered with a redirect to HTTPS.
import * as net from 'node:net';
// The module's own binding: the global `performance` is a getter, called on every use.
import { performance } from 'node:perf_hooks';
import type * as tls from 'node:tls';
import { parseProxyHeader, startsLikeProxyHeader, unmap } from '../forward/proxy-protocol.js';
import { countHandshakeError, countRequestTimes, countResponse } from '../stats/index.js';
import { cannedHeadLength, type ProxyCore } from './core.js';
import { peerOf } from './forwarding.js';
import { Head } from './head.js';
import { findHeadEnd, parseRequestHead } from './head-parser.js';
import { answerPlainHttp, type PlainHttpRedirect } from './plain-http.js';

/** A PROXY header is at most this long here (v1: 107 bytes; v2 with its TLVs, in practice well under). */
const MAX_PROXY_HEADER = 4096;

export interface IntakeOptions {
  readonly core: ProxyCore;
  /** Where TLS connections go. */
  readonly tls: tls.Server;
  /** Addresses whose PROXY headers are believed (--trust-proxy); undefined: nobody's. */
  readonly trustProxy: net.BlockList | undefined;
  /** The port clients use (a plain-HTTP request is redirected there). */
  readonly externalPort: number;
}

export class ConnectionIntake {
  readonly #options: IntakeOptions;
  /** The client a PROXY header named, by the connection's remote address and port, until its handshake. */
  readonly #proxied = new Map<string, string>();

  constructor(options: IntakeOptions) {
    this.#options = options;
  }

  /** Reads a connection's first bytes: a PROXY header, then TLS or plain HTTP. */
  read(socket: net.Socket, chunk: Buffer): void {
    const { core, trustProxy } = this.#options;
    if (startsLikeProxyHeader(chunk) && !this.#proxied.has(peerKey(socket))) {
      const trusted = trustProxy?.check(unmap(socket.remoteAddress ?? ''), familyOf(socket.remoteAddress));
      if (!trusted) {
        this.#refuse(socket, 'proxy-untrusted', 'a PROXY header from an address --trust-proxy does not name');
        return;
      }
      const parsed = parseProxyHeader(chunk);
      if (parsed.kind === 'incomplete' && chunk.length < MAX_PROXY_HEADER) {
        socket.once('data', (more: Buffer) => this.read(socket, Buffer.concat([chunk, more])));
        return;
      }
      if (parsed.kind !== 'header') {
        this.#refuse(
          socket,
          'proxy-header',
          `a malformed PROXY header (${parsed.kind === 'invalid' ? parsed.reason : 'too long'})`,
        );
        return;
      }
      this.#proxied.set(peerKey(socket), parsed.source?.address ?? socket.remoteAddress ?? '');
      const rest = chunk.subarray(parsed.length);
      if (rest.length === 0) socket.once('data', (more: Buffer) => this.read(socket, more));
      else this.read(socket, rest);
      return;
    }
    socket.setTimeout(0);
    // A TLS handshake starts with 0x16; anything else is plain HTTP.
    if (chunk[0] !== 0x16) {
      countHandshakeError(core.stats, 'plain-http');
      answerPlainHttp(socket, chunk, this.#options.externalPort, core.limits.headerTimeoutMs, (redirect) =>
        this.#onRedirect(socket, redirect),
      );
      return;
    }
    socket.pause();
    socket.unshift(chunk);
    this.#options.tls.emit('connection', socket);
  }

  /** A plain-HTTP request answered with a redirect to https: counted as an answer, and logged. */
  #onRedirect(socket: net.Socket, redirect: PlainHttpRedirect): void {
    const core = this.#options.core;
    countResponse(core.stats, redirect.status);
    const endedAt = performance.now();
    countRequestTimes(core.stats, redirect.status, redirect.startedAt, 0, endedAt);
    const log = core.accessLog;
    if (log === undefined) return;
    const client = peerOf(this.takeClient(socket) ?? socket.remoteAddress, undefined).forwardedFor;
    // Read with the one strict parser: a head it refuses is logged without method and path.
    const bytes = Buffer.from(redirect.head, 'latin1');
    const end = findHeadEnd(bytes, 0, bytes.length);
    const head = new Head();
    const parsed = end > 0 && parseRequestHead(head, bytes, 0, end) === null;
    log.write(
      {
        service: core.service,
        client,
        head: parsed ? head : null,
        protocol: parsed && head.minor === 0 ? 'HTTP/1.0' : 'HTTP/1.1',
        status: redirect.status,
        bytesIn: bytes.length,
        bytesOut: redirect.response.length,
        headBytesOut: cannedHeadLength(redirect.response),
        startedAt: redirect.startedAt,
        backendAt: 0,
        tls: '',
        requestId: redirect.requestId,
        reason: 'plain HTTP on the TLS port',
        grpcStatus: -1,
      },
      endedAt,
    );
  }

  /** The client a trusted PROXY header named for this connection (then forgotten), if one did. */
  takeClient(socket: net.Socket): string | undefined {
    if (this.#proxied.size === 0) return undefined;
    const key = peerKey(socket);
    const client = this.#proxied.get(key);
    this.#proxied.delete(key);
    return client;
  }

  /** The connection closed (perhaps before its handshake). */
  forget(socket: net.Socket): void {
    if (this.#proxied.size > 0) this.#proxied.delete(peerKey(socket));
  }

  #refuse(socket: net.Socket, reason: string, what: string): void {
    const { core } = this.#options;
    countHandshakeError(core.stats, reason);
    if (core.logger.isLevelEnabled('debug')) {
      core.logger.debug(
        { service: core.service, reason, peer: socket.remoteAddress },
        `connection refused: ${what}`,
      );
    }
    socket.destroy();
  }
}

function peerKey(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function familyOf(address: string | undefined): 'ipv4' | 'ipv6' {
  return net.isIPv4(unmap(address ?? '')) ? 'ipv4' : 'ipv6';
}
