// The kernel's counters as totals that only grow: a rebuilt table's counters
// start at 0 and are added to what the one before counted; a reading begun
// before the rebuild is dropped; a gone service's totals go. (The kernel side:
// nftables.test.ts, "the table removed".)
import t from 'tap';
import { CounterTotals } from '../../../src/node/dataplane/counter-totals.js';
import type { Counter, CounterReading } from '../../../src/node/dataplane/nft.js';
import type { CounterMap } from '../../../src/node/dataplane/rules.js';

function reading(map: CounterMap, entries: Record<string, number>): CounterReading {
  const counters = new Map<string, Counter>(
    Object.entries(entries).map(([key, packets]) => [key, { packets, bytes: packets * 100 }]),
  );
  return new Map([['ip', new Map([[map, counters]])]]);
}

t.test('a rebuild keeps what the old table counted', async (t) => {
  const totals = new CounterTotals();
  totals.keep(reading('dispatch', { 'tcp 7000': 3, 'tcp 7001': 1 }), totals.generation);
  totals.keep(reading('unreachable', { '7000': 2 }), totals.generation);
  t.same(totals.get('ip', 'dispatch', 'tcp 7000'), { packets: 3, bytes: 300 });
  const before = totals.generation;
  totals.tablesReplaced();
  totals.keep(reading('dispatch', { 'tcp 7000': 5 }), before);
  t.same(
    totals.get('ip', 'dispatch', 'tcp 7000'),
    { packets: 3, bytes: 300 },
    'a reading of the old table is dropped',
  );
  totals.keep(reading('dispatch', { 'tcp 7000': 1, 'tcp 7001': 0 }), totals.generation);
  t.same(
    totals.get('ip', 'dispatch', 'tcp 7000'),
    { packets: 4, bytes: 400 },
    'the new count goes on from 3',
  );
  t.same(
    totals.get('ip', 'unreachable', '7000'),
    { packets: 2, bytes: 200 },
    'maps not read since keep theirs',
  );
  t.equal(totals.get('ip6', 'dispatch', 'tcp 7000'), undefined, 'never counted');
  totals.forget(7000);
  t.equal(totals.get('ip', 'dispatch', 'tcp 7000'), undefined, 'a gone service starts over');
  t.equal(totals.get('ip', 'unreachable', '7000'), undefined);
  t.same(totals.get('ip', 'dispatch', 'tcp 7001'), { packets: 1, bytes: 100 }, 'other ports keep theirs');
});
