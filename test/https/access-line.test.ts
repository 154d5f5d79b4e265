// An access-log line: every JSON line parses back to its fields (escapes,
// non-ASCII, numbers and durations included), and the combined format quotes
// what it must.
import t from 'tap';
import {
  type AccessEntry,
  AccessLineFormatter,
  type AccessLogFormat,
  type CapturedLine,
} from '../../src/https/access-line.js';
import { AccessRingReader, AccessRingWriter, createAccessRing } from '../../src/https/access-ring.js';
import { headOf } from './fixtures/helpers.js';

const base: AccessEntry = {
  service: 'web-https',
  client: '192.0.2.7',
  head: headOf('GET /shop/items?token=s3cret HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8\r\n\r\n'),
  protocol: 'HTTP/1.1',
  status: 200,
  bytesIn: 81,
  bytesOut: 12345,
  headBytesOut: 345,
  startedAt: 1000,
  backendAt: 1000.2,
  tls: 'TLSv1.3',
  requestId: '0f8e2c1a-5b1d-4c0e-9d7e-1b2c3d4e5f60',
  reason: undefined,
  grpcStatus: -1,
};

// Lines reach the formatter as they do in the proxy: through the shared ring, one after another
// (what repeats from one to the next is copied only when it changes). A ring per format: the
// combined format's records carry two headers more.
const rings = { json: createAccessRing(), combined: createAccessRing() };
const writers = {
  json: new AccessRingWriter(rings.json, false),
  combined: new AccessRingWriter(rings.combined, true),
};
const readers = { json: new AccessRingReader(rings.json), combined: new AccessRingReader(rings.combined) };

/** `entry` ended at `now`, as the log's thread reads it from the ring. */
function captured(entry: AccessEntry, now: number, format: AccessLogFormat): CapturedLine {
  if (!writers[format].write(entry, now)) throw new Error('the ring is full');
  return readers[format].next()!;
}

// A formatter per format and query setting, each kept from line to line as the log's thread keeps its own.
const formatters = new Map<string, AccessLineFormatter>();

/** The line of `line` as text, `wallOffset` from its times to the wall clock's. */
function accessLine(
  format: AccessLogFormat,
  keepQuery: boolean,
  line: CapturedLine,
  wallOffset: number,
): string {
  const key = `${format} ${keepQuery}`;
  const formatter = formatters.get(key) ?? new AccessLineFormatter(format, keepQuery);
  formatters.set(key, formatter);
  // Exactly the room the formatter asks for, and something already there: a line longer than its
  // bound would be cut (a Buffer drops writes past its end), one that writes where it should not
  // shows it.
  const bound = formatter.bound(line);
  const out = Buffer.alloc(bound + 8, '#');
  const end = formatter.write(line, wallOffset, out, 4);
  if (end > 4 + bound) throw new Error(`a line of ${end - 4} bytes overran its bound of ${bound}`);
  if (out.toString('latin1', 0, 4) !== '####') throw new Error('written before its start');
  return out.toString('utf8', 4, end);
}

/** The line of `entry`, ended at `now` (a performance.now()-like time), formatted as its batch would. */
function lineOf(entry: AccessEntry, now: number, format: AccessLogFormat, keepQuery = false): string {
  return accessLine(format, keepQuery, captured(entry, now, format), Date.now() - now);
}

t.test('JSON: the fields, numbers and durations as written, the query dropped unless kept', async (t) => {
  const line = lineOf(base, 1012.05, 'json');
  t.ok(line.endsWith('}\n'), 'one line');
  const parsed = JSON.parse(line);
  t.match(parsed, {
    time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    type: 'access',
    service: 'web-https',
    client: '192.0.2.7',
    method: 'GET',
    path: '/shop/items',
    protocol: 'HTTP/1.1',
    status: 200,
    bytes_in: 81,
    bytes_out: 12345,
    duration_ms: 12.05,
    backend_ms: 0.2,
    tls: 'TLSv1.3',
    request_id: base.requestId,
  });
  t.notOk('reason' in parsed, 'no reason when the backend answered');
  t.notOk('grpc_status' in parsed, 'no grpc_status but for a gRPC call');
  for (const status of [0, 5, 14]) {
    t.equal(JSON.parse(lineOf({ ...base, grpcStatus: status }, 1001, 'json')).grpc_status, status);
  }
  t.notMatch(line, /s3cret/, 'the query string is dropped by default');
  t.equal(JSON.parse(lineOf(base, 1000, 'json', true)).path, '/shop/items?token=s3cret', 'kept when asked');
  for (const [ms, text] of [
    [0, '0'],
    [3, '3'],
    [0.432, '0.432'],
    [0.4321, '0.432'],
    [10.5, '10.5'],
    [0.0004, '0'],
    [1234.001, '1234.001'],
    [0.05, '0.05'],
    [0.007, '0.007'],
    [999.5, '999.5'],
    [999.9996, '1000'],
  ] as const) {
    t.match(lineOf(base, 1000 + ms, 'json'), `"duration_ms":${text},`, `${ms} ms written as ${text}`);
  }
  for (const n of [0, 7, 10, 99, 100, 1_000_000, 2 ** 40]) {
    t.equal(JSON.parse(lineOf({ ...base, bytesOut: n }, 1001, 'json')).bytes_out, n, `${n} bytes`);
  }
});

