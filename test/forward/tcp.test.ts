import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import t, { type Test } from 'tap';
import { fixedPicker, type Picker, type Target, TcpForwarder } from '../../src/forward/index.js';
import { relayReadBuffers } from '../../src/forward/tcp.js';
import { silentLogger } from '../../src/log/index.js';
import { refusingPort, unreadBytes } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { echoServer, listenTcp, tagServer, tcpRequest } from './fixtures/net.js';

const logger = silentLogger();

async function startTcp(
  t: Test,
  picker: Picker,
  extra: Partial<ConstructorParameters<typeof TcpForwarder>[0]> = {},
) {
  const forwarder = new TcpForwarder({
    listen: { host: '127.0.0.1', port: 0 },
    picker,
    logger,
    name: 'test',
    ...extra,
  });
  await forwarder.start();
  t.teardown(() => forwarder.close());
  return forwarder;
}

/** A picker over a list that walks it in order, remembering which targets failed. */
function listPicker(targets: Target[]): Picker & { failed: Target[] } {
  let next = 0;
  const failed: Target[] = [];
  return {
    failed,
    size: targets.length,
    pick() {
      const live = targets.filter((x) => !failed.includes(x));
      if (live.length === 0) return undefined;
      return live[next++ % live.length];
    },
    fail(target) {
      failed.push(target);
    },
  };
}

t.test('relays a request and the reply', async (t) => {
  const echo = await echoServer(t);
  const forwarder = await startTcp(t, fixedPicker({ host: '127.0.0.1', port: echo.port }));
  const reply = await tcpRequest(forwarder.port!, 'hello through the relay');
  t.equal(reply, 'hello through the relay');
  t.equal(forwarder.stats.connectionsTotal, 1);
});

t.test('half-close: the client ends its side and still reads the whole answer', async (t) => {
  // The server answers only after it has seen the client's end, so a relay that closed both directions on FIN would lose the answer.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      setTimeout(() => socket.end(`got ${Buffer.concat(chunks).length} bytes`), 50);
    });
  });
  await listenTcp(server);
  t.teardown(() => server.close());
  const forwarder = await startTcp(
    t,
    fixedPicker({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }),
  );
  t.equal(await tcpRequest(forwarder.port!, 'x'.repeat(1000)), 'got 1000 bytes');
});

t.test('large transfer both ways arrives intact (backpressure)', async (t) => {
  const echo = await echoServer(t);
  const forwarder = await startTcp(t, fixedPicker({ host: '127.0.0.1', port: echo.port }));
  const payload = randomBytes(24 * 1024 * 1024);
  const sent = createHash('sha256').update(payload).digest('hex');
  const received = await new Promise<{ hash: string; length: number }>((resolve, reject) => {
    const hash = createHash('sha256');
    let length = 0;
    const socket = net.connect(forwarder.port!, '127.0.0.1');
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      length += chunk.length;
      hash.update(chunk);
    });
    socket.on('end', () => resolve({ hash: hash.digest('hex'), length }));
    socket.end(payload);
  });
  t.equal(received.length, payload.length);
  t.equal(received.hash, sent);
});

/** Sends `payload` through the relay at `port`, ending its side, and resolves with all that came back. */
function echoed(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.end(payload);
  });
}

t.test(
  'read buffers go back to the pool once both sockets closed, and carry each connection its own bytes',
  async (t) => {
    const echo = await echoServer(t);
    const forwarder = await startTcp(t, fixedPicker({ host: '127.0.0.1', port: echo.port }));
    /** Every buffer made is back in the pool (none is kept by an ended relay). */
    const allBack = () => forwarder.openConnections === 0 && relayReadBuffers.spare === relayReadBuffers.made;
    await waitFor(allBack, "the earlier tests' relays to give their buffers back");
    const first = randomBytes(100_000);
    t.same(await echoed(forwarder.port!, first), first);
    // A relay's two buffers come back when its last socket has closed (the client's may close first).
    await waitFor(allBack, 'the relay to give its two buffers back');
    const made = relayReadBuffers.made;
    // One after the other (each relay's buffers back before the next connection): the same two
    // buffers serve every connection, each its own bytes.
    for (let i = 0; i < 20; i++) {
      const payload = randomBytes(1_000 + i * 3_000);
      t.same(await echoed(forwarder.port!, payload), payload, `connection ${i}`);
      await waitFor(allBack, `relay ${i} to give its buffers back`);
    }
    t.equal(relayReadBuffers.made, made, 'no buffer made for the twenty connections');
    // At once: each open connection holds buffers of its own.
    const payloads = Array.from({ length: 12 }, () => randomBytes(200_000));
    const replies = await Promise.all(payloads.map((p) => echoed(forwarder.port!, p)));
    for (let i = 0; i < payloads.length; i++)
      t.ok(replies[i]?.equals(payloads[i]!), `concurrent connection ${i}`);
    await waitFor(allBack, 'the concurrent relays to give their buffers back');
    t.ok(relayReadBuffers.made <= made + 24, 'at most two buffers made per connection');
  },
);

