// Shared set-up for the HTTPS proxy tests: certificates made with the openssl
// CLI, a small HTTP backend that reports what it received, the proxy itself on
// loopback, and raw TLS clients for byte-exact requests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { Address, HarborService } from '../../src/config/types.js';
import {
  createHttpsProxy,
  createServerSecureContext,
  type HttpsProxy,
  type HttpsProxyOptions,
} from '../../src/https/index.js';
import { silentLogger } from '../../src/log/index.js';
import { createServiceStats, type ServiceStats } from '../../src/stats/index.js';

export interface Pair {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A self-signed pair for localhost, 127.0.0.1 and ::1 (EC P-256 or RSA 2048). */
export function makePair(kind: 'ec' | 'rsa' = 'ec', cn = 'localhost'): Pair {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-https-'));
  const keyArgs =
    kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  openssl(
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
    ],
    dir,
  );
  return {
    dir,
    cert: readFileSync(join(dir, 'server.crt'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  };
}

export interface ClientPki {
  readonly dir: string;
  readonly caCert: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A client pair signed by another CA: must be refused. */
  readonly strangerCert: string;
  readonly strangerKey: string;
}

/** A client CA and a client certificate it signed (CN=client-one, O=Harbor Test), plus a stranger. */
export function makeClientPki(): ClientPki {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-pki-'));
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    ['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Test CA'],
    dir,
  );
  openssl(
    [
      'req',
      '-new',
      ...ecKey,
      '-keyout',
      'client.key',
      '-out',
      'client.csr',
      '-subj',
      '/O=Harbor Test/CN=client-one',
    ],
    dir,
  );
  writeFileSync(join(dir, 'ext.cnf'), 'extendedKeyUsage=clientAuth\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'client.crt',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      'stranger.key',
      '-out',
      'stranger.crt',
      '-days',
      '2',
      '-subj',
      '/CN=stranger',
    ],
    dir,
  );
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  return {
    dir,
    caCert: read('ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    strangerCert: read('stranger.crt'),
    strangerKey: read('stranger.key'),
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function service(name = 'web-https', port: number | undefined = 35048, intPort = 4100): HarborService {
  return {
    name,
    instanceId: 'cf7f868a-8b7b-4ac8-ab4d-9fd87efb7c09',
    nodeId: 'harbor_node_1',
    hostname: '',
    host: '',
    port,
    intPort,
    extHostname: 'ports.example.com',
    extHost: '',
    transport: 'tcp',
    https: true,
    variable: 'STACKATO_HARBOR',
  };
}

/** What the echo backend saw of a request. */
export interface Echo {
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyLength: number;
  bodySha: string;
  trailers: Record<string, string | undefined>;
}

/**
 * A backend (Node's http server) that answers JSON describing the request.
 * Paths: /slow?ms=N waits, /bytes?n=N sends N bytes, /chunked sends a chunked
 * body with a trailer, /status?code=N answers N, /close sends Connection: close.
 */
export async function startEchoBackend(listenOn: string | { host: string } = { host: '127.0.0.1' }): Promise<{
  server: http.Server;
  address: Address;
  requests: number;
  close(): Promise<void>;
}> {
  const state = { requests: 0 };
  const { createHash } = await import('node:crypto');
  const server = http.createServer((req, res) => {
    state.requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const echo: Echo = {
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: length,
        bodySha: hash.digest('hex'),
        trailers: req.trailers,
      };
      const answer = (): void => {
        switch (url.pathname) {
          case '/bytes': {
            const n = Number(url.searchParams.get('n') ?? '0');
            res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
            const block = Buffer.alloc(64 * 1024, 0x61);
            let left = n;
            const pump = (): void => {
              while (left > 0) {
                const piece = left >= block.length ? block : block.subarray(0, left);
                left -= piece.length;
                if (!res.write(piece)) {
                  res.once('drain', pump);
                  return;
                }
              }
              res.end();
            };
            pump();
            return;
          }
          case '/chunked':
            res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
            res.write('hello ');
            res.write('chunked ');
            res.addTrailers({ 'x-checksum': 'abc123' });
            res.end('world');
            return;
          case '/status': {
            const code = Number(url.searchParams.get('code') ?? '200');
            res.writeHead(code, { 'x-status': String(code) });
            res.end(code === 204 || code === 304 ? undefined : JSON.stringify(echo));
            return;
          }
          case '/close':
            res.writeHead(200, { connection: 'close', 'content-type': 'application/json' });
            res.end(JSON.stringify(echo));
            return;
          default:
            res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'echo' });
            res.end(JSON.stringify(echo));
        }
      };
      const ms = Number(url.searchParams.get('ms') ?? '0');
      if (url.pathname === '/slow' && ms > 0) setTimeout(answer, ms);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  const address = await new Promise<Address>((resolve) => {
    if (typeof listenOn === 'string') {
      server.listen(listenOn, () => resolve({ kind: 'unix', path: listenOn }));
    } else {
      server.listen(0, listenOn.host, () => {
        resolve({ kind: 'tcp', host: listenOn.host, port: (server.address() as net.AddressInfo).port });
      });
    }
  });
  return {
    server,
    address,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface ProxyFixture {
  proxy: HttpsProxy;
  port: number;
  stats: ServiceStats;
  pair: Pair;
}

/** Starts a proxy on 127.0.0.1 and ::1 (a free port) in front of `backend`. */
export async function startProxy(
  backend: Address,
  overrides: Partial<HttpsProxyOptions> & { pair?: Pair; ca?: string } = {},
): Promise<ProxyFixture> {
  const pair = overrides.pair ?? makePair();
  const stats = createServiceStats();
  const proxy = createHttpsProxy({
    service: service(),
    listen: { port: 0, hosts: ['127.0.0.1', '::1'] },
    backend,
    secureContext: createServerSecureContext({
      cert: pair.cert,
      key: pair.key,
      ...(overrides.ca === undefined ? {} : { ca: overrides.ca }),
    }),
    stats,
    logger: silentLogger(),
    ...overrides,
  });
  await proxy.start();
  const port = proxy.address()[0]?.port ?? 0;
  return { proxy, port, stats, pair };
}

/** Opens a TLS connection to the proxy (HTTP/1.1 ALPN) trusting `pair`. */
export function connectTls(
  port: number,
  pair: Pair,
  options: tls.ConnectionOptions = {},
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pair.cert,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
      ...options,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends raw bytes on a new TLS connection and collects everything until the server closes (or `untilBytes`). */
export async function rawExchange(
  port: number,
  pair: Pair,
  request: string | Buffer,
  options: { untilIncludes?: string; timeoutMs?: number } = {},
): Promise<string> {
  const socket = await connectTls(port, pair);
  return new Promise((resolve) => {
    let out = '';
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 5000);
    socket.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (options.untilIncludes !== undefined && out.includes(options.untilIncludes)) finish();
    });
    socket.on('close', finish);
    socket.on('error', finish);
    socket.write(request);
  });
}

/** An https GET/POST with Node's client, resolving status, headers and body. */
export function httpsRequest(
  port: number,
  pair: Pair,
  options: https.RequestOptions & { body?: string | Buffer } = {},
): Promise<{
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  trailers: NodeJS.Dict<string>;
}> {
  return new Promise((resolve, reject) => {
    const { body, ...rest } = options;
    const req = https.request(
      { host: '127.0.0.1', port, ca: pair.cert, servername: 'localhost', agent: false, ...rest },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            trailers: res.trailers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
