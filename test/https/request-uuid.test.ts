// Request ids made a batch at a time: each a well-formed version 4 UUID, none
// repeated, across many batches (the batch boundary included).
import t from 'tap';
import { newRequestUuid } from '../../src/https/request-uuid.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('version 4 UUIDs, every one different, across batches', async (t) => {
  const seen = new Set<string>();
  let malformed = 0;
  for (let i = 0; i < 10_000; i++) {
    const id = newRequestUuid();
    if (!UUID.test(id)) malformed++;
    seen.add(id);
  }
  t.equal(malformed, 0, 'every id is a lower-case version 4 UUID');
  t.equal(seen.size, 10_000, 'no id repeated');
});

t.test('the random bits are spread: every hex digit appears in every free position', async (t) => {
  // 4,000 ids: a position that never changed (a batch rendered wrong, a byte not filled) shows.
  const digits = Array.from({ length: 36 }, () => new Set<string>());
  for (let i = 0; i < 4000; i++) {
    const id = newRequestUuid();
    for (let p = 0; p < 36; p++) digits[p]?.add(id[p] as string);
  }
  const fixed = [8, 13, 14, 18, 23];
  for (let p = 0; p < 36; p++) {
    if (fixed.includes(p)) continue;
    const expected = p === 19 ? 4 : 16;
    t.equal(digits[p]?.size, expected, `position ${p}`);
  }
  t.same([...(digits[14] ?? [])], ['4'], 'the version');
});
