// The strict head parser and the chunked framing, byte by byte.
import * as http from 'node:http';
import * as net from 'node:net';
import t from 'tap';
import { ChunkedParser, parseTrailers } from '../../src/https/chunked.js';
import { Head } from '../../src/https/head.js';
import {
  findHeadEnd,
  parseRequestHead,
  parseRequestText,
  parseResponseHead,
  withCrlfLineEnds,
} from '../../src/https/head-parser.js';

function parseRequest(text: string): { error: string | null; head: Head } {
  const buf = Buffer.from(text, 'latin1');
  const head = new Head();
  const end = findHeadEnd(buf, 0, buf.length);
  if (end === -2) return { error: 'bad-line-ending', head };
  if (end === -1) return { error: 'incomplete', head };
  return { error: parseRequestHead(head, buf, 0, end), head };
}

t.test('a valid request head', async (t) => {
  const { error, head } = parseRequest(
    'POST /x?y=1 HTTP/1.1\r\nHost: example.com:8443\r\nContent-Length: 12\r\nX-A:  spaced value \t\r\nConnection: Keep-Alive, X-A\r\n\r\n',
  );
  t.equal(error, null);
  t.equal(head.method, 'POST');
  t.equal(head.target, '/x?y=1');
  t.equal(head.minor, 1);
  t.equal(head.host, 'example.com:8443');
  t.equal(head.contentLength, 12);
  t.equal(head.header('x-a'), 'spaced value');
  t.equal(head.header('content-length'), '12', 'a name sent in mixed case');
  t.equal(head.header('host'), 'example.com:8443');
  t.equal(head.header('x-b'), undefined, 'a name of the same length that differs');
  t.equal(head.header('x-'), undefined, 'a prefix of a name');
  t.ok(head.connectionHas('keep-alive'));
  t.ok(head.connectionHas('x-a'));
  t.notOk(head.connectionHas('close'));
});

t.test('leading empty line skipped; HTTP/1.0 needs no Host; chunked recognised', async (t) => {
  t.equal(parseRequest('\r\nGET / HTTP/1.0\r\n\r\n').error, null);
  const { head } = parseRequest('PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n');
  t.ok(head.chunked);
});

t.test(
  'an absolute target: origin form, its authority the host; CONNECT and * left as they are',
  async (t) => {
    const { error, head } = parseRequest(
      'GET http://Shop.Example:8443/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n',
    );
    t.equal(error, null);
    t.equal(head.target, '/a/b?c=d');
    t.equal(head.host, 'Shop.Example:8443');
    t.equal(head.hostFromTarget, true);
    t.equal(parseRequest('GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n').head.target, '/', 'scheme case-blind');
    t.equal(parseRequest('GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n').head.target, '/?q');
    const origin = parseRequest('GET /x HTTP/1.1\r\nHost: h\r\n\r\n').head;
    t.equal(origin.hostFromTarget, false);
    t.equal(parseRequest('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n').head.target, '*');
    const connect = parseRequest('CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n');
    t.equal(connect.error, null, 'CONNECT parses (the connection answers it 405)');
    t.equal(connect.head.target, 'h.example:443');
  },
);

t.test('findHeadEnd: incomplete, complete, bare LF', async (t) => {
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');
  t.equal(findHeadEnd(b('GET / HTTP/1.1\r\nHost: h\r\n'), 0, 25), -1);
  t.equal(findHeadEnd(b('GET / HTTP/1.1\r\nHost: h\r\n\r\nxyz'), 0, 30), 27);
  t.equal(findHeadEnd(b('GET / HTTP/1.1\nHost: h\r\n\r\n'), 0, 26), -2);
  t.equal(findHeadEnd(b('GET / HTTP/1.1\r\nHost: h\n\n'), 0, 25), -2);
});

