// Each rule of docs/headers.md (R1-R16), through a real proxy to a real
// backend, with byte-exact requests on a TLS socket.
import t from 'tap';
import {
  type Echo,
  makeClientPki,
  rawExchange,
  removeDir,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const backend = await startEchoBackend();
const fx = await startProxy(backend.address);
t.teardown(async () => {
  await fx.proxy.close();
  await backend.close();
  removeDir(fx.pair.dir);
});

/** Sends one request and returns the response (read until the proxy closes, or `until`) and the echo. */
async function send(
  head: string,
  body = '',
  until?: string,
): Promise<{ response: string; status: number; echo: Echo }> {
  const response = await rawExchange(
    fx.port,
    fx.pair,
    `${head}\r\n${body}`,
    until === undefined ? {} : { untilIncludes: until },
  );
  const status = Number(response.slice(9, 12));
  const json = response.slice(response.indexOf('\r\n\r\n') + 4);
  let echo = {} as Echo;
  try {
    echo = JSON.parse(json.includes('{') ? json.slice(json.indexOf('{'), json.lastIndexOf('}') + 1) : '{}');
  } catch {}
  return { response, status, echo };
}

t.test('R1: method and target kept, version HTTP/1.1', async (t) => {
  const { echo } = await send('PATCH /a/b?c=d&e=%20 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n');
  t.equal(echo.method, 'PATCH');
  t.equal(echo.url, '/a/b?c=d&e=%20');
  t.equal(echo.httpVersion, '1.1');
});

t.test('R2: Host kept; HTTP/1.0 without Host gets one', async (t) => {
  const a = await send('GET / HTTP/1.1\r\nHost: Shop.Example.com:35048\r\nConnection: close\r\n');
  t.equal(a.echo.headers.host, 'Shop.Example.com:35048');
  const b = await send('GET / HTTP/1.0\r\n');
  t.equal(b.status, 200);
  t.equal(b.echo.headers.host, 'localhost:35048');
});

t.test('R3: hop-by-hop headers removed', async (t) => {
  const { echo } = await send(
    'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n' +
      'TE: gzip\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\nX-Keep: yes\r\n',
  );
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'http2-settings']) {
    t.equal(echo.headers[name], undefined, `${name} removed`);
  }
  t.equal(echo.headers['x-keep'], 'yes');
  const trailers = await send('GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nConnection: close\r\n');
  t.equal(trailers.echo.headers.te, 'trailers', 'TE: trailers is kept');
});

t.test('R4: headers named in Connection removed, framing headers protected', async (t) => {
  const { echo } = await send(
    'POST / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret, Content-Length, Host\r\nX-Secret: s\r\nX-Other: o\r\nContent-Length: 5\r\n',
    'hello',
  );
  t.equal(echo.headers['x-secret'], undefined);
  t.equal(echo.headers['x-other'], 'o');
  t.equal(echo.headers['content-length'], '5');
  t.equal(echo.headers.host, 'h');
  t.equal(echo.bodyLength, 5);
});

