import * as net from 'node:net';
import t from 'tap';
import { adoptReadBuffer, CAN_ADOPT_READ_BUFFER, ReadBuffers } from '../../src/forward/read-buffer.js';
import { listenTcp } from './fixtures/net.js';

t.test('this Node lets an accepted socket read into a reused buffer', async (t) => {
  // If a Node upgrade removes the internals, relays fall back to pipe(): slower, still correct. This test says so.
  t.ok(CAN_ADOPT_READ_BUFFER, 'node:net onread internals found');
  const buffer = Buffer.alloc(8);
  const seen: string[] = [];
  const sameBuffer: boolean[] = [];
  let adopted = false;
  const done = new Promise<void>((resolve) => {
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      adopted = adoptReadBuffer(socket, buffer, (nread, chunk) => {
        sameBuffer.push(chunk === buffer);
        seen.push(chunk.subarray(0, nread).toString());
        return true;
      });
      socket.on('end', () => {
        server.close();
        resolve();
      });
      socket.resume();
    });
    listenTcp(server).then(() => {
      const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      client.end('twenty bytes of data');
    });
  });
  await done;
  t.ok(adopted);
  t.equal(seen.join(''), 'twenty bytes of data', 'every byte, in order, then end');
  t.ok(sameBuffer.length >= 3 && sameBuffer.every(Boolean), 'read in 8-byte chunks into the one buffer');
});

t.test('a socket already reading is left alone', async (t) => {
  const server = net.createServer((socket) => {
    t.notOk(adoptReadBuffer(socket, Buffer.alloc(8), () => true));
    socket.destroy();
    server.close();
  });
  await listenTcp(server);
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  await new Promise((resolve) => server.on('close', resolve));
});

t.test('ReadBuffers: spare buffers are handed out again, up to the number kept', async (t) => {
  const buffers = new ReadBuffers(1024, 2);
  const a = buffers.take();
  const b = buffers.take();
  const c = buffers.take();
  t.equal(a.length, 1024);
  t.not(a.buffer, b.buffer, 'each new buffer has memory of its own');
  t.equal(buffers.spare, 0);
  t.equal(buffers.made, 3);
  buffers.give(a);
  buffers.give(b);
  buffers.give(c);
  t.equal(buffers.spare, 2, 'no more than the number kept');
  const again = [buffers.take(), buffers.take()];
  t.ok(again.includes(b) && (again.includes(a) || again.includes(c)), 'given-back buffers come out again');
  t.equal(buffers.made, 3, 'none made for them');
  buffers.give(Buffer.alloc(10));
  t.equal(buffers.spare, 0, 'a buffer of another size is not kept');
});
