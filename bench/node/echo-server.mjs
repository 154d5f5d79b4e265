// The backend of the new-connection test: answers each connection's first
// bytes with the same bytes and closes (server closes first, so TIME_WAIT
// stays on the listening side and the client's ephemeral ports are not used up).
// Usage: node echo-server.mjs PORT
import net from 'node:net';

const server = net.createServer((socket) => {
  socket.once('data', (data) => socket.end(data));
  socket.on('error', () => {});
});
server.listen(Number(process.argv[2]), '127.0.0.1', 4096);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
