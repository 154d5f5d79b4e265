// Small loopback helpers for tests: free ports, a connected socket pair, a backend
// that echoes what it received, a TLS probe that reports the certificate served.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect, createServer, type NetConnectOpts, type Socket } from 'node:net';
import * as tls from 'node:tls';

/**
 * Where freePort() picks: below Linux's ephemeral range (32768-60999), from which every
 * outgoing connection and every listen(0) of the tests running beside takes its port, and
 * below the node tests' port ranges (20000-31000, test/node/fixtures/ranges.ts). A port
 * listen(0) had handed out was free only at that moment: a parallel test's connection took one
 * before the sidecar the test started could bind it (E_PORT_IN_USE, 2026-12-02).
 */
const PICK_LOW = 10_000;
const PICK_HIGH = 20_000;
/** Ports this process has handed out already: not handed out twice. */
const handedOut = new Set<number>();

/** A TCP port on `host` that is free now and that nothing else in the tests takes by itself. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PICK_LOW + Math.floor(Math.random() * (PICK_HIGH - PICK_LOW));
    if (handedOut.has(port) || !(await bindsNow(port, host))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found in ${PICK_LOW}-${PICK_HIGH - 1} on ${host}`);
}

/** A connected pair of loopback sockets, destroyed at the test's end: [the server's side, the client's side]. */
export async function socketPair(t: { teardown(fn: () => void): void }): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [Socket];
  server.close();
  t.teardown(() => {
    accepted.destroy();
    client.destroy();
  });
  return [accepted, client];
}

function bindsNow(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A loopback TCP port that refuses connections for as long as this process lives and that no
 * other test can take meanwhile: the local end of a connection this process holds open. A port
 * from freePort() is only free when it is returned; another test may listen on it a moment later.
 */
export async function refusingPort(): Promise<number> {
  const server = createServer((accepted) => accepted.unref());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const holder = connect((server.address() as { port: number }).port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    holder.once('connect', resolve);
    holder.once('error', reject);
  });
  holder.unref();
  server.unref();
  return holder.localPort as number;
}

/** Whether something accepts a connection now: a port on 127.0.0.1, or any address (a unix socket). */
export function acceptsConnections(target: number | NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(typeof target === 'number' ? { port: target, host: '127.0.0.1' } : target);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface EchoBackend {
  readonly server: Server;
  readonly port: number;
  /** The headers of every request received, in order. */
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A plain HTTP backend answering `backend:<method> <url>` and recording request headers. */
export async function echoBackend(port = 0): Promise<EchoBackend> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`backend:${req.method} ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The SHA-256 fingerprint of the certificate a TLS server on host:port serves. */
export function servedFingerprint(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, servername: 'localhost' }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/** GET over HTTPS trusting `ca`; resolves with status and body. */
export function httpsGet(
  port: number,
  ca: string,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    import('node:https').then(({ request }) => {
      const req = request(
        { host: '127.0.0.1', port, path, ca, servername: 'localhost', headers, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        },
      );
      req.once('error', reject);
      req.end();
    }, reject);
  });
}

/** Everything a readable stream (an HTTP/2 stream, say) gives until its end, as UTF-8 text. */
export function readText(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

/**
 * Bytes the kernel holds unread for `socket` (its Recv-Q, from `ss`). Closing a socket with
 * bytes unread makes the kernel send a reset rather than a FIN: how tests make a peer fail.
 */
export function unreadBytes(socket: Socket): number {
  const filter = `( sport = :${socket.localPort} and dport = :${socket.remotePort} )`;
  const out = spawnSync('ss', ['-tnH', 'state', 'established', filter], { encoding: 'utf8' }).stdout;
  return Number(out.trim().split(/\s+/)[0] || 0);
}
