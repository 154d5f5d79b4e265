import * as dgram from 'node:dgram';
import t, { type Test } from 'tap';
import { fixedPicker, type Picker, type Target, UdpForwarder } from '../../src/forward/index.js';
import { silentLogger } from '../../src/log/index.js';
import { stallEventLoop, waitFor } from '../helpers/wait.js';
import { udpClient, udpTagServer } from './fixtures/net.js';

const logger = silentLogger();

async function startUdp(
  t: Test,
  picker: Picker,
  extra: { udpIdleTimeoutMs?: number; udpMaxSessions?: number; udpMaxSessionsPerSource?: number } = {},
) {
  const forwarder = new UdpForwarder({
    listen: { host: '127.0.0.1', port: 0 },
    picker,
    logger,
    name: 'udp-test',
    ...extra,
  });
  await forwarder.start();
  t.teardown(() => forwarder.close());
  return forwarder;
}

/** A picker whose current target a test can switch, recording failures. */
function switchPicker(
  initial: Target | undefined,
): Picker & { current: Target | undefined; failed: Target[] } {
  const picker = {
    current: initial,
    failed: [] as Target[],
    size: 1,
    pick: () => picker.current,
    fail(target: Target) {
      picker.failed.push(target);
    },
  };
  return picker;
}

t.test('replies reach the right one of several clients', async (t) => {
  const server = await udpTagServer(t, 'app');
  const forwarder = await startUdp(t, fixedPicker({ host: '127.0.0.1', port: server.port }));
  const clients = await Promise.all([udpClient(t), udpClient(t), udpClient(t)]);
  for (let round = 0; round < 3; round++) {
    const replies = await Promise.all(
      clients.map((c, i) => c.ask(forwarder.port!, `client${i}-round${round}`)),
    );
    t.same(
      replies,
      [0, 1, 2].map((i) => `app:client${i}-round${round}`),
    );
  }
  t.equal(forwarder.sessionCount, 3, 'one session per client address');
  t.equal(forwarder.stats.datagramsIn, 9);
  t.equal(forwarder.stats.datagramsOut, 9);
});

t.test('idle sessions expire and a new datagram opens a fresh one', async (t) => {
  const server = await udpTagServer(t, 'app');
  const forwarder = await startUdp(t, fixedPicker({ host: '127.0.0.1', port: server.port }), {
    udpIdleTimeoutMs: 150,
  });
  const client = await udpClient(t);
  t.equal(await client.ask(forwarder.port!, 'one'), 'app:one');
  t.equal(forwarder.sessionCount, 1);
  await waitFor(() => forwarder.sessionCount === 0, 'the idle session to expire');
  t.equal(forwarder.stats.sessionsOpen, 0);
  t.equal(await client.ask(forwarder.port!, 'two'), 'app:two');
  t.equal(forwarder.stats.sessionsTotal, 2);
});

t.test('a stalled process does not expire a session whose client kept sending', async (t) => {
  const server = await udpTagServer(t, 'app');
  const forwarder = await startUdp(t, fixedPicker({ host: '127.0.0.1', port: server.port }), {
    udpIdleTimeoutMs: 150,
  });
  const client = await udpClient(t);
  t.equal(await client.ask(forwarder.port!, 'one'), 'app:one');
  // A datagram in the forwarder's socket, then the process away for four idle timeouts' length:
  // the sweep runs before the loop reads the datagram and must not close the session for it.
  const reply = new Promise<string>((resolve) => client.socket.once('message', (m) => resolve(m.toString())));
  client.socket.send('two', forwarder.port!, '127.0.0.1', () => stallEventLoop(600));
  t.equal(await reply, 'app:two');
  t.equal(forwarder.stats.sessionsTotal, 1, 'the session of the first datagram carried the second');
  await waitFor(() => forwarder.sessionCount === 0, 'the session to expire once really idle');
});

t.test('the session table is bounded: a client over the limit is dropped, counted', async (t) => {
  const server = await udpTagServer(t, 'app');
  const forwarder = await startUdp(t, fixedPicker({ host: '127.0.0.1', port: server.port }), {
    udpMaxSessions: 2,
  });
  // Three hosts (a share per source would let one host's new session replace its old one).
  const [a, b, c] = await Promise.all(['127.0.0.1', '127.0.0.2', '127.0.0.3'].map((h) => clientOn(t, h)));
  t.equal(await a!.ask(forwarder.port!, 'a'), 'app:a');
  t.equal(await b!.ask(forwarder.port!, 'b'), 'app:b');
  t.equal(await c!.ask(forwarder.port!, 'c', 300), '(no reply)');
  t.equal(forwarder.sessionCount, 2);
  t.equal(forwarder.stats.datagramsDropped, 1);
  t.equal(await a!.ask(forwarder.port!, 'a2'), 'app:a2', 'existing sessions keep working');
});