t.test('R5: X-Forwarded-For appended', async (t) => {
  const a = await send('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  t.equal(a.echo.headers['x-forwarded-for'], '127.0.0.1');
  const b = await send(
    'GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.1\r\nConnection: close\r\n',
  );
  t.equal(b.echo.headers['x-forwarded-for'], '203.0.113.7, 198.51.100.1, 127.0.0.1');
});

t.test('R6: X-Forwarded-Proto is https, client value replaced', async (t) => {
  const { echo } = await send(
    'GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n',
  );
  t.equal(echo.headers['x-forwarded-proto'], 'https');
  t.equal(echo.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-proto').length, 1);
});

t.test('R1, R2: an absolute target goes in origin form, its authority the host', async (t) => {
  const { echo } = await send(
    'GET http://Shop.Example.com:35048/a?b=c HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n',
  );
  t.equal(echo.url, '/a?b=c');
  t.equal(echo.headers.host, 'Shop.Example.com:35048', "the authority, not the client's Host");
  t.equal(echo.headers['x-forwarded-host'], 'Shop.Example.com:35048');
  t.notOk(echo.rawHeaders.includes('other.example'), 'the Host line is not passed on');
  t.equal((await send('GET https://h.example HTTP/1.1\r\nHost: h\r\nConnection: close\r\n')).echo.url, '/');
  t.equal(
    (await send('GET http://h.example?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n')).echo.url,
    '/?x=1',
  );
  for (const target of ['ftp://h.example/a', 'http://user@h.example/a', 'h.example/a', 'http:///a']) {
    t.equal((await send(`GET ${target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n`)).status, 400, target);
  }
});

t.test('R7: X-Forwarded-Host from Host, client value replaced', async (t) => {
  const { echo } = await send(
    'GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n',
  );
  t.equal(echo.headers['x-forwarded-host'], 'shop.example.com');
});

t.test('R8: X-Forwarded-Port is the external port, else int_port', async (t) => {
  const { echo } = await send('GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: 1\r\nConnection: close\r\n');
  t.equal(echo.headers['x-forwarded-port'], '35048');
  const { service } = await import('./fixtures/helpers.js');
  const noPort = await startProxy(backend.address, { service: service('x-https', null, 4100) });
  t.teardown(() => noPort.proxy.close());
  const r = await rawExchange(
    noPort.port,
    noPort.pair,
    'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
  );
  t.match(r, /"x-forwarded-port":"4100"/);
  removeDir(noPort.pair.dir);
});

t.test(
  'R5-R9 on one connection: the added lines follow each request (Host, forwarding headers)',
  async (t) => {
    // The lines the proxy adds are built once per connection and Host: a request with another
    // Host, or with forwarding headers of its own, must still get its own lines, and the next
    // one the plain ones again.
    const requests = [
      'GET /1 HTTP/1.1\r\nHost: a.example\r\n\r\n',
      'GET /2 HTTP/1.1\r\nHost: b.example\r\n\r\n',
      'GET /3 HTTP/1.1\r\nHost: b.example\r\nX-Forwarded-For: 203.0.113.7\r\nForwarded: for=192.0.2.60\r\n\r\n',
      'GET /4 HTTP/1.1\r\nHost: b.example\r\n\r\n',
      'GET /5 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
    ];
    const response = await rawExchange(fx.port, fx.pair, requests.join(''));
    const echoes = response
      .split(/HTTP\/1\.1 200 [^\r]*\r\n/)
      .slice(1)
      .map((part) => JSON.parse(part.slice(part.indexOf('{'), part.lastIndexOf('}') + 1)) as Echo);
    t.same(
      echoes.map((e) => [
        e.url,
        e.headers['x-forwarded-host'],
        e.headers['x-forwarded-for'],
        e.headers.forwarded,
      ]),
      [
        ['/1', 'a.example', '127.0.0.1', 'for=127.0.0.1;host="a.example";proto=https'],
        ['/2', 'b.example', '127.0.0.1', 'for=127.0.0.1;host="b.example";proto=https'],
        [
          '/3',
          'b.example',
          '203.0.113.7, 127.0.0.1',
          'for=192.0.2.60, for=127.0.0.1;host="b.example";proto=https',
        ],
        ['/4', 'b.example', '127.0.0.1', 'for=127.0.0.1;host="b.example";proto=https'],
        ['/5', 'a.example', '127.0.0.1', 'for=127.0.0.1;host="a.example";proto=https'],
      ],
    );
    const ids = echoes.map((e) => e.headers['x-request-id']);
    t.equal(new Set(ids).size, 5, 'each request its own id');
  },
);

t.test('R9: Forwarded element appended', async (t) => {
  const a = await send('GET / HTTP/1.1\r\nHost: shop:35048\r\nConnection: close\r\n');
  t.equal(a.echo.headers.forwarded, 'for=127.0.0.1;host="shop:35048";proto=https');
  const b = await send('GET / HTTP/1.1\r\nHost: shop\r\nForwarded: for=192.0.2.60\r\nConnection: close\r\n');
  t.equal(b.echo.headers.forwarded, 'for=192.0.2.60, for=127.0.0.1;host="shop";proto=https');
  // IPv6 peers are quoted and bracketed.
  const { connectTls } = await import('./fixtures/helpers.js');
  const socket = await connectTls(fx.port, fx.pair, { host: '::1' });
  const text = await new Promise<string>((resolve) => {
    let out = '';
    socket.on('data', (c: Buffer) => {
      out += c.toString();
    });
    socket.on('close', () => resolve(out));
    socket.write('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  });
  t.match(text, /"forwarded":"for=\\"\[::1\]\\";host=\\"h\\";proto=https"/);
  t.match(text, /"x-forwarded-for":"::1"/);
});

t.test(
  'R10: X-Client-Cert-Subject stripped without client auth, set from the verified cert with it',
  async (t) => {
    const a = await send(
      'GET / HTTP/1.1\r\nHost: h\r\nX-Client-Cert-Subject: CN=admin\r\nConnection: close\r\n',
    );
    t.equal(a.echo.headers['x-client-cert-subject'], undefined);
    const pki = makeClientPki();
    t.teardown(() => removeDir(pki.dir));
    const authed = await startProxy(backend.address, { clientAuth: true, ca: pki.caCert });
    t.teardown(async () => {
      await authed.proxy.close();
      removeDir(authed.pair.dir);
    });
    const { connectTls } = await import('./fixtures/helpers.js');
    const socket = await connectTls(authed.port, authed.pair, { cert: pki.clientCert, key: pki.clientKey });
    const text = await new Promise<string>((resolve) => {
      let out = '';
      socket.on('data', (c: Buffer) => {
        out += c.toString();
      });
      socket.on('close', () => resolve(out));
      socket.write(
        'GET / HTTP/1.1\r\nHost: h\r\nX-Client-Cert-Subject: CN=admin\r\nConnection: close\r\n\r\n',
      );
    });
    t.match(text, /"x-client-cert-subject":"O=Harbor Test,CN=client-one"/);
  },
);

t.test('R11: upgrade requests keep Upgrade and Connection: upgrade', async (t) => {
  // The echo backend answers an upgrade request with a normal 200: the head it saw is what matters.
  const { echo } = await send(
    'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n',
  );
  t.equal(echo.headers.upgrade, 'websocket');
  t.equal(echo.headers.connection, 'upgrade');
});

t.test('R12: other headers pass byte for byte, in order', async (t) => {
  const { echo } = await send(
    'GET / HTTP/1.1\r\nHost: h\r\nX-CaSe: A  b\r\ncookie: a=1; b=2\r\nX-Empty:\r\nConnection: close\r\n',
  );
  t.same(echo.rawHeaders.slice(0, 8), ['Host', 'h', 'X-CaSe', 'A  b', 'cookie', 'a=1; b=2', 'X-Empty', '']);
});

t.test('R16: no request header with an underscore in its name reaches the backend', async (t) => {
  const { echo } = await send(
    'GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nContent_Length: 99\r\nX-Ok: 1\r\nX_Client_Cert_Subject: CN=admin\r\nConnection: close\r\n',
  );
  const names = echo.rawHeaders.filter((_: string, i: number) => i % 2 === 0);
  t.same(
    names.filter((n: string) => n.includes('_')),
    [],
    'every underscore name dropped',
  );
  t.ok(names.includes('X-Ok'), 'the others pass');
  t.equal(echo.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the peer alone');
});

t.test('R13: response hop-by-hop headers removed; clean heads relayed', async (t) => {
  const { response } = await send('GET /close HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  // The backend said Connection: close and so did the client: the client is told once.
  t.equal(response.match(/^connection:/gim)?.length, 1);
  t.match(response, /\r\nConnection: close\r\n/);
  // Node's backend says "Connection: keep-alive" and "Keep-Alive: timeout=...": both are about the backend hop.
  const kept = await send('GET / HTTP/1.1\r\nHost: h\r\n', '', '}');
  t.notMatch(kept.response, /keep-alive/i);
  const ok = await send('GET /status?code=201 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  t.match(ok.response, /^HTTP\/1\.1 201 Created\r\n/);
  t.match(ok.response, /\r\nx-status: 201\r\n/);
});

t.test('R14: client Connection: close ends the client connection, not the pooled backend one', async (t) => {
  const before = backend.server.connections;
  const r1 = await send('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  t.match(r1.response, /\r\nConnection: close\r\n/);
  const r2 = await send('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  t.equal(r2.status, 200);
  void before;
  const counts = await new Promise<number>((resolve) => backend.server.getConnections((_e, n) => resolve(n)));
  t.ok(counts >= 1, 'backend connection still open after the client closed');
  const kept = await send('GET /close HTTP/1.1\r\nHost: h\r\n', '', '}');
  t.notMatch(kept.response, /connection:/i, "the backend's close is not the client's");
  // HTTP/1.0 keep-alive holds when the body has a length (a chunked one is decoded and the connection closed).
  const ten = await send('GET /bytes?n=10 HTTP/1.0\r\nConnection: keep-alive\r\n', '', 'aaaaaaaaaa');
  t.match(ten.response, /\r\nConnection: keep-alive\r\n/);
});

t.test('R15: chunked bodies and trailers relayed; HTTP/1.0 gets them decoded', async (t) => {
  const r = await send('GET /chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n');
  t.match(r.response, /transfer-encoding: chunked/i);
  t.match(r.response, /\r\n0\r\nx-checksum: abc123\r\n\r\n$/);
  const old = await send('GET /chunked HTTP/1.0\r\n');
  t.notMatch(old.response, /transfer-encoding/i);
  t.match(old.response, /\r\n\r\nhello chunked world$/);
  const up = await send(
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n',
    '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 1\r\n\r\n',
  );
  t.equal(up.echo.bodyLength, 11);
  t.same(up.echo.trailers, { 'x-sum': '1' });
});
