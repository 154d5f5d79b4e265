// `harbor-sidecar run` with a slow request in flight and an idle keep-alive
// connection open: SIGTERM lets the slow request finish, closes the idle
// connection at once (it must not hold the exit), refuses new connections,
// and exits 0.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { makePair, removeDir } from '../https/fixtures/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-drain-'));
const pair = makePair();
t.teardown(() => {
  rmSync(root, { recursive: true, force: true });
  removeDir(pair.dir);
});
mkdirSync(join(root, 'certs'));
writeFileSync(join(root, 'certs', 'harbor.crt'), pair.cert);
writeFileSync(join(root, 'certs', 'harbor.key'), pair.key);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function tlsConnect(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pair.cert, servername: 'localhost' });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends a request and resolves with everything read until `until` appears. */
function exchange(socket: tls.TLSSocket, request: string, until: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString();
      if (text.includes(until)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.write(request);
  });
}

t.test('SIGTERM: the slow request completes, the idle connection closes at once, exit 0', async (t) => {
  let slowArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => {
    slowArrived = resolve;
  });
  const backend = http.createServer((req, res) => {
    if (req.url === '/slow') {
      slowArrived();
      setTimeout(() => res.end('slow done'), 1500);
    } else {
      res.end('quick');
    }
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    backend.closeAllConnections();
    backend.close();
  });
  const intPort = await freePort();
  const child = startSidecar(
    ['run', '--listen', '127.0.0.1', '--drain-timeout', '20s', '--log-level', 'info'],
    {
      STACKATO_SERVICES: JSON.stringify({ 'shop-https': { int_port: intPort, port: 35123, name: 'id-1' } }),
      PORT: String((backend.address() as net.AddressInfo).port),
      HARBOR_APP_ROOT: root,
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /https proxy listening/);

  const idle = await tlsConnect(intPort);
  t.match(await exchange(idle, 'GET /warm HTTP/1.1\r\nHost: h\r\n\r\n', 'quick'), /^HTTP\/1\.1 200 OK/);
  const idleClosed = new Promise<void>((resolve) => idle.on('close', () => resolve()));

  const busy = await tlsConnect(intPort);
  let slowDone = false;
  const slow = exchange(busy, 'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n', 'slow done').then((text) => {
    slowDone = true;
    return text;
  });
  await arrived;
  child.kill('SIGTERM');

  await idleClosed;
  t.notOk(slowDone, 'the idle connection closed while the slow request was still running');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(intPort, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'new connections refused while draining');
  const response = await slow;
  t.match(response, /^HTTP\/1\.1 200 OK/);
  t.match(response, /\r\nConnection: close\r\n/);
  t.same(await exited(child), { code: 0, signal: null });
});
