// The WebSocket origin of bench/https/websocket.mjs: a plain HTTP server whose
// upgrades the `ws` library accepts, echoing every message. Its own process,
// so that its CPU is not counted with the bench's or the proxy's.
// Usage: node ws-origin.mjs PORT
import http from 'node:http';
import { WebSocketServer } from 'ws';

const server = http.createServer((_req, res) => res.end('ws origin\n'));
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
server.listen(Number(process.argv[2]), '127.0.0.1');
