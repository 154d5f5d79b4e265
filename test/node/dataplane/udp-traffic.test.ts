// UDP bytes per service from conntrack's per-flow counts: each listing adds what
// every flow carried since the one before; a flow no longer listed has ended; a
// flow the node deleted is counted from what the deletion printed; an entry
// reusing a key starts over. (The kernel side: nftables.test.ts.)
import t from 'tap';
import type { UdpFlow } from '../../../src/node/dataplane/nft.js';
import { UdpTraffic } from '../../../src/node/dataplane/udp-traffic.js';

function flow(key: string, port: number, sent: number, answered: number): UdpFlow {
  return {
    key,
    dport: port,
    dst: '127.0.0.1',
    replySrc: '127.0.0.1',
    replySport: 9000,
    original: { packets: sent, bytes: sent * 100 },
    reply: { packets: answered, bytes: answered * 50 },
  };
}

const all = () => true;

t.test('growth between listings, ended flows, deletions and reused keys', async (t) => {
  const traffic = new UdpTraffic();
  traffic.listed(
    'ip',
    [flow('1 a 1', 7000, 3, 1), flow('2 a 2', 7000, 2, 0), flow('3 a 3', 7001, 1, 1)],
    all,
  );
  t.same(traffic.totals('ip', 7000), {
    original: { packets: 5, bytes: 500 },
    reply: { packets: 1, bytes: 50 },
  });
  // Flow 1 grew, flow 2 ended (not listed), flow 3 unchanged.
  traffic.listed('ip', [flow('1 a 1', 7000, 10, 4), flow('3 a 3', 7001, 1, 1)], all);
  t.same(traffic.totals('ip', 7000).original, { packets: 12, bytes: 1200 }, 'only the growth added');
  t.same(traffic.totals('ip', 7001).original, { packets: 1, bytes: 100 }, 'an unchanged flow adds nothing');
  // Deleted by the node with two more datagrams than listed: counted, then forgotten.
  traffic.deleted('ip', [flow('1 a 1', 7000, 12, 4)]);
  t.same(traffic.totals('ip', 7000).original, { packets: 14, bytes: 1400 });
  // A new entry under the same key (conntrack reuses ids) with a smaller count: a flow of its own.
  traffic.listed('ip', [flow('1 a 1', 7000, 1, 0)], all);
  t.same(traffic.totals('ip', 7000).original, { packets: 15, bytes: 1500 }, 'counted from zero');
  traffic.listed('ip', [flow('1 a 1', 7000, 1, 0)], all);
  t.same(traffic.totals('ip', 7000).original, { packets: 15, bytes: 1500 });
  t.same(traffic.totals('ip6', 7000).original, { packets: 0, bytes: 0 }, 'families apart');
  traffic.forget(7000);
  t.same(traffic.totals('ip', 7000).original, { packets: 0, bytes: 0 }, 'a gone service starts over');
  traffic.listed('ip', [flow('1 a 1', 7000, 2, 0)], all);
  t.same(traffic.totals('ip', 7000).original, { packets: 2, bytes: 200 }, 'its flows forgotten too');
});

t.test("a baseline (the node's start): only what flows carry from then on is counted", async (t) => {
  const traffic = new UdpTraffic();
  traffic.listed('ip', [flow('1 a 1', 7000, 500, 400)], all, true);
  t.same(traffic.totals('ip', 7000).original, { packets: 0, bytes: 0 }, 'the history is not counted');
  traffic.listed('ip', [flow('1 a 1', 7000, 503, 401), flow('2 a 2', 7000, 2, 0)], all);
  t.same(traffic.totals('ip', 7000).original, { packets: 5, bytes: 500 }, 'its growth and new flows are');
  t.same(traffic.totals('ip', 7000).reply, { packets: 1, bytes: 50 });
});

t.test('flows of other services are left out; flows without counts are noted', async (t) => {
  const traffic = new UdpTraffic();
  const uncounted: UdpFlow = { ...flow('4 a 4', 7000, 0, 0), original: null, reply: null };
  traffic.listed(
    'ip',
    [flow('1 a 1', 7000, 3, 0), flow('2 a 2', 8000, 5, 0), uncounted],
    (f) => f.dport === 7000,
  );
  t.same(traffic.totals('ip', 7000).original, { packets: 3, bytes: 300 });
  t.same(traffic.totals('ip', 8000).original, { packets: 0, bytes: 0 });
  t.equal(traffic.uncounted, 1);
});