t.test('a refusing target is failed and the connection goes to the next', async (t) => {
  const live = await tagServer(t, 'live');
  const dead: Target = { host: '127.0.0.1', port: await refusingPort() };
  const picker = listPicker([dead, { host: '127.0.0.1', port: live.port }]);
  const forwarder = await startTcp(t, picker);
  t.equal(await tcpRequest(forwarder.port!), 'live');
  t.same(picker.failed, [dead]);
  t.equal(forwarder.stats.upstreamErrors, 1);
  t.equal(forwarder.stats.connectionsFailed, 0);
});

t.test('with no live target the client is closed at once', async (t) => {
  const dead: Target = { host: '127.0.0.1', port: await refusingPort() };
  const forwarder = await startTcp(t, listPicker([dead]));
  // Closed without an answer: a FIN, or a reset when the relay had unread bytes from us.
  t.equal(
    await tcpRequest(forwarder.port!, 'anyone?').catch((e: NodeJS.ErrnoException) => e.code),
    'ECONNRESET',
  );
  t.equal(forwarder.stats.connectionsFailed, 1);
  const empty = await startTcp(t, listPicker([]));
  t.match(await tcpRequest(empty.port!).catch((e: NodeJS.ErrnoException) => e.code), /^(|ECONNRESET)$/);
});

t.test('a taken port is E_PORT_IN_USE naming the address', async (t) => {
  const holder = net.createServer();
  await listenTcp(holder);
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const forwarder = new TcpForwarder({
    listen: { host: '127.0.0.1', port },
    picker: fixedPicker({ host: '127.0.0.1', port: 1 }),
    logger,
    name: 'busy',
  });
  await t.rejects(forwarder.start(), {
    code: 'E_PORT_IN_USE',
    message: new RegExp(`busy: 127.0.0.1:${port}/tcp`),
  });
});

