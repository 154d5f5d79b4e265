import * as net from 'node:net';
import t from 'tap';
import {
  bindProbe,
  ephemeralOverlap,
  PortAllocator,
  parsePortList,
  parsePortRange,
} from '../../src/node/index.js';
import { listenTcp } from '../forward/fixtures/net.js';
import { freeRange } from './fixtures/ranges.js';

t.test('acquire hands out distinct free ports of the range, then E_PORT_RANGE_EXHAUSTED', async (t) => {
  const range = await freeRange(4);
  const allocator = new PortAllocator({ range, probe: bindProbe('127.0.0.1') });
  const got = [
    await allocator.acquire(),
    await allocator.acquire(),
    await allocator.acquire(),
    await allocator.acquire(),
  ];
  t.equal(new Set(got).size, 4);
  t.ok(got.every((p) => p >= range.first && p <= range.last));
  await t.rejects(allocator.acquire(), {
    code: 'E_PORT_RANGE_EXHAUSTED',
    message: new RegExp(`${range.first}-${range.last}`),
  });
  allocator.release(got[0]!);
  t.equal(await allocator.acquire(), got[0], 'a released port comes back');
});

t.test('a port another process listens on is never handed out', async (t) => {
  const range = await freeRange(2);
  const holder = net.createServer();
  await listenTcp(holder, range.first);
  t.teardown(() => holder.close());
  const allocator = new PortAllocator({ range, probe: bindProbe('127.0.0.1') });
  t.equal(await allocator.acquire(), range.last);
  await t.rejects(allocator.acquire(), { code: 'E_PORT_RANGE_EXHAUSTED' });
});

t.test('starts at a random point of the range', async (t) => {
  const allocator = new PortAllocator({
    range: { first: 100, last: 199 },
    probe: async () => true,
    random: () => 0.5,
  });
  t.equal(await allocator.acquire(), 150);
  t.equal(await allocator.acquire(), 151);
});

t.test('reserve: a port a service already holds is E_PORT_TAKEN', async (t) => {
  const allocator = new PortAllocator({ range: { first: 100, last: 101 }, probe: async () => true });
  allocator.reserve(100, 'first');
  t.throws(() => allocator.reserve(100, 'second'), { code: 'E_PORT_TAKEN', message: /second: port 100/ });
});

t.test('parsePortRange', async (t) => {
  t.same(parsePortRange('35000-40000'), { first: 35000, last: 40000 });
  t.same(parsePortRange('4000'), { first: 4000, last: 4000 });
  t.match(parsePortRange('40000-35000'), /first <= last/);
  t.match(parsePortRange('0-10'), /within 1-65535/);
  t.match(parsePortRange('a-b'), /must be a port range/);
});

t.test('ephemeralOverlap: ports of the range in the ephemeral range, less the reserved ones', async (t) => {
  const ephemeral = { first: 32768, last: 60999 };
  t.equal(
    ephemeralOverlap({ first: 35000, last: 40000 }, ephemeral, []),
    5001,
    'the default range: all of it',
  );
  t.equal(ephemeralOverlap({ first: 20000, last: 25000 }, ephemeral, []), 0, 'below it: none');
  t.equal(ephemeralOverlap({ first: 32000, last: 32999 }, ephemeral, []), 232, 'straddling: the part inside');
  t.equal(
    ephemeralOverlap({ first: 35000, last: 40000 }, ephemeral, parsePortList('35000-39999,40000\n')),
    0,
    'all reserved: none',
  );
  t.same(parsePortList(''), [], 'an empty reserved list');
  t.same(parsePortList('1-2,7'), [
    { first: 1, last: 2 },
    { first: 7, last: 7 },
  ]);
});
