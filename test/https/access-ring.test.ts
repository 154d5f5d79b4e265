// The access log's shared ring: every field of a record read back as written
// (text of any kind, repeated strings copied only when they change), in order
// across the ring's end, a full ring refusing a line and taking lines again
// once read, and a reader woken by the writer, by itself, or by its timer.
import t from 'tap';
import type { AccessEntry, CapturedLine } from '../../src/https/access-line.js';
import {
  AccessRingReader,
  AccessRingWriter,
  createAccessRing,
  REOPEN_HERE,
} from '../../src/https/access-ring.js';
import { headOf } from './fixtures/helpers.js';

const base: AccessEntry = {
  service: 'web-https',
  client: '192.0.2.7',
  head: headOf('GET /a?b=c HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8\r\nReferer: https://x/\r\n\r\n'),
  protocol: 'HTTP/1.1',
  status: 200,
  bytesIn: 81,
  bytesOut: 12345,
  headBytesOut: 345,
  startedAt: 1000,
  backendAt: 1000.25,
  tls: 'TLSv1.3',
  requestId: 'id-1',
  reason: undefined,
  grpcStatus: -1,
};

/** A new ring's two sides (`combined`: the writer copies Referer and User-Agent too). */
function newRing(combined = false) {
  const ring = createAccessRing();
  return { writer: new AccessRingWriter(ring, combined), reader: new AccessRingReader(ring) };
}

/** A line's fields, its strings decoded (they lie in the ring until the next read). */
function fieldsOf(line: CapturedLine) {
  const { target, requestId, reason, referer, agent } = line;
  return { ...line, target, requestId, reason, referer, agent };
}

t.test('a record reads back as written, every field, text of any kind', async (t) => {
  const { writer, reader } = newRing(true);
  t.notOk(reader.waiting, 'nothing waits at first');
  t.equal(reader.next(), undefined);
  // Header values are bytes held one per character (obs-text included); the service and the
  // reason may be any text.
  const head = headOf('POST /p HTTP/1.1\r\nHost: h\r\nUser-Agent: caf\xe9 \xff\r\nReferer: r\r\n\r\n');
  const entries: [AccessEntry, number][] = [
    [base, 1012.5],
    [
      {
        ...base,
        service: 'caf\u00e9-\u{1F600}-https',
        client: '2001:db8::7',
        head,
        protocol: 'h2',
        status: 502,
        bytesIn: 3_000_000_000,
        bytesOut: 7,
        headBytesOut: 7,
        backendAt: 0,
        tls: 'TLSv1.2',
        requestId: 'f'.repeat(200),
        reason: 'backend refused: \u00fcber',
        grpcStatus: 14,
      },
      2000,
    ],
    [{ ...base, head: null, protocol: 'HTTP/1.0', status: 408, reason: 'header timeout' }, 3000],
  ];
  for (const [entry, now] of entries) t.ok(writer.write(entry, now), 'taken');
  t.equal(writer.published, 3);
  t.ok(reader.waiting, 'records wait');
  const read = entries.map(() => fieldsOf(reader.next()!));
  t.equal(reader.next(), undefined, 'no more');
  t.match(read[0], {
    service: 'web-https',
    client: '192.0.2.7',
    method: 'GET',
    target: '/a?b=c',
    referer: 'https://x/',
    agent: 'curl/8',
    protocol: 'HTTP/1.1',
    status: 200,
    bytesIn: 81,
    bytesOut: 12345,
    bodyBytesOut: 12000,
    endedAt: 1012.5,
    durationMs: 12.5,
    backendMs: 0.25,
    tls: 'TLSv1.3',
    requestId: 'id-1',
    reason: undefined,
    grpcStatus: -1,
  });
  t.match(read[1], {
    service: 'caf\u00e9-\u{1F600}-https',
    client: '2001:db8::7',
    method: 'POST',
    target: '/p',
    referer: 'r',
    agent: 'caf\xe9 \xff',
    protocol: 'h2',
    status: 502,
    bytesIn: 3_000_000_000,
    bodyBytesOut: 0,
    backendMs: -1,
    tls: 'TLSv1.2',
    requestId: 'f'.repeat(200),
    reason: 'backend refused: \u00fcber',
    grpcStatus: 14,
  });
  t.match(read[2], {
    service: 'web-https',
    client: '192.0.2.7',
    method: '',
    target: '',
    referer: undefined,
    agent: undefined,
    protocol: 'HTTP/1.0',
    status: 408,
    durationMs: 0,
    backendMs: -1,
    tls: 'TLSv1.3',
    reason: 'header timeout',
  });

  const json = createAccessRing();
  new AccessRingWriter(json, false).write(base, 1);
  t.match(
    new AccessRingReader(json).next(),
    { referer: undefined, agent: undefined },
    'JSON: no headers copied',
  );
});

t.test('in order across the ring end many times over, long and short strings mixed', async (t) => {
  const { writer, reader } = newRing();
  const targets: string[] = [];
  let read = 0;
  let wrong = -1;
  // 2,000 records of up to ~100 KB, read in uneven runs: about 60 MB through a 4 MiB ring.
  for (let i = 0; i < 2000; i++) {
    const target = `/${i}/${'x'.repeat((i * 7919) % 100_000)}`;
    targets.push(target);
    const head = headOf(`GET ${target} HTTP/1.1\r\nHost: h\r\n\r\n`);
    const service = i % 3 === 0 ? 'web-https' : `svc-${i % 5}-\u00e9`;
    if (!writer.write({ ...base, service, head, requestId: `id-${i}` }, i)) {
      t.fail(`record ${i} refused with ${i - read} waiting`);
      return;
    }
    if (i % 13 === 0 || i === 1999) {
      for (let line = reader.next(); line !== undefined; line = reader.next(), read++) {
        const service = read % 3 === 0 ? 'web-https' : `svc-${read % 5}-\u00e9`;
        if (
          wrong === -1 &&
          (line.target !== targets[read] ||
            line.requestId !== `id-${read}` ||
            line.service !== service ||
            line.endedAt !== read)
        ) {
          wrong = read;
        }
      }
    }
  }
  t.equal(read, 2000, 'every record read');
  t.equal(wrong, -1, 'each as written');
});