t.test(
  'withCrlfLineEnds: a response head with LF line ends rewritten, the bytes after it kept',
  async (t) => {
    const b = (s: string): Buffer => Buffer.from(s, 'latin1');
    const text = (r: { bytes: Buffer; end: number } | null) =>
      r === null ? null : [r.bytes.toString('latin1', 0, r.end), r.bytes.toString('latin1', r.end)];
    t.same(text(withCrlfLineEnds(b('HTTP/1.1 200 OK\nA: b\n\nbody'), 0)), [
      'HTTP/1.1 200 OK\r\nA: b\r\n\r\n',
      'body',
    ]);
    t.same(
      text(withCrlfLineEnds(b('xxHTTP/1.1 204 No\r\nA: b\nC: d\r\n\n'), 2)),
      ['HTTP/1.1 204 No\r\nA: b\r\nC: d\r\n\r\n', ''],
      'mixed line ends; the head begins at from',
    );
    t.equal(withCrlfLineEnds(b('HTTP/1.1 200 OK\nA: b\n'), 0), null, 'no blank line yet');
    t.same(
      text(withCrlfLineEnds(b('HTTP/1.1 200 OK\nA: b\rc\n\n'), 0)),
      ['HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n', ''],
      'a CR inside a line is kept',
    );
    const head = new Head();
    const bare = b('HTTP/1.1 200 OK\nA: b\rc\n\n');
    const rewritten = withCrlfLineEnds(bare, 0);
    t.equal(
      rewritten && parseResponseHead(head, rewritten.bytes, 0, rewritten.end),
      'bad-header-value',
      'and refused',
    );
  },
);

