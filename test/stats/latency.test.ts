import t from 'tap';
import {
  countRequestTimes,
  createServiceStats,
  LATENCY_BUCKETS,
  LatencyHistogram,
  requestSecondsOf,
} from '../../src/stats/index.js';

t.test(
  'a duration on a bound counts in that bound (Prometheus le), above every bound in the last',
  async (t) => {
    const h = new LatencyHistogram();
    h.observe(0);
    h.observe(0.0005);
    h.observe(0.00051);
    h.observe(0.1);
    h.observe(60);
    h.observe(61);
    const cumulative = h.cumulative();
    t.equal(cumulative.length, LATENCY_BUCKETS.length + 1, 'one count per bound, then +Inf');
    t.equal(cumulative[0], 2, '0 and 0.0005 are at or below 0.0005');
    t.equal(cumulative[1], 3, '0.00051 is in (0.0005, 0.001]');
    t.equal(cumulative[LATENCY_BUCKETS.indexOf(0.1)], 4, '0.1 is at or below 0.1');
    t.equal(cumulative[LATENCY_BUCKETS.indexOf(0.05)], 3, '0.1 is not at or below 0.05');
    t.equal(cumulative[LATENCY_BUCKETS.length - 1], 5, '60 is at or below 60');
    t.equal(cumulative[LATENCY_BUCKETS.length], 6, '+Inf holds every one');
    t.equal(h.count, 6);
    t.ok(Math.abs(h.sum - (0.0005 + 0.00051 + 0.1 + 60 + 61)) < 1e-9, `the sum (${h.sum})`);
    for (let i = 1; i < cumulative.length; i++) t.ok(cumulative[i]! >= cumulative[i - 1]!, 'never decreases');
  },
);

t.test('quantiles are estimated as histogram_quantile() does', async (t) => {
  const h = new LatencyHistogram();
  t.equal(h.quantile(0.5), undefined, 'nothing counted, nothing to say');
  // 100 durations in (0.01, 0.025]: the median lies half way through that bucket.
  for (let i = 0; i < 100; i++) h.observe(0.02);
  t.ok(Math.abs(h.quantile(0.5)! - 0.0175) < 1e-12, `p50 ${h.quantile(0.5)}`);
  t.ok(Math.abs(h.quantile(1)! - 0.025) < 1e-12, 'p100 is the bucket bound');
  // One slow one in a hundred and one: p99 stays in the fast bucket, p100 is the slow one's bound.
  h.observe(3);
  t.ok(h.quantile(0.99)! <= 0.025, `p99 ${h.quantile(0.99)}`);
  t.equal(h.quantile(1), 5);
  const over = new LatencyHistogram();
  over.observe(120);
  t.equal(over.quantile(0.5), 60, 'above the last bound: the last bound, all a histogram knows');
});

t.test('countRequestTimes: by status class, the backend only when it answered', async (t) => {
  const stats = createServiceStats();
  t.same(stats.requestSeconds.filter(Boolean), [], 'no histogram before the first request');
  t.equal(stats.backendSeconds, undefined);
  countRequestTimes(stats, 200, 1000, 1040, 1100);
  countRequestTimes(stats, 204, 2000, 2001, 2002);
  countRequestTimes(stats, 502, 3000, 0, 3007);
  countRequestTimes(stats, 431, 0, 0, 4000);
  countRequestTimes(stats, 101, 5000, 5003, 5003);
  t.equal(requestSecondsOf(stats, '2xx')?.count, 2);
  t.ok(Math.abs(requestSecondsOf(stats, '2xx')!.sum - 0.102) < 1e-9, 'milliseconds become seconds');
  t.equal(requestSecondsOf(stats, '5xx')?.count, 1);
  t.equal(requestSecondsOf(stats, '4xx')?.count, 1);
  t.equal(requestSecondsOf(stats, '4xx')?.sum, 0, 'a head refused before it became a request takes no time');
  t.equal(requestSecondsOf(stats, '1xx')?.count, 1, 'an upgrade counts its time to the 101');
  t.equal(requestSecondsOf(stats, '3xx'), undefined);
  t.equal(stats.backendSeconds?.count, 3, 'the 502 and the refused head never reached the backend');
  t.ok(Math.abs(stats.backendSeconds!.sum - (0.04 + 0.001 + 0.003)) < 1e-9);
});