t.test('a full ring refuses a line, and takes lines again once they are read', async (t) => {
  const { writer, reader } = newRing();
  // Records: 16,384 fit.
  let taken = 0;
  while (taken < 20_000 && writer.write(base, taken)) taken++;
  t.equal(taken, 16_384, 'as many records as the ring holds');
  t.notOk(writer.write({ ...base, service: 'other-https' }, 0), 'then refused');
  // The reader tells what it read every 256 records (and when none is left).
  for (let i = 0; i < 255; i++) reader.next();
  t.notOk(writer.write({ ...base, service: 'other-https' }, 0), 'refused while the reader has not told');
  reader.next();
  t.ok(writer.write({ ...base, service: 'other-https' }, 0), 'taken once 256 are read');
  let last: string | undefined;
  for (let line = reader.next(); line !== undefined; line = reader.next()) last = line.service;
  t.equal(last, 'other-https', 'a changed service refused once still reaches the reader with its line');

  // Bytes: 4 MiB of strings.
  const big = headOf(`GET /${'y'.repeat(900_000)} HTTP/1.1\r\nHost: h\r\n\r\n`);
  let bigTaken = 0;
  while (bigTaken < 10 && writer.write({ ...base, head: big }, 0)) bigTaken++;
  t.equal(bigTaken, 4, 'four 900 KB targets fit, a fifth does not');
  t.ok(writer.write(base, 0), 'a short line still fits');
  const lengths: number[] = [];
  for (let line = reader.next(); line !== undefined; line = reader.next()) lengths.push(line.target.length);
  t.same(lengths, [900_001, 900_001, 900_001, 900_001, 6], 'read in order');
  t.ok(writer.write({ ...base, head: big }, 0), 'a long one taken again once they are read');
  t.equal(reader.next()?.target.length, 900_001, 'across the ring end');
});

t.test(
  'the last line read keeps its strings until the next read, even when the reader tells what it read',
  async (t) => {
    const { writer, reader } = newRing();
    // The 256th record read tells the writer (RELEASE_EVERY): make it a long one.
    for (let i = 0; i < 255; i++) writer.write(base, i);
    writer.write({ ...base, head: headOf(`GET /${'y'.repeat(900_000)} HTTP/1.1\r\nHost: h\r\n\r\n`) }, 255);
    for (let i = 0; i < 255; i++) reader.next();
    const line = reader.next()!;
    // The writer now fills every byte it was given back, and wraps round to the ring's start.
    const other = headOf(`GET /${'z'.repeat(100_000)} HTTP/1.1\r\nHost: h\r\n\r\n`);
    let taken = 0;
    while (taken < 100 && writer.write({ ...base, head: other }, 0)) taken++;
    t.ok(taken > 30, `the writer took ${taken} long lines`);
    t.equal(line.target, `/${'y'.repeat(900_000)}`, 'the line read last is whole');
    t.equal(reader.next()?.target.length, 100_001, 'the next one reads as written');
  },
);

t.test(
  'a reopen is a record between the lines before and after it, one asked on a full ring too',
  async (t) => {
    const { writer, reader } = newRing();
    const statuses = (): number[] => {
      const read: number[] = [];
      for (let line = reader.next(); line !== undefined; line = reader.next()) read.push(line.status);
      return read;
    };
    writer.write({ ...base, status: 201 }, 0);
    writer.reopenHere();
    writer.write({ ...base, status: 202 }, 0);
    t.same(statuses(), [201, REOPEN_HERE, 202], 'in the order asked');
    let taken = 0;
    while (writer.write(base, 0)) taken++;
    t.equal(taken, 16_384, 'the ring full');
    writer.reopenHere();
    t.notOk(writer.write({ ...base, status: 203 }, 0), 'a line still refused');
    const read = statuses();
    t.equal(read.length, 16_384, 'what the ring held');
    t.notOk(read.includes(REOPEN_HERE), 'without the reopen');
    t.ok(writer.write({ ...base, status: 204 }, 0), 'room again');
    const after = statuses();
    t.same(after, [REOPEN_HERE, 204], 'the reopen goes in before the next line');
    t.equal(reader.next(), undefined);
  },
);

t.test('the reader is woken by a record after it slept, by itself, or by its timer', async (t) => {
  // A wait alone does not keep a process alive (the log's thread has its message port).
  const alive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(alive));
  const { writer, reader } = newRing();
  writer.write(base, 0);
  await reader.waitForRecords(); // one waits: at once
  t.ok(reader.next(), 'read');
  reader.next();

  // The writer wakes a reader that sleeps (an idle proxy's first request).
  const woken = reader.waitForRecords();
  setTimeout(() => writer.write(base, 1), 50);
  await woken;
  t.ok(reader.waiting, 'woken with a record waiting');
  reader.next();

  // A batch gathering: records written meanwhile do not end it (one wake-up per line would cost
  // the serving thread a call into the runtime each).
  const started = performance.now();
  const paused = reader.pause(80);
  writer.write(base, 2);
  await paused;
  t.ok(performance.now() - started >= 60, 'a pause lasts its time though a record came');
  const poked = reader.pause(60_000);
  reader.poke();
  await poked;
  t.pass('a poke ends a pause');
});
