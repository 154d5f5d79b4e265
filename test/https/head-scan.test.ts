// The WebAssembly head scan: built from its source, growing for long heads, and
// naming every header kind the proxy acts on. (What it accepts and refuses is
// head-parser.test.ts: every head goes through the scan.)
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Head } from '../../src/https/head.js';
import {
  findHeadEnd,
  parseRequestHead,
  parseRequestText,
  parseResponseHead,
} from '../../src/https/head-parser.js';
import { bytes } from '../../src/https/head-scan.js';
import { K_OTHER, K_UNDERSCORE, KNOWN_NAMES } from '../../src/https/header-kinds.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

t.test('the committed module is what wasm/head-scan.ts compiles to', async (t) => {
  // Exits 1 with a message naming the file when the two differ.
  t.doesNotThrow(() =>
    execFileSync(process.execPath, [join(root, 'scripts', 'build-wasm.mjs'), '--check'], { stdio: 'pipe' }),
  );
});

function parseRequest(text: string): { error: string | null; head: Head } {
  const buf = Buffer.from(text, 'latin1');
  const head = new Head();
  const end = findHeadEnd(buf, 0, buf.length);
  t.ok(end > 0, 'the head is complete');
  return { error: parseRequestHead(head, buf, 0, end), head };
}

t.test('a head longer than the memory the scan started with grows it, and is read whole', async (t) => {
  const before = bytes.length;
  const long = 'v'.repeat(before + 70_000);
  const { error, head } = parseRequest(
    `GET / HTTP/1.1\r\nHost: h\r\nX-Long: ${long}\r\nContent-Length: 5\r\nX-After: a\r\n\r\n`,
  );
  t.equal(error, null);
  t.equal(head.header('x-long'), long);
  t.equal(head.contentLength, 5);
  t.equal(head.header('x-after'), 'a');
  t.ok(bytes.length > before, 'the memory grew');
  // Short heads after the growth still parse (the views were made again).
  const next = parseRequest('GET /b HTTP/1.1\r\nHost: h2\r\n\r\n');
  t.equal(next.error, null);
  t.equal(next.head.target, '/b');
  t.equal(next.head.host, 'h2');
});

/** Parses a response head with one header line `line`; null or the error. */
function responseWith(head: Head, line: string): string | null {
  const buf = Buffer.from(`HTTP/1.1 200 OK\r\n${line}\r\n\r\n`, 'latin1');
  return parseResponseHead(head, buf, 0, buf.length);
}

t.test('every header kind is found, in any letter case; near names are not', async (t) => {
  const head = new Head();
  for (const [name, kind] of KNOWN_NAMES) {
    // A value each kind accepts.
    const value = { 'content-length': '1', 'transfer-encoding': 'chunked' }[name] ?? 'v';
    for (const sent of [name, name.toUpperCase(), name.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())]) {
      t.equal(responseWith(head, `${sent}: ${value}`), null, sent);
      t.equal(head.kind[0], kind, `${sent} is kind ${kind}`);
    }
    // One letter changed at each end, and one byte more: another name, not this kind.
    for (const sent of [`${name.slice(0, -1)}q`, `q${name.slice(1)}`, `${name}s`]) {
      if (KNOWN_NAMES.some(([known]) => known === sent)) continue;
      t.equal(responseWith(head, `${sent}: ${value}`), null, sent);
      t.equal(head.kind[0], K_OTHER, `${sent} is no kind`);
    }
  }
  t.equal(parseRequestText(head, 'GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 1'), null);
  t.equal(head.kind[1], K_UNDERSCORE);
});

t.test('responses and requests take turns through the one scan without mixing', async (t) => {
  const request = new Head();
  const response = new Head();
  const res = Buffer.from(
    'HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\nConnection: close\r\n\r\n',
    'latin1',
  );
  for (let i = 0; i < 3; i++) {
    t.equal(
      parseRequestText(request, `GET /${i} HTTP/1.1\r\nHost: h${i}\r\nTransfer-Encoding: chunked`),
      null,
    );
    t.equal(parseResponseHead(response, res, 0, res.length), null);
    t.equal(request.target, `/${i}`);
    t.equal(request.host, `h${i}`);
    t.equal(request.chunked, true);
    t.equal(response.status, 404);
    t.equal(response.reason, 'Not Found');
    t.equal(response.contentLength, 7);
    t.equal(response.connection, 'close');
    t.equal(response.value(1), 'close');
  }
});