t.test('a new target takes over existing sessions; a refusing target is failed', async (t) => {
  const first = await udpTagServer(t, 'first');
  const second = await udpTagServer(t, 'second');
  const firstTarget = { host: '127.0.0.1', port: first.port };
  const picker = switchPicker(firstTarget);
  const forwarder = await startUdp(t, picker);
  const client = await udpClient(t);
  t.equal(await client.ask(forwarder.port!, 'x'), 'first:x');
  picker.current = { host: '127.0.0.1', port: second.port };
  t.equal(await client.ask(forwarder.port!, 'y'), 'second:y');

  // A target with nothing listening answers with ICMP port unreachable: the picker hears of it.
  const gone = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => gone.bind(0, '127.0.0.1', () => resolve()));
  const deadTarget = { host: '127.0.0.1', port: gone.address().port };
  gone.close();
  picker.current = deadTarget;
  client.socket.send('lost', forwarder.port!, '127.0.0.1');
  await waitFor(() => picker.failed.length > 0, 'the refusal to reach the picker');
  t.same(picker.failed, [deadTarget]);
});

t.test('no target: datagrams are dropped, counted', async (t) => {
  const forwarder = await startUdp(t, switchPicker(undefined));
  const client = await udpClient(t);
  await t.rejects(client.ask(forwarder.port!, 'void', 200), /no UDP reply/);
  t.equal(forwarder.stats.datagramsDropped, 1);
});

/** Sends one datagram from each of `count` new sockets bound to `address`; resolves once all are sent. */
async function burstFrom(t: Test, address: string, count: number, port: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = dgram.createSocket('udp4');
    t.teardown(() => socket.close());
    await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
    await new Promise<void>((resolve) => socket.send(`from-${i}`, port, '127.0.0.1', () => resolve()));
  }
}

/** A UDP client bound to `address`; ask() resolves with the reply, or '(no reply)' after `timeoutMs`. */
async function clientOn(
  t: Test,
  address: string,
): Promise<{ ask(port: number, text: string, timeoutMs?: number): Promise<string> }> {
  const socket = dgram.createSocket('udp4');
  t.teardown(() => socket.close());
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  return {
    ask: (port, text, timeoutMs = 10_000) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve('(no reply)');
        }, timeoutMs);
        const onMessage = (m: Buffer) => {
          clearTimeout(timer);
          resolve(m.toString());
        };
        socket.once('message', onMessage);
        socket.send(text, port, '127.0.0.1');
      }),
  };
}

t.test('one host with many source ports cannot take the whole session table', async (t) => {
  const server = await udpTagServer(t, 'app');
  const picker = fixedPicker({ host: '127.0.0.1', port: server.port });
  // Without a share per source (issue 9, item 6): 16 ports of one host fill a table of 16,
  // and a datagram from another host is dropped. This is what the share prevents.
  const unfair = await startUdp(t, picker, { udpMaxSessions: 16, udpMaxSessionsPerSource: 16 });
  await burstFrom(t, '127.0.0.1', 16, unfair.port!);
  await waitFor(() => unfair.sessionCount === 16, 'the table to fill');
  t.equal(
    await (await clientOn(t, '127.0.0.2')).ask(unfair.port!, 'hi', 1000),
    '(no reply)',
    'without a share: locked out',
  );

  const fair = await startUdp(t, picker, { udpMaxSessions: 16, udpMaxSessionsPerSource: 4 });
  await burstFrom(t, '127.0.0.1', 40, fair.port!);
  await waitFor(() => fair.stats.datagramsIn === 40, 'the burst');
  t.equal(fair.sessionCount, 4, 'the busy host holds its share, no more');
  t.equal(fair.stats.sessionsEvicted, 36, 'its oldest sessions made room for its newest');
  t.equal(await (await clientOn(t, '127.0.0.2')).ask(fair.port!, 'hi'), 'app:hi', 'another host is served');
  t.equal(
    await (await clientOn(t, '127.0.0.1')).ask(fair.port!, 'me'),
    'app:me',
    'and the busy host still is',
  );
});
