// The sweep clock: wall time less what late ticks did not count.
import t from 'tap';
import { SweepClock } from '../../src/sockets/sweep-clock.js';

t.test('ticks on time count in full', async (t) => {
  const clock = new SweepClock(20, 1000);
  t.equal(clock.tick(1010), 1010);
  t.equal(clock.tick(1030), 1030, 'a step of the most a tick counts is counted');
  t.equal(clock.at(1035), 1035);
});

t.test('a late tick counts only its most; later readings keep the loss', async (t) => {
  const clock = new SweepClock(20, 1000);
  t.equal(clock.tick(1500), 1020, '500 ms since the last tick counts as 20');
  t.equal(clock.at(1510), 1030, 'a reading between ticks is on the same clock');
  t.equal(clock.tick(1510), 1030);
  t.equal(clock.tick(2010), 1050, 'losses add up');
});

t.test('the clock never runs backwards and never ahead of the wall', async (t) => {
  const clock = new SweepClock(10, 0);
  let wall = 0;
  let last = clock.tick(0);
  for (const step of [1, 5, 10, 11, 250, 3, 0, 40, 9, 1000]) {
    wall += step;
    const now = clock.tick(wall);
    t.ok(now >= last && now <= wall, `after a step of ${step}: ${now} within [${last}, ${wall}]`);
    last = now;
  }
});
