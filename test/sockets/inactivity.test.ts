// The inactivity sweep on real loopback sockets: a quiet socket times out
// after its timeout and not before, reads and writes start the countdown
// again, a slow reader taking a relayed body is not inactive, a stalled
// process is not a quiet socket, and a timeout of 0 never fires.
import type * as net from 'node:net';
import t from 'tap';
import { InactivitySweep, type Watch } from '../../src/sockets/inactivity.js';
import { socketPair } from '../helpers/net.js';
import { stallEventLoop, waitFor } from '../helpers/wait.js';

/** A watch on `socket` that notes when it first fired (0: not yet). */
function firstFiring(sweep: InactivitySweep, socket: net.Socket): { watch: Watch; firedAt: () => number } {
  let firedAt = 0;
  const watch = sweep.watch(socket, () => {
    firedAt ||= performance.now();
  });
  return { watch, firedAt: () => firedAt };
}

t.test('a quiet socket times out after its timeout, not before', async (t) => {
  const sweep = new InactivitySweep(200);
  t.teardown(() => sweep.stop());
  const [socket] = await socketPair(t);
  const started = performance.now();
  const { watch, firedAt } = firstFiring(sweep, socket);
  watch.set(200);
  await waitFor(() => firedAt() > 0, 'the timeout');
  t.ok(firedAt() - started >= 200, `fired after ${Math.round(firedAt() - started)} ms`);
  sweep.unwatch(watch);
});

t.test('reads and writes start the countdown again', async (t) => {
  const sweep = new InactivitySweep(150);
  t.teardown(() => sweep.stop());
  const [socket, client] = await socketPair(t);
  socket.resume();
  client.resume();
  let fired = 0;
  const watch = sweep.watch(socket, () => fired++);
  watch.set(150);
  // Traffic every 30 ms for six timeouts' length: a byte read, then a byte written.
  const until = performance.now() + 900;
  for (let i = 0; performance.now() < until; i++) {
    if (i % 2 === 0) client.write('x');
    else socket.write('y');
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  t.equal(fired, 0, 'no timeout while bytes move');
  await waitFor(() => fired > 0, 'the timeout once quiet');
  sweep.unwatch(watch);
});

t.test('a slow reader still taking a relayed body is not inactive', async (t) => {
  const sweep = new InactivitySweep(300);
  t.teardown(() => sweep.stop());
  const [socket, client] = await socketPair(t);
  let fired = 0;
  const watch = sweep.watch(socket, () => fired++);
  watch.set(300);
  // 64 MiB relayed as the proxy relays: 64 KiB writes, up to 256 KiB queued, more on 'drain';
  // read at most 1 MiB every 20 ms: over a second, more than four timeouts' length. The last
  // few MiB leave the sender's queue for the kernel's buffers before the reader takes them, and
  // no socket timer (Node's, nginx's send_timeout) sees bytes move there: at this pace they are
  // taken in about 100 ms, well inside the timeout even when the machine is busy.
  const total = 64 * 1024 * 1024;
  const chunk64k = Buffer.alloc(64 * 1024);
  let written = 0;
  const pump = (): void => {
    while (written < total) {
      written += chunk64k.length;
      if (!socket.write(chunk64k) && socket.writableLength > 256 * 1024) return;
    }
  };
  socket.on('drain', pump);
  pump();
  await new Promise<void>((resolve) => {
    let read = 0;
    let step = 0;
    client.on('data', (chunk: Buffer) => {
      read += chunk.length;
      step += chunk.length;
      if (read >= total) resolve();
      else if (step >= 1024 * 1024) {
        step = 0;
        client.pause();
        setTimeout(() => client.resume(), 20);
      }
    });
  });
  t.equal(fired, 0, 'no timeout while the body was being taken');
  await waitFor(() => fired > 0, 'the timeout once quiet');
  sweep.unwatch(watch);
});

t.test("time the process did not run is not the socket's quiet", async (t) => {
  const sweep = new InactivitySweep(100);
  t.teardown(() => sweep.stop());
  const [socket, client] = await socketPair(t);
  socket.resume();
  let fired = 0;
  const watch = sweep.watch(socket, () => fired++);
  watch.set(100);
  await new Promise((resolve) => setTimeout(resolve, 3 * sweep.tickMs));
  // A byte sent, then the process away for four timeouts' length: the tick after comes before
  // the loop reads the byte, and must not take the socket for quiet.
  const before = socket.bytesRead;
  client.write('x');
  stallEventLoop(400);
  await waitFor(() => socket.bytesRead > before, 'the byte read');
  t.equal(fired, 0, 'no timeout for the stall');
  await waitFor(() => fired > 0, 'the timeout once really quiet');
  sweep.unwatch(watch);
});

t.test('a tick is a tenth of the shortest timeout; 0 (none) is not one', async (t) => {
  t.equal(new InactivitySweep(10_000, 60_000).tickMs, 1000);
  t.equal(new InactivitySweep(0, 300, 60_000).tickMs, 30, 'a timeout of 0 does not make the sweep spin');
  t.equal(new InactivitySweep(0).tickMs, 1000);
  t.equal(new InactivitySweep(1).tickMs, 5, 'never under 5 ms');
  t.equal(new InactivitySweep(3_600_000).tickMs, 1000, 'never over a second');
});

t.test('a timeout of 0 never fires; set again, it counts from then', async (t) => {
  const sweep = new InactivitySweep(0, 100);
  t.teardown(() => sweep.stop());
  const [socket] = await socketPair(t);
  const { watch, firedAt } = firstFiring(sweep, socket);
  watch.set(0);
  // Five timeouts' length with none set: the sweep ticks on (a watch remains), nothing fires.
  const ticks = Math.ceil(500 / sweep.tickMs);
  for (let i = 0; i < ticks; i++) await new Promise((resolve) => setTimeout(resolve, sweep.tickMs));
  t.equal(firedAt(), 0);
  // The same watch set again: the quiet time before does not count.
  const setAt = performance.now();
  watch.set(100);
  await waitFor(() => firedAt() > 0, 'the timeout set again');
  t.ok(firedAt() - setAt >= 100, `fired ${Math.round(firedAt() - setAt)} ms after it was set`);
  sweep.unwatch(watch);
});