t.test('JSON: what needs escaping goes through JSON.stringify, and the line still parses', async (t) => {
  const reason = 'backend said "no" \\ \u0001 then é and 🚀';
  const parsed = JSON.parse(
    lineOf({ ...base, service: 'dépôt-https', reason, status: 502, backendAt: 0 }, 1001, 'json'),
  );
  t.equal(parsed.reason, reason);
  t.equal(parsed.service, 'dépôt-https');
  t.equal(parsed.backend_ms, null, 'no backend time when the backend never answered');
  // A target is visible ASCII: a quote and a backslash are what its JSON string must escape.
  const odd = headOf('GET /a"b\\c/%22?q="x" HTTP/1.1\r\nHost: h\r\n\r\n');
  for (const keepQuery of [false, true]) {
    const line = lineOf({ ...base, head: odd }, 1001, 'json', keepQuery);
    t.equal(
      JSON.parse(line).path,
      keepQuery ? '/a"b\\c/%22?q="x"' : '/a"b\\c/%22',
      `the path, query ${keepQuery}`,
    );
  }
  t.equal(
    JSON.parse(lineOf({ ...base, head: headOf('GET /plain HTTP/1.1\r\nHost: h\r\n\r\n') }, 1001, 'json'))
      .path,
    '/plain',
  );
  const refused = JSON.parse(
    lineOf({ ...base, head: null, status: 431, reason: 'head too large' }, 5000, 'json'),
  );
  t.match(refused, { method: '-', path: '-', duration_ms: 0, backend_ms: null, status: 431 });
});

t.test('any byte of a path is escaped as its format needs, should one ever pass the parser', async (t) => {
  // The parser lets only visible ASCII through; the formatter escapes every other byte all the same.
  const head = headOf('GET /x HTTP/1.1\r\nHost: h\r\n\r\n');
  const path = '/a\u0001b\tc\u007fd\u00e9e\u00ff"\\';
  head.target = path;
  const json = lineOf({ ...base, head }, 1001, 'json');
  t.equal(JSON.parse(json).path, path, 'JSON: every character back as it was');
  t.notMatch(json.slice(0, -1), /[\x00-\x1f]/, 'JSON: no raw control byte but its ending newline');
  t.match(
    lineOf({ ...base, head }, 1001, 'combined'),
    ' "GET /a\\x01b\\x09c\\x7Fd\\xE9e\\xFF\\"\\\\ HTTP/1.1" ',
    'combined: \\xHH, quotes and backslashes escaped',
  );
  // A line at its longest: every byte of every string escaped, each within the bound it was given.
  const worst = headOf('GET /x HTTP/1.1\r\nHost: h\r\n\r\n');
  worst.target = '\u0001'.repeat(5000);
  const huge = { ...base, head: worst, service: '\u0001'.repeat(300), reason: '\u0001'.repeat(3000) };
  t.equal(JSON.parse(lineOf(huge, 1001, 'json')).reason, huge.reason, 'JSON at its longest');
  t.match(lineOf(huge, 1001, 'combined'), /^192/, 'combined at its longest');
});