t.test('PROXY protocol v1 and v2 headers reach the target first', async (t) => {
  for (const version of [1, 2] as const) {
    let firstBytes: Buffer = Buffer.alloc(0);
    const server = net.createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        firstBytes = chunk;
        socket.end('ok');
      });
    });
    await listenTcp(server);
    t.teardown(() => server.close());
    const forwarder = await startTcp(
      t,
      fixedPicker({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }),
      {
        proxyProtocol: version,
      },
    );
    const client = net.connect(forwarder.port!, '127.0.0.1');
    await new Promise((resolve) => client.on('connect', resolve));
    const clientPort = client.localPort!;
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (c: Buffer) => {
        text += c.toString();
      });
      client.on('close', () => resolve(text));
      client.end('payload');
    });
    t.equal(reply, 'ok');
    if (version === 1) {
      t.match(
        firstBytes.toString('latin1'),
        new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 ${clientPort} ${forwarder.port}\\r\\n`),
      );
    } else {
      t.equal(firstBytes.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
      t.equal(firstBytes[12], 0x21);
      t.equal(firstBytes[13], 0x11);
      t.equal(firstBytes.readUInt16BE(24), clientPort);
      t.equal(firstBytes.readUInt16BE(26), forwarder.port);
    }
  }
});

t.test('close with a deadline lets an open connection finish', async (t) => {
  const echo = await echoServer(t);
  const forwarder = await startTcp(t, fixedPicker({ host: '127.0.0.1', port: echo.port }));
  const client = net.connect(forwarder.port!, '127.0.0.1');
  client.on('error', () => {});
  await new Promise((resolve) => client.on('connect', resolve));
  client.write('before');
  await new Promise((resolve) => client.once('data', resolve));
  const closing = forwarder.close(5000);
  // New connections are refused at once while the old one still answers.
  await t.rejects(
    new Promise((resolve, reject) => {
      const s = net.connect(forwarder.port!, '127.0.0.1');
      s.on('connect', () => resolve(s.destroy()));
      s.on('error', reject);
    }),
    { code: 'ECONNREFUSED' },
  );
  client.write('during');
  const echoed = await new Promise<string>((resolve) =>
    client.once('data', (c: Buffer) => resolve(c.toString())),
  );
  t.equal(echoed, 'during');
  client.end();
  await closing;
  t.equal(forwarder.stats.connectionsOpen, 0);
});

t.test('a slow client: the target-to-client direction pauses and loses nothing', async (t) => {
  const payload = randomBytes(8 * 1024 * 1024);
  const server = net.createServer((socket) => socket.end(payload));
  await listenTcp(server);
  t.teardown(() => server.close());
  const forwarder = await startTcp(
    t,
    fixedPicker({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }),
  );
  const received = await new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect(forwarder.port!, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('error', reject);
    socket.pause();
    // Let the kernel buffers fill up before reading anything.
    setTimeout(() => {
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.resume();
    }, 300);
    socket.on('end', () => resolve(Buffer.concat(chunks)));
  });
  t.equal(received.length, payload.length);
  t.ok(received.equals(payload), 'same bytes in the same order');
});

t.test('a slow target: the client-to-target direction pauses and loses nothing', async (t) => {
  const payload = randomBytes(8 * 1024 * 1024);
  let resolveReceived: (b: Buffer) => void = () => {};
  const received = new Promise<Buffer>((resolve) => {
    resolveReceived = resolve;
  });
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.pause();
    // Let the kernel buffers fill up before reading anything.
    setTimeout(() => {
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.resume();
    }, 300);
    socket.on('end', () => {
      resolveReceived(Buffer.concat(chunks));
      socket.end('done');
    });
  });
  await listenTcp(server);
  t.teardown(() => server.close());
  const forwarder = await startTcp(
    t,
    fixedPicker({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }),
  );
  const [reply, bytes] = await Promise.all([tcpRequest(forwarder.port!, payload), received]);
  t.equal(reply, 'done');
  t.equal(bytes.length, payload.length);
  t.ok(bytes.equals(payload), 'same bytes in the same order');
});

t.test('--tcp-idle-timeout: a target that accepts and goes silent does not hold its client', async (t) => {
  const silent = net.createServer((socket) => {
    socket.on('error', () => {});
    // Accepts, reads, never answers.
  });
  await listenTcp(silent);
  t.teardown(() => silent.close());
  const target = { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port };
  const forwarder = new TcpForwarder({
    listen: { host: '127.0.0.1', port: 0 },
    picker: fixedPicker(target),
    logger: silentLogger(),
    name: 'tcp-idle',
    tcpIdleTimeoutMs: 300,
  });
  await forwarder.start();
  t.teardown(() => forwarder.close());
  const client = net.connect({ host: '127.0.0.1', port: forwarder.port! });
  client.on('error', () => {});
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.write('hello?');
  await closed;
  t.pass('the client connection is closed by the idle timeout');
  await waitFor(() => forwarder.openConnections === 0, 'the relay to end');
});

/** How `socket`'s connection ended: 'end' for a FIN, else the error's code (ECONNRESET for a reset). */
function howItEnds(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

t.test('a reset from either side reaches the other as a reset, not as a clean end', async (t) => {
  // The target closes with bytes unread (a reset); every byte the client sent was taken from
  // it by the relay, so that only the relay's passing on can make the client's close a reset.
  let accepted: net.Socket | undefined;
  // pauseOnConnect: the target never reads, and what reaches it stays in its kernel buffer.
  const target = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {});
    accepted = socket;
  });
  await listenTcp(target);
  t.teardown(() => target.close());
  const forwarder = await startTcp(
    t,
    fixedPicker({ host: '127.0.0.1', port: (target.address() as net.AddressInfo).port }),
  );
  const client = net.connect({ host: '127.0.0.1', port: forwarder.port! });
  const clientEnds = howItEnds(client);
  client.write('hello');
  await waitFor(() => accepted !== undefined && unreadBytes(accepted) > 0, 'bytes unread at the target');
  accepted!.destroy();
  t.equal(await clientEnds, 'ECONNRESET', "the target's reset reaches the client");

  // The other way: the client resets (it closes with the target's bytes unread). Paused
  // before it connects, it never reads.
  let second: net.Socket | undefined;
  target.removeAllListeners('connection');
  target.on('connection', (socket: net.Socket) => {
    socket.on('error', () => {});
    second = socket;
    socket.write('hello back');
    socket.resume();
  });
  const other = net.connect({ host: '127.0.0.1', port: forwarder.port! });
  other.on('error', () => {});
  other.pause();
  await waitFor(() => second !== undefined && unreadBytes(other) > 0, 'bytes unread at the client');
  const targetEnds = howItEnds(second!);
  other.destroy();
  t.equal(await targetEnds, 'ECONNRESET', "the client's reset reaches the target");
  await waitFor(() => forwarder.openConnections === 0, 'the relays to end');
});
