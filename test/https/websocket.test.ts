// WebSocket (and any Upgrade) through the proxy: the 101 is relayed and the
// two connections are joined both ways, for text, large binary messages and
// the close handshake; it survives a certificate swap.
import * as http from 'node:http';
import type * as net from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { serverTlsOptions } from '../../src/https/index.js';
import { eventually } from '../helpers/wait.js';
import { makePair, rawExchange, removeDir, startProxy } from './fixtures/helpers.js';

const server = http.createServer((_req, res) => res.end('plain'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  ws.send(`hello ${req.headers['x-forwarded-proto']} ${req.headers['x-forwarded-port']}`);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as net.AddressInfo).port;
const fx = await startProxy({ kind: 'tcp', host: '127.0.0.1', port });
t.teardown(async () => {
  await fx.proxy.close();
  wss.close();
  server.closeAllConnections();
  server.close();
  removeDir(fx.pair.dir);
});

function open(): Promise<{ ws: WebSocket; first: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://localhost:${fx.port}/chat`, { ca: fx.pair.cert });
    ws.once('message', (data) => resolve({ ws, first: String(data) }));
    ws.once('error', reject);
  });
}

function next(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary })),
  );
}

t.test('a WebSocket passes both ways through the proxy', async (t) => {
  const { ws, first } = await open();
  t.equal(first, 'hello https 35048', 'the backend saw the forwarding headers on the upgrade');
  ws.send('ping');
  t.equal(String((await next(ws)).data), 'ping');
  const big = Buffer.alloc(3 * 1024 * 1024, 5);
  ws.send(big);
  const echoed = await next(ws);
  t.ok(echoed.isBinary);
  t.ok(echoed.data.equals(big), '3 MiB binary message intact');
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(4001, 'bye');
  t.equal(await closed, 4001, 'close handshake passes');
});

t.test('an open WebSocket survives a certificate swap', async (t) => {
  const { ws } = await open();
  const other = makePair();
  t.teardown(() => removeDir(other.dir));
  fx.proxy.setTls(serverTlsOptions({ cert: other.cert, key: other.key }));
  ws.send('still here');
  t.equal(String((await next(ws)).data), 'still here');
  ws.close();
  fx.proxy.setTls(serverTlsOptions({ cert: fx.pair.cert, key: fx.pair.key }));
});

t.test('an upgrade the backend declines is a normal response', async (t) => {
  const response = await rawExchange(
    fx.port,
    fx.pair,
    'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: something\r\nConnection: upgrade, close\r\n\r\n',
  );
  // The ws backend refuses an unknown protocol with its own 400: relayed as it is.
  t.match(response, /^HTTP\/1\.1 400 Bad Request/);
  t.match(response, /Invalid Upgrade header$/);
});

t.test('many WebSockets opened and closed leave no connection behind', async (t) => {
  for (let i = 0; i < 50; i++) {
    const { ws } = await open();
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close();
    await closed;
  }
  await eventually(() => fx.proxy.openConnections === 0 && wss.clients.size === 0);
  t.equal(fx.proxy.openConnections, 0);
  t.equal(wss.clients.size, 0);
});
