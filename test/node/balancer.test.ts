import t from 'tap';
import { Instance, PrimaryBalancer, RoundRobinBalancer } from '../../src/node/index.js';
import { balancerConformance } from './fixtures/balancer-conformance.js';

const make = (id: string): Instance => new Instance(id, { host: '127.0.0.1', port: 1 });

for (const protocol of ['tcp', 'udp'] as const) {
  t.test(`round-robin on ${protocol} passes the conformance suite`, async (t) =>
    balancerConformance(t, (ms) => new RoundRobinBalancer(ms, protocol)),
  );
  t.test(`primary on ${protocol} passes the conformance suite`, async (t) =>
    balancerConformance(t, (ms) => new PrimaryBalancer(ms, protocol)),
  );
}

t.test('round-robin in panic (every instance down) still goes round, in turn', async (t) => {
  const b = new RoundRobinBalancer(60_000);
  const list = ['a', 'b', 'c'].map(make);
  for (const x of list) {
    b.add(x);
    b.fail(x);
  }
  t.same(
    Array.from({ length: 6 }, () => b.pick()!.id),
    ['a', 'b', 'c', 'a', 'b', 'c'],
  );
  list[1]!.health.tcp.markUp();
  t.same([b.pick()!.id, b.pick()!.id], ['b', 'b'], 'one up again: it alone gets connections');
  for (const x of list) x.dispose();
});

t.test('round-robin: 30 picks over 3 instances give 10 each, in turn', async (t) => {
  const b = new RoundRobinBalancer();
  for (const id of ['a', 'b', 'c']) b.add(make(id));
  const counts: Record<string, number> = {};
  const order: string[] = [];
  for (let i = 0; i < 30; i++) {
    const id = b.pick()!.id;
    counts[id] = (counts[id] ?? 0) + 1;
    order.push(id);
  }
  t.same(counts, { a: 10, b: 10, c: 10 });
  t.same(order.slice(0, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
});

t.test('round-robin: a failed instance is skipped and the next one answers', async (t) => {
  const b = new RoundRobinBalancer(60_000);
  const [a, bb, c] = [make('a'), make('b'), make('c')];
  for (const x of [a, bb, c]) b.add(x);
  t.equal(b.pick()!.id, 'a');
  b.fail(bb);
  t.same([b.pick()!.id, b.pick()!.id, b.pick()!.id], ['c', 'a', 'c']);
  bb.dispose();
});

t.test('round-robin: removing an instance keeps the turn on the next one', async (t) => {
  const b = new RoundRobinBalancer();
  const [a, bb, c] = [make('a'), make('b'), make('c')];
  for (const x of [a, bb, c]) b.add(x);
  t.equal(b.pick()!.id, 'a');
  t.equal(b.pick()!.id, 'b');
  b.remove(a);
  t.same([b.pick()!.id, b.pick()!.id], ['c', 'b']);
});

t.test('primary: the first live instance gets everything; later ones queue in arrival order', async (t) => {
  const b = new PrimaryBalancer(60_000);
  const [a, bb, c] = [make('a'), make('b'), make('c')];
  b.add(a);
  b.add(bb);
  b.add(c);
  t.same([b.pick()!.id, b.pick()!.id], ['a', 'a']);
  b.remove(a);
  t.equal(b.pick()!.id, 'b', 'the next in the queue takes over');
  b.add(a);
  t.equal(b.pick()!.id, 'b', 'a returning instance joins the back of the queue');
  b.fail(bb);
  t.equal(b.pick()!.id, 'c');
  bb.dispose();
});
