// Who holds a port: another process (its pid and command), this process, or nobody; TCP and UDP,
// real sockets held by a real child process.
import { type ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import t from 'tap';
import { heldBy, portOwner } from '../../src/sockets/port-owner.js';
import { freePort } from '../helpers/net.js';

/** A child process holding `port` (TCP listening, or UDP bound) on loopback until killed; resolves once it does. */
function holder(
  t: { teardown(fn: () => void): void },
  transport: 'tcp' | 'udp',
  port: number,
): Promise<ChildProcess> {
  const hold =
    transport === 'tcp'
      ? `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('held'))`
      : `require('dgram').createSocket('udp4').bind(${port}, '127.0.0.1', () => console.log('held'))`;
  const child = spawn(process.execPath, ['-e', hold, 'port-holder'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill());
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the holder exited (${code})`)));
  });
}

for (const transport of ['tcp', 'udp'] as const) {
  t.test(`${transport}: another process is named by pid and command`, async (t) => {
    const port = await freePort();
    t.equal(portOwner(port, transport), undefined, 'nobody yet');
    const child = await holder(t, transport, port);
    t.match(portOwner(port, transport), { pid: child.pid, command: /node.*port-holder/ });
    t.match(heldBy(port, transport), new RegExp(`^ by pid ${child.pid} \\(.*node.*port-holder\\)$`));
    t.equal(portOwner(port, transport === 'tcp' ? 'udp' : 'tcp'), undefined, 'the other transport is free');
    t.equal(heldBy(port, transport === 'tcp' ? 'udp' : 'tcp'), '', 'nothing to say of a free port');
    // Asked again within the minute (harbor-node retries a conflict every few seconds): the
    // answer is remembered, not scanned for again, even once the holder is gone.
    child.kill();
    await new Promise((resolve) => child.once('exit', resolve));
    t.equal(portOwner(port, transport), undefined, 'the holder is gone');
    t.match(heldBy(port, transport), new RegExp(`^ by pid ${child.pid} `), 'remembered');
  });
}

t.test('a port this process holds is said to be its own', async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  t.equal(heldBy(port), ' by this process (another of its own listeners)');
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.teardown(() => socket.close());
  t.equal(heldBy(socket.address().port, 'udp'), ' by this process (another of its own listeners)');
});
