// npm run bench:parse-heads: instructions to find and parse one HTTP/1 head
// (findHeadEnd, then parseRequestHead or parseResponseHead), counted by
// valgrind's callgrind for builds of harbor-sidecar, on three heads: wrk's
// one-line request, a browser's ten-line request, and nginx's eight-line
// response to it. Each count is the difference between a run of 300,000 heads
// and one of 100,000, divided by 200,000: start-up, compilation and warm-up
// cancel out, and the figure repeats to a few instructions. It counts the
// parser alone, hot in the cache; in the proxy the same heads cost more (see
// bench:instructions and docs/benchmarks.md).
//
//   node bench/https/parse-heads.mjs [--dist DIST[,DIST...]]
//
// DIST: a dist folder (`npm run build` output; default: this checkout's).
// Needs valgrind (Debian: apt-get install valgrind).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { commandExists, runCommand } from '../lib/proc.mjs';
import { repoRoot } from './targets.mjs';

const HEADS = {
  'wrk request': 'GET /small HTTP/1.1\r\nHost: 127.0.0.1:40123\r\n\r\n',
  'browser request':
    'GET /assets/app.js?v=123 HTTP/1.1\r\nHost: app.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n' +
    'Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n' +
    'Referer: https://app.example.com/\r\nCookie: session=abcdef0123456789abcdef0123456789; theme=dark\r\n' +
    'Connection: keep-alive\r\nSec-Fetch-Dest: script\r\n\r\n',
  'nginx response':
    'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 18:20:00 GMT\r\n' +
    'Content-Type: application/octet-stream\r\nContent-Length: 14\r\n' +
    'Last-Modified: Wed, 02 Dec 2026 18:19:00 GMT\r\nConnection: keep-alive\r\n' +
    'ETag: "6750a1b4-e"\r\nAccept-Ranges: bytes\r\n\r\n',
};

const USAGE = 'usage: node bench/https/parse-heads.mjs [--dist DIST[,DIST...]]';
const values = parseOptions(USAGE, {
  dist: { type: 'string', default: join(repoRoot, 'dist') },
  child: { type: 'string' },
  head: { type: 'string' },
  count: { type: 'string' },
});

if (values.child !== undefined) {
  // One run under callgrind: `count` heads, parsed in a loop.
  const parser = await import(pathToFileURL(join(values.child, 'https', 'head-parser.js')).href);
  const text = HEADS[values.head];
  const bytes = Buffer.from(text, 'latin1');
  const response = text.startsWith('HTTP/');
  // Head moved to head.js of its own on 2026-12-02; earlier builds export it from head-parser.js.
  const own = join(values.child, 'https', 'head.js');
  const { Head } = existsSync(own) ? await import(pathToFileURL(own).href) : parser;
  const head = new Head();
  let refused = 0;
  for (let i = Number(values.count); i > 0; i--) {
    const end = parser.findHeadEnd(bytes, 0, bytes.length);
    const error = response
      ? parser.parseResponseHead(head, bytes, 0, end)
      : parser.parseRequestHead(head, bytes, 0, end);
    if (error !== null) refused++;
  }
  if (refused > 0) throw new Error(`${values.head}: refused (${refused} times)`);
  process.exit(0);
}

if (!commandExists('valgrind')) {
  process.stderr.write('valgrind is not installed (Debian: apt-get install valgrind)\n');
  process.exit(2);
}
const dists = values.dist.split(',').map((d) => resolve(d));
for (const dist of dists) {
  if (!existsSync(join(dist, 'https', 'head-parser.js'))) {
    process.stderr.write(`--dist: ${dist} has no https/head-parser.js (run npm run build)\n`);
    process.exit(2);
  }
}

/** Instructions callgrind counted for `count` heads (and everything else the run did). */
async function collected(dist, head, count) {
  const args = ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--single-threaded'];
  args.push(join(repoRoot, 'bench', 'https', 'parse-heads.mjs'), '--child', dist, '--head', head);
  args.push('--count', String(count));
  const { code, stderr } = await runCommand('valgrind', args, { timeoutMs: 10 * 60_000 });
  const m = /Collected : (\d+)/.exec(stderr);
  if (code !== 0 || m === null)
    throw new Error(`callgrind (${head}, ${dist}) failed (exit ${code}): ${stderr.slice(-500)}`);
  return Number(m[1]);
}

process.stdout.write(
  'instructions per head: findHeadEnd and parse (callgrind, (300k heads - 100k heads) / 200k)\n',
);
for (const head of Object.keys(HEADS)) {
  const figures = [];
  for (const dist of dists) {
    const [few, many] = await Promise.all([collected(dist, head, 100_000), collected(dist, head, 300_000)]);
    figures.push(`${dist}: ${((many - few) / 200_000).toFixed(0)}`);
  }
  process.stdout.write(`${head} (${Buffer.byteLength(HEADS[head])} bytes): ${figures.join(', ')}\n`);
}
