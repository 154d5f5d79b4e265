// gRPC-Web to a gRPC server behind --backend-protocol h2c: a browser's calls
// (binary and text forms) reach a real gRPC server (@grpc/grpc-js) as gRPC,
// and its answers come back as gRPC-Web, the trailers as the body's last
// frame. The client is Node's HTTP/2 client sending what grpc-web's browser
// library sends, and at the end Chromium itself (a page calling with fetch()).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { AccessLog } from '../../src/https/access-log.js';
import { grpcWebOf } from '../../src/https/grpc-web.js';
import { frame, framesOf, startGrpcServer, startH2cServer, trailersOf } from './fixtures/grpc.js';
import {
  type H2Answer,
  h2Client,
  h2Get,
  h2Request,
  httpsRequest,
  makePair,
  readJsonLines,
  removeDir,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));

/** One gRPC-Web call: `chunks` sent as the body, one write each; the answer read whole. */
async function webCall(
  port: number,
  method: string,
  contentType: string,
  chunks: Buffer[],
  extra: http2.OutgoingHttpHeaders = {},
): Promise<H2Answer> {
  const session = h2Client(port, pair);
  try {
    const answer = await h2Get(
      session,
      {
        ':method': 'POST',
        ':path': `/harbor.test.Echo/${method}`,
        'content-type': contentType,
        'x-grpc-web': '1',
        'x-user-agent': 'grpc-web-javascript/0.1',
        ...extra,
      },
      chunks,
    );
    if (answer.error !== undefined) throw new Error(`the stream was reset: ${answer.error}`);
    return answer;
  } finally {
    session.close();
  }
}

async function webThroughProxy(t: Test, grpcWebOrigins?: string[]) {
  const backend = await startGrpcServer();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c', grpcWebOrigins });
  t.teardown(async () => {
    await fx.proxy.close();
    backend.close();
  });
  return { backend, port: fx.port };
}

t.test('which requests are gRPC-Web, and what the server is told they are', async (t) => {
  const cases: [string | undefined, string | null, boolean][] = [
    ['application/grpc-web', 'application/grpc', false],
    ['application/grpc-web+proto', 'application/grpc+proto', false],
    ['Application/GRPC-Web-Text+json', 'application/grpc+json', true],
    ['application/grpc-web-text; charset=utf-8', 'application/grpc; charset=utf-8', true],
    ['application/grpc', null, false],
    ['application/grpc-webfoo', null, false],
    ['text/plain', null, false],
    [undefined, null, false],
  ];
  for (const [type, told, text] of cases) {
    const web = grpcWebOf(type);
    if (told === null) t.equal(web, null, `${type}: not gRPC-Web`);
    else {
      t.equal(web?.requestHeaders({ 'content-type': type })['content-type'], told, `${type}: ${told}`);
      t.equal(web?.text, text, `${type}: ${text ? 'text' : 'binary'} form`);
    }
  }
});

t.test('binary form: a unary call, its message and then its trailers as the last frame', async (t) => {
  const { backend, port } = await webThroughProxy(t);
  const answer = await webCall(port, 'Unary', 'application/grpc-web+proto', [frame(Buffer.from('hi'))]);
  t.equal(answer.headers[':status'], 200);
  t.equal(answer.headers['content-type'], 'application/grpc-web+proto', 'the content-type says gRPC-Web');
  t.same(answer.trailers, {}, 'no HTTP trailers: a browser could not read them');
  const frames = framesOf(answer.body);
  t.equal(frames.length, 2, 'a message, then the trailers');
  t.same(frames[0], { flag: 0, data: Buffer.from('echo:hi') }, 'the message as the server sent it');
  t.equal(frames[1]?.flag, 0x80, 'the last frame is flagged as trailers');
  t.match(trailersOf(frames[1]?.data as Buffer), { 'grpc-status': '0', 'x-served-by': 'grpc-test' });
  const seen = backend.seen.metadata[0];
  t.same(seen?.get('x-grpc-web'), ['1'], "the server got the call (and the browser's own fields)");
});

t.test('a server stream: every message in order, then the trailers', async (t) => {
  const { port } = await webThroughProxy(t);
  const answer = await webCall(port, 'Count', 'application/grpc-web', [frame(Buffer.from('40'))]);
  t.equal(answer.headers['content-type'], 'application/grpc-web+proto');
  const frames = framesOf(answer.body);
  t.same(
    frames.slice(0, -1).map((f) => f.data.toString()),
    Array.from({ length: 40 }, (_, i) => String(i)),
  );
  t.equal(frames.at(-1)?.flag, 0x80);
  t.equal(trailersOf(frames.at(-1)?.data as Buffer)['grpc-status'], '0');
});

