// The connection guard on an HTTPS server (harbor-node's API with --api-cert):
// requests arrive on TLS sockets while the server accepts TCP sockets, so the
// guard must act on one connection through both. Real TLS on loopback, a short
// first-byte time so that its effects show quickly.
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t, { type Test } from 'tap';
import { type ConnectionGuard, guardConnections } from '../../src/admin/connection-guard.js';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { waitFor } from '../helpers/wait.js';

const FIRST_BYTE_MS = 300;

const scratch = mkdtempSync(join(tmpdir(), 'guard-tls-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const factory = new OpensslFactory(scratch);
const keyFile = factory.key();
const certFile = factory.cert({ cn: 'localhost', hosts: ['127.0.0.1'], keyFile });
const ca = read(certFile);

async function guardedServer(
  t: Test,
  maxConnections: number,
  handler: (path: string) => Promise<string>,
): Promise<{ port: number; guard: ConnectionGuard }> {
  const server = https.createServer(
    { cert: ca, key: read(keyFile), handshakeTimeout: FIRST_BYTE_MS },
    (req, res) => void handler(req.url ?? '/').then((text) => res.end(text)),
  );
  const guard = guardConnections(server, {
    maxConnections,
    firstByteMs: FIRST_BYTE_MS,
    headersTimeoutMs: 10_000,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => guard.shutdown(0));
  return { port: (server.address() as { port: number }).port, guard };
}

/** A TLS connection with its handshake done, which has sent nothing yet. */
function handshaken(t: Test, port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => resolve(socket));
    socket.on('error', reject);
    t.teardown(() => socket.destroy());
  });
}

/** One GET on `socket`; resolves with the body, rejects when the connection closes first. */
function get(socket: tls.TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve(text.slice(end + 4));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before an answer; got ${JSON.stringify(text)}`)));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

const closed = (socket: Socket): boolean => socket.destroyed || socket.readyState === 'closed';

t.test('a request in flight longer than the first-byte time is answered, on TLS as on TCP', async (t) => {
  const { port } = await guardedServer(t, 8, async (path) => {
    if (path === '/slow') await new Promise((resolve) => setTimeout(resolve, FIRST_BYTE_MS * 4));
    return 'done';
  });
  const socket = await handshaken(t, port);
  t.equal(await get(socket, '/slow'), 'done', 'the slow answer arrives: the TCP socket under it was not cut');
  t.equal(await get(socket, '/fast'), 'done', 'and the connection carries another request');
});

t.test(
  'a connection that finishes its handshake and says nothing is closed, as one that never handshakes',
  async (t) => {
    const { port, guard } = await guardedServer(t, 8, async () => 'ok');
    const quiet = await handshaken(t, port);
    const silentTcp = tcpConnect({ host: '127.0.0.1', port });
    silentTcp.on('error', () => {});
    t.teardown(() => silentTcp.destroy());
    await waitFor(() => closed(quiet) && closed(silentTcp), 'both quiet connections to be closed');
    await waitFor(() => guard.open === 0, 'the guard to count none open');
    t.pass('closed by the guard');
  },
);

t.test(
  'at the cap, the oldest idle TLS connection makes room; shutdown closes the idle at once',
  async (t) => {
    const { port, guard } = await guardedServer(t, 3, async () => 'ok');
    const first = await handshaken(t, port);
    const others = [await handshaken(t, port), await handshaken(t, port)];
    const newest = await handshaken(t, port);
    await waitFor(() => closed(first), 'the oldest to make room');
    t.notOk(others.some(closed), 'the others stay');
    t.equal(await get(newest, '/'), 'ok', 'the newest is answered');
    const started = Date.now();
    await guard.shutdown(60_000);
    t.ok(Date.now() - started < 30_000, 'shutdown did not wait for the deadline');
    await waitFor(() => [...others, newest].every(closed), 'every idle connection to be closed');
  },
);
