// PROXY protocol on the HTTPS port: a header from a trusted address (harbor-node
// in front) names the client the app then sees in X-Forwarded-For and
// Forwarded; a header from anyone else is refused; a trusted peer without one
// is served as itself.
import { BlockList } from 'node:net';
import t from 'tap';
import { proxyHeaderV1, proxyHeaderV2 } from '../../src/forward/index.js';
import { makePair, removeDir, startEchoBackend, startProxy, tlsGetAfter } from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));

const getAfter = (port: number, preface: Buffer | undefined, localAddress = '127.0.0.1') =>
  tlsGetAfter(port, { ...(preface && { preface }), localAddress, ca: pair.cert });

const client = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '127.0.0.1',
  destinationPort: 35048,
};

t.test('trusted: the header names the client; anyone else sending one is refused', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const trust = new BlockList();
  trust.addAddress('127.0.0.1');
  const fx = await startProxy(backend.address, { pair, trustProxy: trust });
  t.teardown(() => fx.proxy.close());

  for (const [name, header] of [
    ['v2', proxyHeaderV2(client)],
    ['v1', proxyHeaderV1(client)],
  ] as const) {
    const answer = await getAfter(fx.port, header);
    t.match(answer, /"x-forwarded-for":"198\.51\.100\.7"/, `${name}: X-Forwarded-For is the client`);
    t.match(answer, /"forwarded":"[^"]*for=198\.51\.100\.7/, `${name}: Forwarded too`);
  }
  t.match(
    await getAfter(fx.port, undefined),
    /"x-forwarded-for":"127\.0\.0\.1"/,
    'no header: the peer itself',
  );
  const stranger = await getAfter(fx.port, proxyHeaderV2(client), '127.0.0.2');
  t.match(stranger, /^error/, 'a header from an untrusted address: refused');
  t.equal(fx.stats.handshakeErrors.get('proxy-untrusted'), 1, 'and counted');
  const broken = await getAfter(fx.port, Buffer.from('PROXY TCP4 nonsense\r\n'));
  t.match(broken, /^error/, 'a malformed header: refused');
  t.equal(fx.stats.handshakeErrors.get('proxy-header'), 1);
  t.equal(backend.requests, 3, 'only the good connections reached the app');
});

t.test('no --trust-proxy: every header is refused', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  t.match(await getAfter(fx.port, proxyHeaderV2(client)), /^error/);
  t.equal(backend.requests, 0);
});