t.test('an error: the status in the response head (a trailers-only answer)', async (t) => {
  const { port } = await webThroughProxy(t);
  const answer = await webCall(port, 'Fail', 'application/grpc-web+proto', [frame(Buffer.from('x'))]);
  t.equal(answer.headers[':status'], 200);
  t.equal(answer.headers['grpc-status'], '5', 'NOT_FOUND');
  t.equal(decodeURIComponent(String(answer.headers['grpc-message'])), 'no such thing');
  t.equal(answer.headers['content-type'], 'application/grpc-web+proto');
  t.equal(answer.body.length, 0, 'no body');
});

t.test('text form: base64 both ways, cut anywhere, a large message whole', async (t) => {
  const { port } = await webThroughProxy(t);
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
  const text = Buffer.from(frame(big).toString('base64'), 'latin1');
  // Pieces of 1,001 characters: the groups of four are cut at every place.
  const chunks: Buffer[] = [];
  for (let at = 0; at < text.length; at += 1001) chunks.push(text.subarray(at, at + 1001));
  const answer = await webCall(port, 'Unary', 'application/grpc-web-text', chunks);
  t.equal(answer.headers['content-type'], 'application/grpc-web-text+proto');
  t.match(answer.body.toString('latin1'), /^[A-Za-z0-9+/]*={0,2}$/, 'the body is base64');
  const frames = framesOf(Buffer.from(answer.body.toString('latin1'), 'base64'));
  t.equal(frames.length, 2);
  t.ok(
    frames[0]?.data.equals(Buffer.concat([Buffer.from('echo:'), big])),
    'the message whole, byte for byte',
  );
  t.equal(trailersOf(frames[1]?.data as Buffer)['grpc-status'], '0');
});

t.test('text form: a body of several padded pieces (one per message)', async (t) => {
  const { port } = await webThroughProxy(t);
  // Messages of 2 and 3 bytes: frames of 7 and 8 bytes, base64 with padding each.
  const pieces = ['12', '345', '67', '890'].map((m) => Buffer.from(frame(Buffer.from(m)).toString('base64')));
  t.ok(
    pieces.every((p) => p.includes('=')),
    'every piece ends in padding',
  );
  const answer = await webCall(port, 'Sum', 'application/grpc-web-text+proto', [Buffer.concat(pieces)]);
  const frames = framesOf(Buffer.from(answer.body.toString('latin1'), 'base64'));
  t.equal(frames[0]?.data.toString(), '1314', 'the server read four messages: 12 + 345 + 67 + 890');
});

t.test('text form: a body that is not whole base64 is refused with 400', async (t) => {
  const { port } = await webThroughProxy(t);
  const text = frame(Buffer.from('hi')).toString('base64');
  const answer = await webCall(port, 'Unary', 'application/grpc-web-text', [Buffer.from(text.slice(0, -2))]);
  t.equal(answer.headers[':status'], 400);
});

t.test('an answer that is not gRPC (a page of a server that is not all gRPC) passes as it is', async (t) => {
  const server = await startH2cServer((_request, response) => {
    response.writeHead(404, { 'content-type': 'text/plain' });
    response.end('no page');
  });
  const fx = await startProxy(server.address, { pair, backendProtocol: 'h2c' });
  t.teardown(async () => {
    await fx.proxy.close();
    server.close();
  });
  const text = Buffer.from(frame(Buffer.from('hi')).toString('base64'));
  const answer = await webCall(fx.port, 'Unary', 'application/grpc-web-text', [text]);
  t.equal(answer.headers[':status'], 404);
  t.equal(answer.headers['content-type'], 'text/plain');
  t.equal(answer.body.toString(), 'no page', 'the body unchanged: no base64, no trailers frame');
});

