// gRPC-Web from HTTP/1.1 clients to a gRPC-only server behind --backend-protocol
// h2c: each call goes to the real gRPC server (@grpc/grpc-js) as an HTTP/2
// stream, and its answer comes back as HTTP/1.1 (chunked, the trailers as the
// body's last frame). Clients: Node's https (keep-alive, chunked and
// Content-Length bodies, HTTP/1.0 by hand) and curl --http1.1.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { AccessLog } from '../../src/https/access-log.js';
import type { HttpsProxyOptions } from '../../src/https/index.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import {
  bigHeldBack,
  bigMessagesWhole,
  frame,
  framesOf,
  startGrpcServer,
  startH2cServer,
  trailersOf,
} from './fixtures/grpc.js';
import {
  connectTls,
  httpsRequest,
  makePair,
  readJsonLines,
  removeDir,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));

const WEB_HEADERS = { 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1' };

async function through(t: Test, overrides: Partial<HttpsProxyOptions> = {}) {
  const backend = await startGrpcServer();
  const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c', ...overrides });
  t.teardown(async () => {
    await fx.proxy.close();
    backend.close();
  });
  return { backend, port: fx.port, stats: fx.stats };
}

/** A gRPC-Web call's method, path and headers, as a client library on Node's https sends them. */
function callOptions(method: string, contentType = 'application/grpc-web'): https.RequestOptions {
  return {
    method: 'POST',
    path: `/harbor.test.Echo/${method}`,
    headers: { 'content-type': contentType, ...WEB_HEADERS },
  };
}

/**
 * One gRPC-Web call over HTTP/1.1: `body` sent with its length, or chunked as pieces (a new
 * connection unless an agent is given; the answer read at once unless `readAfter` is given).
 */
function call(
  port: number,
  method: string,
  contentType: string,
  body: Buffer | Buffer[],
  agent: https.Agent | false = false,
  readAfter?: Promise<unknown>,
) {
  return httpsRequest(port, pair, { ...callOptions(method, contentType), agent, body, readAfter });
}

t.test(
  'binary form over HTTP/1.1: the call reaches the gRPC server; message, then trailers frame',
  async (t) => {
    const { backend, port } = await through(t);
    const answer = await call(port, 'Unary', 'application/grpc-web+proto', frame(Buffer.from('hi')));
    t.equal(answer.status, 200);
    t.equal(answer.headers['content-type'], 'application/grpc-web+proto');
    t.equal(answer.headers['transfer-encoding'], 'chunked', 'the body streams chunked');
    const frames = framesOf(answer.body);
    t.same(frames[0], { flag: 0, data: Buffer.from('echo:hi') }, 'the message as the server sent it');
    t.equal(frames[1]?.flag, 0x80, 'the last frame is the trailers');
    t.match(trailersOf(frames[1]?.data as Buffer), { 'grpc-status': '0', 'x-served-by': 'grpc-test' });
    t.equal(frames.length, 2);
    const seen = backend.seen.metadata[0];
    t.same(seen?.get('x-grpc-web'), ['1'], "the client's own fields reach the server");
    t.same(seen?.get('x-forwarded-proto'), ['https'], 'and the forwarding headers');
    t.match(String(seen?.get('x-request-id')[0]), /^[0-9a-f-]{36}$/, 'and a request id');
  },
);

t.test('a server stream, a trailers-only error, and keep-alive between calls', async (t) => {
  const { port, stats } = await through(t);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const stream = await call(port, 'Count', 'application/grpc-web', frame(Buffer.from('40')), agent);
  const frames = framesOf(stream.body);
  t.equal(frames.length, 41, '40 messages and the trailers');
  t.same(
    frames.slice(0, 40).map((f) => f.data.toString()),
    Array.from({ length: 40 }, (_, i) => String(i)),
    'every message in order',
  );
  const failed = await call(port, 'Fail', 'application/grpc-web+proto', frame(Buffer.from('x')), agent);
  t.equal(failed.status, 200);
  t.equal(failed.headers['grpc-status'], '5', 'NOT_FOUND in the head');
  t.equal(failed.body.length, 0, 'and no body');
  const again = await call(port, 'Unary', 'application/grpc-web', frame(Buffer.from('again')), agent);
  t.same(framesOf(again.body)[0]?.data, Buffer.from('echo:again'));
  t.equal(stats.connectionsTotal, 1, 'three calls on one kept-alive connection');
});

t.test('text form with a chunked body: held, decoded, sent whole; answered in base64', async (t) => {
  const { port } = await through(t);
  const text = Buffer.from(frame(Buffer.from('chunked hello')).toString('base64'));
  const answer = await call(port, 'Unary', 'application/grpc-web-text', [
    text.subarray(0, 3),
    text.subarray(3, 11),
    text.subarray(11),
  ]);
  t.equal(answer.status, 200);
  t.equal(answer.headers['content-type'], 'application/grpc-web-text+proto');
  const frames = framesOf(Buffer.from(answer.body.toString('latin1'), 'base64'));
  t.same(frames[0]?.data, Buffer.from('echo:chunked hello'));
  t.equal(frames[1]?.flag, 0x80);
});

t.test('--max-buffered-body off: a chunked body relayed as it comes, its framing taken off', async (t) => {
  const { port } = await through(t, { limits: { maxBufferedBodyBytes: 0 } });
  const message = frame(Buffer.from('streamed'));
  const answer = await call(port, 'Unary', 'application/grpc-web', [
    message.subarray(0, 4),
    message.subarray(4),
  ]);
  t.equal(answer.status, 200);
  t.same(framesOf(answer.body)[0]?.data, Buffer.from('echo:streamed'));
});

t.test('HTTP/1.0: the answer is whole and the connection closes', async (t) => {
  const { port } = await through(t);
  const socket = await connectTls(port, pair);
  const body = frame(Buffer.from('old'));
  const received: Buffer[] = [];
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (c: Buffer) => received.push(c));
  socket.write(
    `POST /harbor.test.Echo/Unary HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/grpc-web\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  socket.write(body);
  await closed;
  const raw = Buffer.concat(received);
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, split).toString('latin1');
  t.match(head, /^HTTP\/1\.1 200 /, 'answered');
  t.notMatch(head, /transfer-encoding/i, 'not chunked: an HTTP/1.0 client could not read it');
  const frames = framesOf(raw.subarray(split + 4));
  t.same(frames[0]?.data, Buffer.from('echo:old'));
  t.equal(frames[1]?.flag, 0x80);
});

t.test('curl --http1.1, the text form as a browser library sends it', async (t) => {
  const { port } = await through(t);
  // Run beside the proxy (same process): a synchronous spawn would stop it from answering.
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      'curl',
      [
        '-sS',
        '--http1.1',
        '--cacert',
        pair.certFile,
        '--resolve',
        `localhost:${port}:127.0.0.1`,
        '-H',
        'content-type: application/grpc-web-text',
        '-H',
        'x-grpc-web: 1',
        '--data-binary',
        frame(Buffer.from('from curl')).toString('base64'),
        '-D',
        '-',
        `https://localhost:${port}/harbor.test.Echo/Unary`,
      ],
      { encoding: 'latin1', timeout: 30_000 },
      (error, out) => (error ? reject(error) : resolve(out)),
    ),
  );
  const [head, body] = stdout.split('\r\n\r\n');
  t.match(head, /^HTTP\/1\.1 200/);
  t.match(head, /content-type: application\/grpc-web-text\+proto/i);
  const frames = framesOf(Buffer.from(body ?? '', 'base64'));
  t.same(frames[0]?.data, Buffer.from('echo:from curl'));
  t.match(trailersOf(frames[1]?.data as Buffer), { 'grpc-status': '0' });
});

