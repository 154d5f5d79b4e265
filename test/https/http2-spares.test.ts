// Heads and readers handed from finished HTTP/2 streams to new ones: a reused
// head holds nothing of its last request, and a front keeps a bounded number.
import t, { type Test } from 'tap';
import { findHeadEnd, parseRequestHead } from '../../src/https/head-parser.js';
import { StreamSpares } from '../../src/https/http2-spares.js';

function parse(t: Test, spares: StreamSpares, text: string) {
  const head = spares.head();
  const buf = Buffer.from(text, 'latin1');
  t.equal(parseRequestHead(head, buf, 0, findHeadEnd(buf, 0, buf.length)), null, 'parsed');
  return head;
}

t.test('a head given back and taken again holds only the new request', async (t) => {
  const spares = new StreamSpares(16_384);
  const long = parse(
    t,
    spares,
    'POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nCookie: secret\r\nX-One: 1\r\nX-Two: 2\r\nContent-Length: 3\r\n\r\n',
  );
  spares.give(long, undefined);
  const next = parse(t, spares, 'GET / HTTP/1.1\r\nHost: b\r\n\r\n');
  t.equal(next, long, 'the same object, reused');
  t.equal(next.method, 'GET');
  t.equal(next.target, '/');
  t.equal(next.count, 1);
  t.equal(next.header('host'), 'b');
  t.equal(next.header('cookie'), undefined, "nothing of the last request's headers");
  t.not(spares.head(), next, 'a head is lent to one stream at a time');
});

t.test('readers are reused too, and a front keeps at most 256 of each', async (t) => {
  const spares = new StreamSpares(16_384);
  const reader = spares.reader();
  spares.give(undefined, reader);
  t.equal(spares.reader(), reader);
  const heads = Array.from({ length: 300 }, () => spares.head());
  for (const head of heads) spares.give(head, undefined);
  const taken = new Set(Array.from({ length: 300 }, () => spares.head()));
  t.equal([...taken].filter((h) => heads.includes(h)).length, 256, 'the rest were left to the collector');
});