t.test("the access log: a gRPC call's line says its grpc-status; other requests' lines none", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-web-log-'));
  const file = join(dir, 'access.log');
  const log = new AccessLog({ format: 'json', file, keepQuery: false });
  const backend = await startGrpcServer();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c', accessLog: log });
  t.teardown(async () => {
    await fx.proxy.close();
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await webCall(fx.port, 'Unary', 'application/grpc-web+proto', [frame(Buffer.from('hi'))]);
  await webCall(fx.port, 'Fail', 'application/grpc-web+proto', [frame(Buffer.from('x'))]);
  await httpsRequest(fx.port, pair, { path: '/over-http1' });
  await log.close();
  const lines = readJsonLines(file);
  t.same(
    lines.map((l) => [l.path, l.status, l.grpc_status]),
    [
      ['/harbor.test.Echo/Unary', 200, 0],
      ['/harbor.test.Echo/Fail', 200, 5],
      ['/over-http1', 502, undefined],
    ],
    'OK in its trailers, NOT_FOUND in a trailers-only head; none for HTTP/1.1',
  );
});

/** A CORS preflight for a gRPC-Web call from a page of `origin`: the answer's head. */
function preflight(port: number, origin: string): Promise<http2.IncomingHttpHeaders> {
  return h2Request(port, pair, {
    ':method': 'OPTIONS',
    ':path': '/harbor.test.Echo/Unary',
    origin,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent',
  });
}

t.test(
  '--grpc-web-origins: preflights answered by the proxy, answers marked, for those origins only',
  async (t) => {
    const { backend, port } = await webThroughProxy(t, ['https://app.example']);
    const allowed = await preflight(port, 'https://app.example');
    t.match(
      allowed,
      {
        ':status': 204,
        'access-control-allow-origin': 'https://app.example',
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': 'content-type,x-grpc-web,x-user-agent',
        'access-control-max-age': '86400',
        vary: 'Origin',
        'x-request-id': /^[0-9a-f-]{36}$/,
      },
      'an allowed origin: the proxy answers',
    );
    const other = await preflight(port, 'https://elsewhere.example');
    t.not(
      other[':status'],
      204,
      'another origin: the preflight goes on to the server, which cannot answer it',
    );
    t.equal(other['access-control-allow-origin'], undefined);

    const call = (origin?: string) =>
      webCall(
        port,
        'Unary',
        'application/grpc-web+proto',
        [frame(Buffer.from('hi'))],
        origin === undefined ? {} : { origin },
      );
    const marked = await call('https://app.example');
    t.match(marked.headers, {
      ':status': 200,
      'access-control-allow-origin': 'https://app.example',
      'access-control-expose-headers': 'grpc-status, grpc-message, grpc-status-details-bin',
      vary: 'Origin',
    });
    t.equal(framesOf(marked.body)[0]?.data.toString(), 'echo:hi', 'the call is served');
    for (const origin of ['https://elsewhere.example', undefined]) {
      const plain = await call(origin);
      t.equal(
        plain.headers['access-control-allow-origin'],
        undefined,
        `${origin ?? 'no Origin'}: not marked`,
      );
    }
    t.equal(backend.seen.metadata.length, 3, 'the server saw the three calls, and no preflight');
  },
);

t.test('--grpc-web-origins *: every origin', async (t) => {
  const { port } = await webThroughProxy(t, ['*']);
  const answer = await preflight(port, 'http://127.0.0.1:9');
  t.equal(answer[':status'], 204);
  t.equal(answer['access-control-allow-origin'], '*');
  t.equal(answer.vary, undefined, 'the same answer for every origin');
});

const CHROMIUM = ['chromium', 'chromium-browser']
  .map((name) => spawnSync('which', [name], { encoding: 'utf8' }).stdout.trim())
  .find(Boolean);

/**
 * Chromium on a page of `pageOrigin` (served by the browser itself: nothing else is contacted)
 * making the page's gRPC-Web calls to the proxy on `port`.
 */
async function callsFromChromium(t: Test, port: number, pageOrigin: string, http1 = false) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Local Network Access: a page the browser serves itself counts as a public site's, whose
    // calls to a loopback address would wait for the user's permission. A real page and the
    // sidecar it calls are both public; the tests' are both on loopback.
    // --disable-http2: a browser that reaches the proxy over HTTP/1.1 (as behind an HTTP/1.1 hop).
    args: [
      '--no-sandbox',
      '--disable-features=LocalNetworkAccessChecks',
      ...(http1 ? ['--disable-http2'] : []),
    ],
  });
  t.teardown(() => browser.close());
  // The certificate is the test's own: the browser is told to take it.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.route(`${pageOrigin}/app.html`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>app</title>' }),
  );
  await page.goto(`${pageOrigin}/app.html`);
  // With a route in place Playwright answers CORS preflights itself: the calls must meet the proxy's.
  await page.unrouteAll();
  return (await page.evaluate(inThePage(`https://localhost:${port}`))) as {
    binary: unknown;
    text: unknown;
    protocols: string[];
  };
}

/** What both calls of inThePage() give when served. */
const SERVED = {
  binary: {
    status: 200,
    type: 'application/grpc-web+proto',
    frames: [
      { flag: 0, text: 'echo:from a browser' },
      { flag: 0x80, text: /grpc-status: 0\r\n/ },
    ],
  },
  text: {
    status: 200,
    type: 'application/grpc-web-text+proto',
    frames: [
      { flag: 0, text: '0' },
      { flag: 0, text: '1' },
      { flag: 0, text: '2' },
      { flag: 0x80, text: /grpc-status: 0\r\n/ },
    ],
  },
};

t.test(
  'from Chromium: both forms over HTTP/2, as a page of the same origin calls them',
  { skip: CHROMIUM === undefined && 'chromium is not installed' },
  async (t) => {
    const { port } = await webThroughProxy(t);
    // The app's page, as the app would serve it (the gRPC server serves no pages): its origin is
    // the proxy's, so the calls are same-origin, as a gRPC-Web app's usually are.
    const results = await callsFromChromium(t, port, `https://localhost:${port}`);
    t.same(results.protocols, ['h2', 'h2'], 'both calls went over HTTP/2');
    t.match(results, SERVED);
  },
);