t.test(
  'no gRPC server listening: 503 with its request id; the access log says HTTP/1.1 and grpc_status',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'http1-h2c-log-'));
    const file = join(dir, 'access.log');
    const log = new AccessLog({ format: 'json', file, keepQuery: false });
    const backend = await startGrpcServer();
    const fx = await startProxy(backend.address, { pair, backendProtocol: 'h2c', accessLog: log });
    const down = await startProxy(
      { kind: 'tcp', host: '127.0.0.1', port: await freePort() },
      { pair, backendProtocol: 'h2c', accessLog: log },
    );
    t.teardown(async () => {
      await fx.proxy.close();
      await down.proxy.close();
      backend.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await call(fx.port, 'Unary', 'application/grpc-web+proto', frame(Buffer.from('hi')));
    await call(fx.port, 'Fail', 'application/grpc-web+proto', frame(Buffer.from('x')));
    const refused = await call(down.port, 'Unary', 'application/grpc-web', frame(Buffer.from('hi')));
    t.equal(refused.status, 503, 'nothing listening');
    t.match(String(refused.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'the answer carries its id');
    await log.close();
    const lines = readJsonLines(file);
    t.same(
      lines.map((l) => [l.protocol, l.status, l.grpc_status, l.reason]),
      [
        ['HTTP/1.1', 200, 0, undefined],
        ['HTTP/1.1', 200, 5, undefined],
        ['HTTP/1.1', 503, undefined, 'backend not listening'],
      ],
    );
    t.equal(lines[2]?.request_id, refused.headers['x-request-id'], 'the same id in the line');
    // A request that is not gRPC-Web still goes as HTTP/1.1, which a gRPC-only server refuses.
    const plain = await httpsRequest(fx.port, pair, { path: '/not-grpc' });
    t.equal(plain.status, 502);
  },
);

t.test(
  'text form: a body that is not whole base64 is refused with 400, and the connection serves on',
  async (t) => {
    const { backend, port } = await through(t);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const text = frame(Buffer.from('hi')).toString('base64');
    const cut = await call(port, 'Unary', 'application/grpc-web-text', Buffer.from(text.slice(0, -2)), agent);
    t.equal(cut.status, 400);
    t.equal(backend.seen.metadata.length, 0, 'no cut message reached the server');
    const whole = await call(port, 'Unary', 'application/grpc-web-text', Buffer.from(text), agent);
    t.equal(whole.status, 200, 'the next call is answered');
  },
);

t.test("an answer that is not gRPC passes as it is, its trailers in the chunked body's end", async (t) => {
  const server = await startH2cServer((_request, response) => {
    response.writeHead(404, { 'content-type': 'text/plain', trailer: 'x-checked' });
    response.addTrailers({ 'x-checked': 'yes' });
    response.end('no page');
  });
  const fx = await startProxy(server.address, { pair, backendProtocol: 'h2c' });
  t.teardown(async () => {
    await fx.proxy.close();
    server.close();
  });
  const answer = await httpsRequest(fx.port, pair, {
    method: 'POST',
    path: '/missing',
    headers: { 'content-type': 'application/grpc-web', ...WEB_HEADERS },
    body: frame(Buffer.from('hi')),
  });
  t.equal(answer.status, 404);
  t.equal(answer.headers['content-type'], 'text/plain');
  t.equal(answer.body.toString(), 'no page', 'the body unchanged: no trailers frame');
  t.same(answer.trailers, { 'x-checked': 'yes' }, 'the trailers as HTTP/1.1 trailers');
});

t.test('a client that goes away cancels the call on the server', async (t) => {
  const { backend, port } = await through(t);
  const req = https.request({
    host: '127.0.0.1',
    port,
    ca: pair.cert,
    servername: 'localhost',
    agent: false,
    ...callOptions('Slow'),
  });
  req.on('error', () => {});
  req.end(frame(Buffer.from('wait')));
  await waitFor(() => backend.seen.slowCalls === 1, 'the server has the call');
  req.destroy();
  await waitFor(() => backend.seen.cancelled.includes('slow'), 'the server sees the call cancelled');
  t.pass('cancelled');
});

t.test('a server that does not answer in --backend-timeout: 504', async (t) => {
  const { port } = await through(t, { limits: { backendTimeoutMs: 300 } });
  const answer = await call(port, 'Slow', 'application/grpc-web', frame(Buffer.from('wait')));
  t.equal(answer.status, 504);
});

t.test("3 MiB each way (the request paced by the backend's window): every byte, in order", async (t) => {
  const { port } = await through(t);
  const message = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < message.length; i++) message[i] = (i * 7) & 0xff;
  const answer = (await call(port, 'Unary', 'application/grpc-web', frame(message))).body;
  const frames = framesOf(answer);
  t.equal(frames[0]?.data.length, message.length + 5);
  t.ok(frames[0]?.data.equals(Buffer.concat([Buffer.from('echo:'), message])), 'the message whole');
  t.equal(frames[1]?.flag, 0x80);
});

