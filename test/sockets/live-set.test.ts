// LiveSet: the open things that come and go (connections, their watches), kept
// in an array whose members know their place. What a Set would do: add once,
// delete what is there, count, visit; and visiting while members leave.
import t from 'tap';
import { LiveSet, SLOT } from '../../src/sockets/live-set.js';

class Member {
  [SLOT] = -1;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

function members(...names: string[]): Member[] {
  return names.map((name) => new Member(name));
}

const names = (list: Member[]) => list.map((m) => m.name).sort();

t.test('adds once, deletes what is there, counts', async (t) => {
  const set = new LiveSet<Member>();
  const [a, b, c] = members('a', 'b', 'c') as [Member, Member, Member];
  set.add(a);
  set.add(b);
  set.add(a);
  t.equal(set.size, 2, 'a member added twice is there once');
  t.ok(set.has(a));
  t.notOk(set.has(c));
  t.notOk(set.delete(c), 'deleting a member that is not there');
  t.ok(set.delete(a));
  t.notOk(set.delete(a), 'deleting it again');
  t.notOk(set.has(a));
  t.equal(a[SLOT], -1, 'a deleted member is in no set');
  t.same(names(set.toArray()), ['b']);
  set.add(a);
  t.same(names(set.toArray()), ['a', 'b'], 'a deleted member can come back');
});

t.test('the last member takes a leaver’s place and every member still finds its own', async (t) => {
  const set = new LiveSet<Member>();
  const all = members('a', 'b', 'c', 'd', 'e', 'f');
  for (const m of all) set.add(m);
  for (const leaver of [all[1], all[4], all[0]] as Member[]) set.delete(leaver);
  t.same(names(set.toArray()), ['c', 'd', 'f']);
  for (const m of all) t.equal(set.has(m), ['c', 'd', 'f'].includes(m.name), `${m.name}`);
  for (const m of set.toArray()) t.ok(set.delete(m), `${m.name} deleted by its place`);
  t.equal(set.size, 0);
});

t.test('a member of another set is not taken for one of this one', async (t) => {
  const one = new LiveSet<Member>();
  const other = new LiveSet<Member>();
  const [a, b] = members('a', 'b') as [Member, Member];
  one.add(a);
  other.add(b);
  t.notOk(one.has(b), 'b sits at place 0 of the other set, where a sits in this one');
  t.notOk(one.delete(b));
  t.equal(one.size, 1);
});

t.test('toArray is a copy: work on it may add and remove members', async (t) => {
  const set = new LiveSet<Member>();
  const all = members('a', 'b', 'c');
  for (const m of all) set.add(m);
  const seen: string[] = [];
  for (const m of set.toArray()) {
    seen.push(m.name);
    set.delete(m);
    set.add(new Member(`${m.name}2`));
  }
  t.same(seen.sort(), ['a', 'b', 'c']);
  t.same(names(set.toArray()), ['a2', 'b2', 'c2']);
});

t.test('forEach visits every member that stays, none after it left', async (t) => {
  const set = new LiveSet<Member>();
  const all = members('a', 'b', 'c', 'd', 'e');
  for (const m of all) set.add(m);
  const [a, b, c, d, e] = all as [Member, Member, Member, Member, Member];
  const visits: string[] = [];
  set.forEach((m) => {
    visits.push(m.name);
    // Visiting d removes b (not visited yet) and itself.
    if (m === d) {
      set.delete(b);
      set.delete(d);
    }
  });
  t.notOk(visits.includes('b'), 'b left before its turn');
  for (const m of [a, c, e]) t.ok(visits.includes(m.name), `${m.name} visited`);
  t.same(names(set.toArray()), ['a', 'c', 'e']);
});