t.test(
  'from Chromium: a page of another site calls when --grpc-web-origins names it, and cannot when not',
  { skip: CHROMIUM === undefined && 'chromium is not installed' },
  async (t) => {
    // A page on loopback at another origin (the browser serves it itself).
    const pageOrigin = 'http://127.0.0.1:9';
    const allowed = await webThroughProxy(t, [pageOrigin]);
    t.match(
      await callsFromChromium(t, allowed.port, pageOrigin),
      SERVED,
      'allowed: preflight, then the calls',
    );
    const plain = await webThroughProxy(t);
    t.match(
      await callsFromChromium(t, plain.port, pageOrigin),
      { binary: { error: /Failed to fetch/ }, text: { error: /Failed to fetch/ } },
      'without it: the browser refuses, as a gRPC server cannot answer a preflight',
    );
  },
);

t.test(
  'from Chromium over HTTP/1.1: a page of another site, its preflight and both calls',
  { skip: CHROMIUM === undefined && 'chromium is not installed' },
  async (t) => {
    const pageOrigin = 'http://127.0.0.1:9';
    const dir = mkdtempSync(join(tmpdir(), 'grpc-web-h1-'));
    const file = join(dir, 'access.log');
    const log = new AccessLog({ format: 'json', file, keepQuery: false });
    const backend = await startGrpcServer();
    const fx = await startProxy(backend.address, {
      pair,
      backendProtocol: 'h2c',
      grpcWebOrigins: [pageOrigin],
      accessLog: log,
    });
    t.teardown(async () => {
      await fx.proxy.close();
      backend.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const results = await callsFromChromium(t, fx.port, pageOrigin, true);
    t.match(results, SERVED, 'preflight answered, calls carried to the gRPC server');
    await log.close();
    // A cross-origin page cannot read the protocol (no Timing-Allow-Origin): the proxy's log says it.
    const lines = readJsonLines(file);
    t.same(
      lines.map((l) => [l.method, l.protocol, l.status, l.reason ?? l.grpc_status]),
      [
        ['OPTIONS', 'HTTP/1.1', 204, 'CORS preflight (--grpc-web-origins)'],
        ['POST', 'HTTP/1.1', 200, 0],
        ['OPTIONS', 'HTTP/1.1', 204, 'CORS preflight (--grpc-web-origins)'],
        ['POST', 'HTTP/1.1', 200, 0],
      ],
      'each call preflighted, both over HTTP/1.1',
    );
  },
);

/**
 * What the page runs (as text: the test's own functions are compiled with helpers the page lacks):
 * a gRPC-Web call in each form with fetch() to the proxy at `base`, as grpc-web's library makes
 * it (or the error fetch() gave), and the protocol each went over.
 */
const inThePage = (base: string) => `(async () => {
  const base = ${JSON.stringify(base)};
  const frame = (text) => {
    const message = new TextEncoder().encode(text);
    const out = new Uint8Array(5 + message.length);
    new DataView(out.buffer).setUint32(1, message.length);
    out.set(message, 5);
    return out;
  };
  const framesOf = (body) => {
    const frames = [];
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    for (let at = 0; at + 5 <= body.length; ) {
      const length = view.getUint32(at + 1);
      frames.push({ flag: body[at], text: new TextDecoder().decode(body.subarray(at + 5, at + 5 + length)) });
      at += 5 + length;
    }
    return frames;
  };
  const call = async (method, text, message) => {
    const type = text ? 'application/grpc-web-text' : 'application/grpc-web+proto';
    const bytes = frame(message);
    const response = await fetch(base + '/harbor.test.Echo/' + method, {
      method: 'POST',
      headers: { 'content-type': type, accept: type, 'x-grpc-web': '1' },
      body: text ? btoa(String.fromCharCode(...bytes)) : bytes,
    });
    let body = new Uint8Array(await response.arrayBuffer());
    if (text) body = Uint8Array.from(atob(new TextDecoder().decode(body)), (c) => c.charCodeAt(0));
    return { status: response.status, type: response.headers.get('content-type'), frames: framesOf(body) };
  };
  const attempt = (...args) => call(...args).catch((error) => ({ error: String(error) }));
  const binary = await attempt('Unary', false, 'from a browser');
  const text = await attempt('Count', true, '3');
  const protocols = performance
    .getEntriesByType('resource')
    .filter((e) => e.name.includes('/harbor.test.Echo/'))
    .map((e) => e.nextHopProtocol);
  return { binary, text, protocols };
})()`;