t.test(
  'a client that stops reading, then reads again: the server is held back meanwhile, and every byte arrives',
  async (t) => {
    const { backend, port } = await through(t, { limits: { idleTimeoutMs: 60_000 } });
    const messages = 64;
    // The answer is not read until the server has been held back: it wrote some of the 64 MiB,
    // then nothing more for half a second. A proxy that kept reading the server while its client
    // did not would let it write all of it (into the proxy's memory).
    const held = bigHeldBack(backend.seen);
    const pending = call(
      port,
      'Big',
      'application/grpc-web',
      frame(Buffer.from(String(messages))),
      false,
      held,
    );
    await held;
    const writtenWhileHeld = backend.seen.big.written;
    t.ok(
      !backend.seen.big.done && writtenWhileHeld < messages / 2,
      `the server was held at ${writtenWhileHeld} of ${messages} MiB`,
    );
    const { status, body } = await pending;
    t.equal(status, 200);
    const frames = framesOf(body);
    t.equal(frames.length, messages + 1, 'every message, then the trailers frame');
    t.ok(bigMessagesWhole(frames, messages), 'each message whole and in order');
    t.match(trailersOf(frames[messages]?.data as Buffer), { 'grpc-status': '0' });
    t.ok(backend.seen.big.done, 'the server wrote the rest once the client read again');
  },
);

