import t from 'tap';
import { proxyHeaderV1, proxyHeaderV2 } from '../../src/forward/index.js';

const v4 = {
  sourceAddress: '::ffff:192.0.2.1',
  sourcePort: 5000,
  destinationAddress: '::ffff:10.0.0.1',
  destinationPort: 35001,
};
const v6 = {
  sourceAddress: '2001:db8::1',
  sourcePort: 5000,
  destinationAddress: '::1',
  destinationPort: 443,
};

t.test('v1: mapped IPv4 is written as TCP4, IPv6 as TCP6, missing ends as UNKNOWN', async (t) => {
  t.equal(proxyHeaderV1(v4).toString(), 'PROXY TCP4 192.0.2.1 10.0.0.1 5000 35001\r\n');
  t.equal(proxyHeaderV1(v6).toString(), 'PROXY TCP6 2001:db8::1 ::1 5000 443\r\n');
  t.equal(
    proxyHeaderV1({
      sourceAddress: '192.0.2.1',
      sourcePort: 1,
      destinationAddress: '::1',
      destinationPort: 2,
    }).toString(),
    'PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n',
  );
  t.equal(
    proxyHeaderV1({
      sourceAddress: undefined,
      sourcePort: undefined,
      destinationAddress: undefined,
      destinationPort: undefined,
    }).toString(),
    'PROXY UNKNOWN\r\n',
  );
});

t.test('v2: signature, command, family, length and address bytes (spec section 2.2)', async (t) => {
  const h4 = proxyHeaderV2(v4);
  t.equal(h4.length, 28);
  t.equal(
    h4.toString('hex'),
    '0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'c0000201' + '0a000001' + '1388' + '88b9',
  );
  const h6 = proxyHeaderV2(v6);
  t.equal(h6.length, 52);
  t.equal(h6.subarray(12, 16).toString('hex'), '21210024');
  t.equal(h6.subarray(16, 32).toString('hex'), '20010db8000000000000000000000001');
  t.equal(h6.subarray(32, 48).toString('hex'), '00000000000000000000000000000001');
  t.equal(h6.readUInt16BE(48), 5000);
  t.equal(h6.readUInt16BE(50), 443);
  const local = proxyHeaderV2({
    sourceAddress: undefined,
    sourcePort: undefined,
    destinationAddress: undefined,
    destinationPort: undefined,
  });
  t.equal(local.subarray(12).toString('hex'), '20000000', 'LOCAL, AF_UNSPEC, no addresses');
});

t.test('parseProxyHeader reads back what the encoders write, v1 and v2, IPv4 and IPv6', async (t) => {
  const { parseProxyHeader } = await import('../../src/forward/proxy-protocol.js');
  const tail = Buffer.from('\x16\x03\x01rest of a ClientHello', 'latin1');
  for (const [name, header] of [
    ['v1 TCP4', proxyHeaderV1(v4)],
    ['v2 TCP4', proxyHeaderV2(v4)],
  ] as const) {
    t.same(
      parseProxyHeader(Buffer.concat([header, tail])),
      {
        kind: 'header',
        length: header.length,
        source: { address: '192.0.2.1', port: 5000 },
      },
      name,
    );
  }
  for (const [name, header] of [
    ['v1 TCP6', proxyHeaderV1(v6)],
    ['v2 TCP6', proxyHeaderV2(v6)],
  ] as const) {
    t.same(
      parseProxyHeader(header),
      { kind: 'header', length: header.length, source: { address: '2001:db8::1', port: 5000 } },
      name,
    );
  }
  const mixed = proxyHeaderV2({ ...v6, sourceAddress: '192.0.2.9' });
  t.same(
    parseProxyHeader(mixed),
    { kind: 'header', length: mixed.length, source: { address: '192.0.2.9', port: 5000 } },
    'an IPv4 source mapped into TCP6 comes back plain',
  );
  const local = proxyHeaderV2({
    sourceAddress: undefined,
    sourcePort: undefined,
    destinationAddress: undefined,
    destinationPort: undefined,
  });
  t.same(parseProxyHeader(local), { kind: 'header', length: 16, source: undefined }, 'LOCAL: no source');
  const v2 = proxyHeaderV2(v4);
  t.same(parseProxyHeader(v2.subarray(0, 10)), { kind: 'incomplete' }, 'a header cut short waits for more');
  t.same(parseProxyHeader(v2.subarray(0, 20)), { kind: 'incomplete' });
  t.same(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1')), { kind: 'incomplete' });
  t.same(parseProxyHeader(tail), { kind: 'none' }, 'TLS is not a header');
  t.same(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'none' });
  t.match(parseProxyHeader(Buffer.from('PROXY TCP4 nonsense 1 2 3\r\n')), { kind: 'invalid' });
  t.match(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)), {
    kind: 'invalid',
    reason: 'v1 line too long',
  });
  const badVersion = Buffer.from(v2);
  badVersion[12] = 0x11;
  t.match(parseProxyHeader(badVersion), { kind: 'invalid', reason: 'v2 version is not 2' });
});
