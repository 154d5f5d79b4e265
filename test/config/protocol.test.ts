import t from 'tap';
import { protocolLabel, ruleForName } from '../../src/config/protocol.js';

t.test('protocol from the name, case-insensitive (docs/protocols.md)', async (t) => {
  const cases: [string, string, boolean, string][] = [
    ['my-port', 'tcp', false, 'tcp'],
    ['udp-port', 'udp', false, 'udp'],
    ['UDPstream', 'udp', false, 'udp'],
    ['multi-dns', 'both', false, 'tcp+udp'],
    ['Both-dns', 'both', false, 'tcp+udp'],
    ['custom-cert-https', 'tcp', true, 'https'],
    ['shop-HTTPS', 'tcp', true, 'https'],
    ['both-dns-https', 'both', true, 'https+udp'],
    ['udp-x-https', 'udp', false, 'udp'],
    ['https-admin', 'tcp', false, 'tcp'],
  ];
  for (const [name, transport, https, label] of cases) {
    const rule = ruleForName(name);
    t.same([rule.transport, rule.https, protocolLabel(rule)], [transport, https, label], name);
  }
  t.equal(ruleForName('udp-x-https').dropped, 'https');
});