// Each of these must be refused (RFC 9112 section 11.2; the cases llhttp refuses without lenient flags).
const refused: [string, string, string][] = [
  [
    'duplicate Content-Length',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n',
    'duplicate-content-length',
  ],
  [
    'conflicting Content-Length',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'duplicate-content-length',
  ],
  ['Content-Length list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n', 'bad-content-length'],
  ['signed Content-Length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n', 'bad-content-length'],
  ['hex Content-Length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n', 'bad-content-length'],
  [
    'huge Content-Length',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'bad-content-length',
  ],
  [
    'CL + TE',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'content-length-with-transfer-encoding',
  ],
  [
    'TE + CL',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
    'content-length-with-transfer-encoding',
  ],
  [
    'TE gzip, chunked',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'unsupported-transfer-encoding',
  ],
  [
    'TE chunked twice',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    'unsupported-transfer-encoding',
  ],
  [
    'TE identity',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n',
    'unsupported-transfer-encoding',
  ],
  [
    'TE chunked with junk',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n',
    'unsupported-transfer-encoding',
  ],
  [
    'TE in HTTP/1.0',
    'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
    'transfer-encoding-in-http-1.0',
  ],
  [
    'space before colon',
    'GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n',
    'bad-header-name',
  ],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n', 'obs-fold'],
  ['obs-fold with tab', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n', 'obs-fold'],
  ['header without colon', 'GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n', 'bad-header-name'],
  ['empty header name', 'GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n', 'bad-header-name'],
  ['invalid char in name', 'GET / HTTP/1.1\r\nHost: h\r\nX(A): v\r\n\r\n', 'bad-header-name'],
  ['NUL in value', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n', 'bad-header-value'],
  ['bare CR in value', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n', 'bad-header-value'],
  ['DEL in value', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n', 'bad-header-value'],
  ['bare LF line ending', 'GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n', 'bad-line-ending'],
  ['missing Host in 1.1', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', 'missing-host'],
  ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'duplicate-host'],
  ['Host with space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 'bad-host'],
  ['Host with slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 'bad-host'],
  ['HTTP/2.0 line', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 'bad-version'],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: h\r\n\r\n', 'bad-version'],
  ['lower-case http', 'GET / http/1.1\r\nHost: h\r\n\r\n', 'bad-version'],
  ['two spaces', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-request-line'],
  ['no version', 'GET /\r\nHost: h\r\n\r\n', 'bad-request-line'],
  ['bad method', 'G(T / HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-method'],
  ['control char in target', 'GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-target'],
  ['non-ASCII in target', 'GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-target'],
  ['absolute target of another scheme', 'GET ftp://h/a HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-target'],
  ['absolute target with userinfo', 'GET http://u:p@h/a HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-target'],
  ['absolute target without Host in 1.1', 'GET http://h/a HTTP/1.1\r\nX-A: b\r\n\r\n', 'missing-host'],
  ['absolute target, authority not a host', 'GET http://h!"x/a HTTP/1.1\r\nHost: h\r\n\r\n', 'bad-host'],
];

for (const [name, text, reason] of refused) {
  t.test(`refused: ${name}`, async (t) => {
    t.equal(parseRequest(text).error, reason);
  });
}

t.test(
  'every byte value, at every place in a value: only control bytes other than tab are refused',
  async (t) => {
    // Values are checked four bytes at a time: a byte is tried at each of the eight places
    // of two words, in requests and responses, read from the middle of a larger buffer (as
    // a read is) and from HTTP/2's text.
    const wrongs: string[] = [];
    for (let byte = 0; byte < 256; byte++) {
      if (byte === 0x0a) continue; // a bare LF ends the head early: findHeadEnd refuses it
      const refused = (byte < 0x20 && byte !== 0x09) || byte === 0x7f;
      for (let place = 0; place < 8; place++) {
        const value = `abcdefgh-ijkl`.split('');
        value[place + 2] = String.fromCharCode(byte);
        const v = value.join('');
        const expected = refused ? 'bad-header-value' : null;
        const lead = 'x'.repeat(place % 3);
        const request = Buffer.from(`${lead}GET / HTTP/1.1\r\nHost: h\r\nX-V: ${v}\r\n\r\n`, 'latin1');
        const head = new Head();
        const requestError = parseRequestHead(
          head,
          request,
          lead.length,
          findHeadEnd(request, 0, request.length),
        );
        const response = Buffer.from(
          `${lead}HTTP/1.1 200 OK\r\nX-V: ${v}\r\nContent-Length: 0\r\n\r\n`,
          'latin1',
        );
        const responseError = parseResponseHead(
          head,
          response,
          lead.length,
          findHeadEnd(response, 0, response.length),
        );
        const textError = parseRequestText(head, `GET / HTTP/1.1\r\nX-V: ${v}\r\nHost: h`);
        for (const [what, error] of [
          ['request', requestError],
          ['response', responseError],
          ['HTTP/2 text', textError],
        ] as const) {
          if (error !== expected)
            wrongs.push(`byte 0x${byte.toString(16)} at ${place} in a ${what}: ${error}`);
        }
        if (!refused && head.header('x-v') !== v.trim())
          wrongs.push(`byte 0x${byte.toString(16)} at ${place}: value ${head.header('x-v')}`);
      }
    }
    t.same(wrongs, []);
  },
);

t.test('blanks around a value are trimmed, inside it kept', async (t) => {
  const head = new Head();
  for (const [sent, kept] of [
    [' \t a b \t ', 'a b'],
    ['a', 'a'],
    ['   ', ''],
    ['\t\tlonger value with\ttabs\t', 'longer value with\ttabs'],
  ]) {
    const buf = Buffer.from(`HTTP/1.1 200 OK\r\nX-V:${sent}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
    t.equal(parseResponseHead(head, buf, 0, buf.length), null);
    t.equal(head.header('x-v'), kept, JSON.stringify(sent));
  }
});

t.test('more than 200 header lines refused', async (t) => {
  const many = Array.from({ length: 201 }, (_, i) => `X-${i}: v\r\n`).join('');
  t.equal(parseRequest(`GET / HTTP/1.1\r\nHost: h\r\n${many}\r\n`).error, 'too-many-headers');
});

t.test('a lone Connection: keep-alive response head is relayed as it is', async (t) => {
  const { buildResponseHead, RESPONSE_KEEP, RESPONSE_CLOSE } = await import('../../src/https/forwarding.js');
  const buf = Buffer.from(
    'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n',
  );
  const head = new Head();
  t.equal(parseResponseHead(head, buf, 0, buf.length), null);
  t.equal(buildResponseHead(head, RESPONSE_KEEP, false), null);
  t.equal(
    buildResponseHead(head, RESPONSE_CLOSE, false),
    'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: close\r\n\r\n',
  );
  const alive = Buffer.from(
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n',
  );
  t.equal(parseResponseHead(head, alive, 0, alive.length), null);
  t.equal(buildResponseHead(head, RESPONSE_KEEP, false), 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n');
});

t.test('response heads', async (t) => {
  const { buildResponseHead, RESPONSE_KEEP } = await import('../../src/https/forwarding.js');
  const parse = (s: string): { error: string | null; head: Head } => {
    const buf = Buffer.from(s, 'latin1');
    const head = new Head();
    return { error: parseResponseHead(head, buf, 0, findHeadEnd(buf, 0, buf.length)), head };
  };
  const ok = parse('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n');
  t.equal(ok.error, null);
  t.equal(ok.head.status, 404);
  t.equal(ok.head.reason, 'Not Found');
  t.equal(parse('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').error, null, 'no reason phrase');
  t.equal(parse('HTTP/1.1 20 OK\r\n\r\n').error, 'bad-status-line');
  // RFC 9110 section 15: 100-599 only; HTTP/2 cannot carry others, so HTTP/1 refuses them too.
  t.equal(parse('HTTP/1.1 599 Last\r\nContent-Length: 0\r\n\r\n').error, null);
  t.equal(parse('HTTP/1.1 600 Weird\r\nContent-Length: 0\r\n\r\n').error, 'bad-status-line');
  t.equal(parse('HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n').error, 'bad-status-line');
  t.equal(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n').error,
    'duplicate-content-length',
  );
  t.equal(parse('HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n').error, 'obs-fold');
  // The same length repeated (RFC 9110 section 8.6): one kept, the others dropped from what is relayed.
  const twice = parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\ncontent-length:  2 \r\n\r\n');
  t.equal(twice.error, null);
  t.equal(twice.head.contentLength, 2);
  t.equal(
    buildResponseHead(twice.head, RESPONSE_KEEP, false),
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n',
  );
  t.equal(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02x\r\n\r\n').error,
    'duplicate-content-length',
  );
  // A list of one length (RFC 9110 section 8.6, as nginx takes it): that length, sent on as one value.
  for (const value of ['2, 2', '2,2', '2 ,\t2 , 2', '2']) {
    const listed = parse(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\nX-A: b\r\n\r\n`);
    t.equal(listed.error, null, `"${value}"`);
    t.equal(listed.head.contentLength, 2, `"${value}": length 2`);
    if (value !== '2') {
      t.equal(
        buildResponseHead(listed.head, RESPONSE_KEEP, false),
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n',
        `"${value}": relayed as one length`,
      );
    }
  }
  t.equal(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\n').head.contentLength,
    2,
    'a list, then the same length again',
  );
  t.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\n').error, null);
  for (const value of ['2, 3', '2,', ', 2', '2,,2', '2, x', '2 2']) {
    t.equal(
      parse(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`).error,
      'bad-content-length',
      `"${value}" refused`,
    );
  }
  t.equal(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 2, 2\r\n\r\n').error,
    'duplicate-content-length',
  );
  t.equal(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nTransfer-Encoding: chunked\r\n\r\n').error,
    'content-length-with-transfer-encoding',
  );
});

t.test('chunked: split at every byte gives the same end', async (t) => {
  const body = Buffer.from(
    '5\r\nhello\r\nA;name="v"\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT',
    'latin1',
  );
  const expectedEnd = body.length - 4;
  for (let split = 1; split < body.length - 4; split++) {
    const p = new ChunkedParser(1024);
    p.reset();
    const first = p.execute(body, 0, split, null);
    t.equal(first, -1, `split ${split}: first part needs more`);
    const end = p.execute(body, split, body.length, null);
    if (end !== expectedEnd) t.fail(`split ${split}: ended at ${end}`);
  }
  const data: string[] = [];
  const p = new ChunkedParser(1024);
  p.reset(true);
  const end = p.execute(body, 0, body.length, {
    onChunkData: (b, s, e) => data.push(b.toString('latin1', s, e)),
  });
  t.equal(end, expectedEnd);
  t.equal(data.join(''), 'hello0123456789');
  t.same(parseTrailers(p.trailers), [
    ['x-sum', '1'],
    ['x-b', '2'],
  ]);
});

const badChunked: [string, string][] = [
  ['non-hex size', 'g\r\nx\r\n0\r\n\r\n'],
  ['empty size', '\r\nx\r\n0\r\n\r\n'],
  ['space after size', '5 \r\nhello\r\n0\r\n\r\n'],
  ['size then LF only', '5\nhello\r\n0\r\n\r\n'],
  ['chunk longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
  ['missing CRLF after data', '5\r\nhelloX\r\n0\r\n\r\n'],
  ['size overflow', 'fffffffffffffffff\r\n'],
  ['negative size', '-5\r\nhello\r\n0\r\n\r\n'],
  ['bad trailer', '0\r\nX Y: z\r\n\r\n'],
  ['obs-fold trailer', '0\r\nX: a\r\n b\r\n\r\n'],
  ['trailer with bare LF', '0\r\nX: a\n\r\n'],
];
for (const [name, text] of badChunked) {
  t.test(`chunked refused: ${name}`, async (t) => {
    const p = new ChunkedParser(1024);
    p.reset();
    const buf = Buffer.from(text, 'latin1');
    t.equal(p.execute(buf, 0, buf.length, null), -2);
    t.type(p.error, 'string');
  });
}

t.test('chunked: trailers beyond the limit refused', async (t) => {
  const p = new ChunkedParser(16);
  p.reset();
  const buf = Buffer.from(`0\r\nX-Long: ${'a'.repeat(40)}\r\n\r\n`);
  t.equal(p.execute(buf, 0, buf.length, null), -2);
});

t.test(
  'chunked from a backend: framing lines may end in LF alone, blanks may follow a size; each is noted, at any split',
  async (t) => {
    // Size line, extension, data end, trailer line and the last line each end in LF alone once;
    // four sizes are followed by blanks (before an LF alone, an extension, a CRLF, the trailers).
    const text = '5 \t\nhello\r\nA ;x=1\n0123456789\n3  \r\nabc\r\n0 \nX-Sum: 1\nX-B: 2\r\n\nNEXT';
    const body = Buffer.from(text, 'latin1');
    const expectedEnd = body.length - 4;
    const lfs = [...text.matchAll(/(?<!\r)\n/g)].map((m) => m.index as number);
    const blanks = [...text.matchAll(/^[0-9A-Fa-f]+([ \t]+)/dgm)].flatMap((m) => {
      const [from, to] = m.indices![1] as [number, number];
      return Array.from({ length: to - from }, (_, k) => ~(from + k));
    });
    t.equal(lfs.length, 6);
    t.equal(blanks.length, 6);
    const expected = [...lfs, ...blanks].sort((a, b) => (a < 0 ? ~a : a) - (b < 0 ? ~b : b));
    // Whatever the split, the same repairs, the same data and the same trailers (a read that
    // starts among a size's blanks must not take them for trailer text).
    for (let split = 0; split < expectedEnd; split++) {
      const p = new ChunkedParser(1024, true);
      p.reset(true);
      const seen: number[] = [];
      let data = '';
      const sink = { onChunkData: (b: Buffer, s: number, e: number) => (data += b.toString('latin1', s, e)) };
      const first = split === 0 ? -1 : p.execute(body, 0, split, sink);
      seen.push(...p.repairs);
      p.repairs.length = 0;
      const end = p.execute(body, split, body.length, sink);
      seen.push(...p.repairs);
      const trailers = JSON.stringify(parseTrailers(p.trailers));
      if (
        first !== -1 ||
        end !== expectedEnd ||
        seen.join() !== expected.join() ||
        data !== 'hello0123456789abc' ||
        trailers !== '[["x-sum","1"],["x-b","2"]]'
      ) {
        t.fail(
          `split ${split}: first ${first}, end ${end}, repairs at ${seen}, data ${data}, trailers ${trailers}`,
        );
      }
    }
    // A byte at a time: every read starts and ends in another state.
    const bytewise = new ChunkedParser(1024, true);
    bytewise.reset(true);
    let bytewiseData = '';
    let bytewiseEnd = -1;
    for (let i = 0; i < body.length && bytewiseEnd === -1; i++) {
      bytewiseEnd = bytewise.execute(body, i, i + 1, {
        onChunkData: (b, s, e) => {
          bytewiseData += b.toString('latin1', s, e);
        },
      });
    }
    t.same(
      {
        end: bytewiseEnd,
        repairs: bytewise.repairs,
        data: bytewiseData,
        trailers: parseTrailers(bytewise.trailers),
      },
      {
        end: expectedEnd,
        repairs: expected,
        data: 'hello0123456789abc',
        trailers: [
          ['x-sum', '1'],
          ['x-b', '2'],
        ],
      },
      'a byte at a time: the same',
    );
    const data: string[] = [];
    const p = new ChunkedParser(1024, true);
    p.reset(true);
    t.equal(
      p.execute(body, 0, body.length, { onChunkData: (b, s, e) => data.push(b.toString('latin1', s, e)) }),
      expectedEnd,
    );
    t.equal(data.join(''), 'hello0123456789abc');
    t.same(parseTrailers(p.trailers), [
      ['x-sum', '1'],
      ['x-b', '2'],
    ]);
    // Without trailers, the empty line alone.
    const bare = Buffer.from('2\nok\n0\n\n', 'latin1');
    const q = new ChunkedParser(1024, true);
    q.reset(true);
    t.equal(q.execute(bare, 0, bare.length, null), bare.length);
    t.equal(q.trailers, '');
    t.same(q.repairs, [1, 4, 6, 7]);
  },
);

const badLenientChunked: [string, string][] = [
  ['size then CR alone', '5\rhello\r\n0\r\n\r\n'],
  ['an empty size line', '\nhello\n0\n\n'],
  ['data longer than its size', '3\nhello\n0\n\n'],
  ['CR then no LF after data', '5\nhello\rX0\n\n'],
  ['CR alone in a trailer', '0\nX: a\rb\n\n'],
  ['a blank before a size', ' 5\r\nhello\r\n0\r\n\r\n'],
  ['a blank inside a size', '1 0\r\n0123456789abcdef\r\n0\r\n\r\n'],
  ['a blank after an extension', '5;x=1 \r\nhello\r\n0\r\n\r\n'],
  ['something else after the blanks', '5 x\r\nhello\r\n0\r\n\r\n'],
];
for (const [name, text] of badLenientChunked) {
  t.test(`chunked from a backend refused: ${name}`, async (t) => {
    const p = new ChunkedParser(1024, true);
    p.reset();
    const buf = Buffer.from(text, 'latin1');
    t.equal(p.execute(buf, 0, buf.length, null), -2);
    t.type(p.error, 'string');
  });
}

t.test(
  "chunk extensions: by llhttp's grammar; whatever this parser lets through, Node's client reads",
  async (t) => {
    // [extension after the size 3, accepted here]
    const cases: [string, boolean][] = [
      [';x=y', true],
      [';x', true],
      [';x=y;z', true],
      [';x=y;z=w', true],
      [';x="a b"', true],
      [';x="a\\"b"', true],
      [';x=""', true],
      [';x="\t"', true],
      [';x="\x84"', true],
      ['; x=y', false],
      [';x =y', false],
      [';x= y', false],
      [';x=y ', false],
      [';', false],
      [';;x', false],
      [';=y', false],
      [';x=', false],
      [';x=\x84', false],
      [';\x84', false],
      [';x="a"b', false],
      [';x="a', false],
      [';x="a\x01"', false],
      [';x=y\x00', false],
    ];
    for (const [ext, accepted] of cases) {
      const body = Buffer.from(`3${ext}\r\nabc\r\n0\r\n\r\n`, 'latin1');
      const p = new ChunkedParser(1024);
      p.reset();
      t.equal(p.execute(body, 0, body.length, null) === body.length, accepted, JSON.stringify(ext));
      if (!accepted) continue;
      // Node's own parser, as a client and a backend would read the body relayed unchanged.
      const read = await new Promise<string>((resolve) => {
        const app = net.createServer((s) =>
          s.once('data', () =>
            s.end(
              Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), body]),
            ),
          ),
        );
        app.listen(0, '127.0.0.1', () => {
          http
            .get({ host: '127.0.0.1', port: (app.address() as net.AddressInfo).port, agent: false }, (r) => {
              let text = '';
              r.on('data', (c: Buffer) => {
                text += c.toString();
              });
              r.on('end', () => {
                app.close();
                resolve(text);
              });
            })
            .on('error', (e: NodeJS.ErrnoException) => {
              app.close();
              resolve(`error ${e.code}`);
            });
        });
      });
      t.equal(read, 'abc', `Node reads ${JSON.stringify(ext)}`);
    }
  },
);