t.test('combined: the common fields, referer and agent, quotes and control bytes escaped', async (t) => {
  const line = lineOf(base, 1000.432, 'combined');
  t.match(
    line,
    /^192\.0\.2\.7 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/shop\/items HTTP\/1\.1" 200 12000 "-" "curl\/8" web-https 0f8e2c1a-5b1d-4c0e-9d7e-1b2c3d4e5f60 0\.432\n$/,
  );
  const odd = headOf('GET /a HTTP/1.0\r\nHost: h\r\nReferer: https://x/"q"\r\nUser-Agent: a\\b\tc\r\n\r\n');
  const escaped = lineOf(
    { ...base, head: odd, protocol: 'HTTP/1.0', reason: 'backend timeout' },
    1001,
    'combined',
  );
  t.match(escaped, '"GET /a HTTP/1.0"');
  const quotedPath = lineOf(
    { ...base, head: headOf('GET /a"b\\c HTTP/1.1\r\nHost: h\r\n\r\n') },
    1001,
    'combined',
  );
  t.match(quotedPath, ' "GET /a\\"b\\\\c HTTP/1.1" 200 ', 'a quote and a backslash in the path escaped');
  t.match(escaped, ' "https://x/\\"q\\"" "a\\\\b\\x09c" ', 'quotes, backslashes and a tab escaped');
  t.ok(escaped.endsWith(' 1 backend timeout\n'), 'the reason last');
  // A client's UTF-8 in a header (obs-text, held one byte per character): each byte as \xHH, as
  // nginx writes it, so that the line is ASCII and the bytes can be read back.
  const utf8 = headOf(
    `GET /a HTTP/1.1\r\nHost: h\r\nUser-Agent: ${Buffer.from('café ☕', 'utf8').toString('latin1')}\r\n\r\n`,
  );
  const raw = lineOf({ ...base, head: utf8 }, 1001, 'combined');
  t.match(raw, ' "-" "caf\\xC3\\xA9 \\xE2\\x98\\x95" ', 'bytes above 0x7e as \\xHH');
  t.notOk(/[^\x20-\x7e\n]/.test(raw), 'the whole line is printable ASCII');
  t.match(lineOf({ ...base, protocol: 'h2' }, 1001, 'combined'), '"GET /shop/items HTTP/2.0"');
  t.match(
    lineOf({ ...base, head: null, status: 408 }, 1001, 'combined'),
    '] "- - HTTP/1.1" 408 12000 "-" "-" ',
  );
});

t.test('the time of a line is its own millisecond, across seconds and in either order', async (t) => {
  const now = 5000;
  // 2026-12-04T08:55:12.000Z and around it: the first and last millisecond of a second, a
  // second's change, a line older than the one before (batches from two protocols), a new day.
  const second = Date.UTC(2026, 11, 4, 8, 55, 12);
  const times = [
    second,
    second + 5,
    second + 999,
    second + 1000,
    second + 40,
    second + 86_400_000 + 7,
    second + 7,
  ];
  for (const wall of times) {
    const record = captured(base, now, 'json');
    const line = JSON.parse(accessLine('json', false, record, wall - now));
    t.equal(line.time, new Date(wall).toISOString(), `ISO 8601 at ${wall - second} ms`);
  }
  const clf = accessLine('combined', false, captured(base, now, 'combined'), second + 999 - now);
  t.match(clf, / - - \[04\/Dec\/2026:08:55:12 \+0000\] /, 'the common log format: the second, in UTC');
});

t.test('what repeats from line to line is built again whenever it changes, in either format', async (t) => {
  const post = headOf('POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n');
  const entries: AccessEntry[] = [
    base,
    { ...base, client: '198.51.100.9' },
    { ...base, client: '198.51.100.9', head: post },
    { ...base, service: 'api-https', head: post },
    { ...base, tls: 'TLSv1.2' },
    { ...base, head: null, status: 408 },
    base,
  ];
  for (const [i, entry] of entries.entries()) {
    const json = JSON.parse(lineOf(entry, 1001, 'json'));
    t.match(
      json,
      {
        service: entry.service,
        client: entry.client,
        method: entry.head?.method ?? '-',
        path: entry.head === null ? '-' : entry.head.target.split('?')[0],
        tls: entry.tls,
      },
      `JSON line ${i}`,
    );
    const combined = lineOf(entry, 1001, 'combined');
    t.ok(combined.startsWith(`${entry.client} - - [`), `combined line ${i}: the client`);
    t.match(combined, `] "${entry.head?.method ?? '-'} `, `combined line ${i}: the method`);
    t.match(combined, ` ${entry.service} ${entry.requestId} `, `combined line ${i}: the service`);
  }
});