t.test(
  'a CORS preflight over HTTP/1.1: answered by the proxy for an allowed origin, else passed on',
  async (t) => {
    const { port } = await through(t, { grpcWebOrigins: ['https://app.example.com'] });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const ask = (origin: string) =>
      httpsRequest(port, pair, {
        agent,
        method: 'OPTIONS',
        path: '/harbor.test.Echo/Unary',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-grpc-web',
        },
      });
    const allowed = await ask('https://app.example.com');
    t.equal(allowed.status, 204);
    t.match(allowed.headers, {
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-methods': 'POST',
      'access-control-allow-headers': 'content-type,x-grpc-web',
      'access-control-max-age': '86400',
      vary: 'Origin',
    });
    t.match(String(allowed.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const other = await ask('https://elsewhere.example.com');
    t.equal(other.status, 502, "another origin's goes on to the server (which cannot answer it)");
    t.notOk(other.headers['access-control-allow-origin']);
  },
);

t.test('a client that stops reading is cut after --idle-timeout, and the call cancelled', async (t) => {
  const { backend, port } = await through(t, { limits: { idleTimeoutMs: 1000 } });
  const socket = await connectTls(port, pair);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  const body = frame(Buffer.from('32'));
  socket.write(
    `POST /harbor.test.Echo/Big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc-web\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  socket.write(body);
  // 32 MiB of answer, never read: the kernel's buffers and the proxy's queue fill, and the proxy waits.
  socket.pause();
  await waitFor(() => backend.seen.cancelled.includes('big'), 'the server sees the call cancelled');
  // What reached this side is read now, up to the proxy's close.
  socket.resume();
  await closed;
  t.pass('the connection was cut');
});
