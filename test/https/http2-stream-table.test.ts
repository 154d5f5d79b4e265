// The streams table put inside node:http2's sessions: its Map-like behaviour on
// its own, and, on a real HTTP/2 server on loopback, that this Node lets it in
// (the pin: an upgrade that moves the session's state fails here) and that
// node:http2 routes frames, closes and tears down through it.
import { once } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { installStreamTable, StreamTable } from '../../src/https/http2-stream-table.js';
import { readText } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

t.test('a StreamTable finds, replaces and removes streams by id', async (t) => {
  const table = new StreamTable<string>();
  t.equal(table.size, 0);
  table.set(1, 'a').set(3, 'b').set(5, 'c');
  t.equal(table.size, 3);
  t.equal(table.get(3), 'b');
  t.equal(table.get(7), undefined);
  table.set(3, 'B');
  t.equal(table.size, 3, 'setting an id again replaces its stream');
  t.equal(table.get(3), 'B');
  t.equal(table.delete(1), true);
  t.equal(table.delete(1), false, 'gone already');
  t.equal(table.size, 2);
  t.equal(table.get(5), 'c', 'the last took the removed one’s place and is still found');
  t.equal(table.get(3), 'B');
  t.equal(table.delete(5), true);
  t.equal(table.delete(3), true);
  t.equal(table.size, 0);
});

t.test('forEach visits each stream once, not one removed meanwhile', async (t) => {
  const table = new StreamTable<string>();
  for (let id = 1; id <= 9; id += 2) table.set(id, `s${id}`);
  const seen: string[] = [];
  table.forEach((stream, id) => {
    seen.push(stream);
    table.delete(id);
    // Closing one stream may close another: it is not visited after it went.
    if (id === 1) table.delete(7);
  });
  t.same(seen.sort(), ['s1', 's3', 's5', 's9']);
  t.equal(table.size, 0);
});

/** The table a session holds now (found as installStreamTable finds it). */
function tableOf(session: http2.Http2Session): unknown {
  const key = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  return key === undefined
    ? undefined
    : (session as unknown as Record<symbol, { streams: unknown }>)[key]?.streams;
}

async function h2Server(t: Test): Promise<{ server: http2.Http2Server; port: number; installed: boolean[] }> {
  const server = http2.createServer();
  const installed: boolean[] = [];
  server.on('session', (session) => installed.push(installStreamTable(session)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { server, port: (server.address() as AddressInfo).port, installed };
}

function post(client: http2.ClientHttp2Session, body: string): Promise<string> {
  const request = client.request({ ':method': 'POST', ':path': '/' });
  request.end(body);
  return readText(request);
}

t.test("node:http2 takes the table and routes each stream's frames through it", async (t) => {
  const { server, port, installed } = await h2Server(t);
  // Answers only once three streams are open at once, each with its own body echoed.
  const waiting: Array<() => void> = [];
  let sessionOfStreams: http2.Http2Session | undefined;
  let openAtOnce = 0;
  server.on('stream', (stream) => {
    sessionOfStreams = stream.session;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      body += chunk;
    });
    stream.on('end', () => {
      waiting.push(() => {
        stream.respond({ ':status': 200 });
        stream.end(`echo ${body}`);
      });
      if (waiting.length === 3) {
        openAtOnce = (tableOf(stream.session as http2.Http2Session) as StreamTable<unknown>).size;
        for (const answer of waiting.splice(0)) answer();
      }
    });
  });
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => client.destroy());
  const answers = await Promise.all([post(client, 'one'), post(client, 'two'), post(client, 'three')]);
  t.same(answers, ['echo one', 'echo two', 'echo three'], 'each stream got its own body back');
  t.same(installed, [true], 'this Node lets the table in (if not: see docs/architecture.md)');
  t.ok(tableOf(sessionOfStreams as http2.Http2Session) instanceof StreamTable, 'the session holds it');
  t.equal(openAtOnce, 3, 'the three streams were in it at once');
  await waitFor(
    () => (tableOf(sessionOfStreams as http2.Http2Session) as StreamTable<unknown>).size === 0,
    'the closed streams to leave the table',
  );
  server.removeAllListeners('stream');
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('again');
  });
  t.equal(await post(client, 'x'), 'again', 'the session serves on after its streams closed');
});

t.test('a client that goes away closes every stream the table holds', async (t) => {
  const { server, port, installed } = await h2Server(t);
  const closed: number[] = [];
  let opened = 0;
  server.on('stream', (stream) => {
    opened++;
    stream.on('close', () => closed.push(stream.id as number));
    // Never answered: open until the connection goes.
  });
  const client = http2.connect(`http://127.0.0.1:${port}`);
  for (let i = 0; i < 4; i++) client.request({ ':path': `/${i}` }).on('error', () => {});
  await waitFor(() => opened === 4, 'four streams open on the server');
  client.destroy();
  await waitFor(() => closed.length === 4, 'every server stream to close');
  t.same(installed, [true]);
  t.same(
    closed.sort((a, b) => a - b),
    [1, 3, 5, 7],
  );
});

t.test("a client session takes the table too (the proxy's h2c backend sessions)", async (t) => {
  const { server, port } = await h2Server(t);
  const waiting: Array<() => void> = [];
  server.on('stream', (stream, headers) => {
    waiting.push(() => {
      stream.respond({ ':status': 200 });
      stream.end(`to ${headers[':path']}`);
    });
  });
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => client.destroy());
  t.equal(installStreamTable(client), true, 'this Node lets the table into a client session');
  const table = tableOf(client) as StreamTable<unknown>;
  const get = (path: string) => readText(client.request({ ':path': path }));
  const answers = Promise.all([get('/a'), get('/b'), get('/c')]);
  // Unanswered until all three are open at the server: the client's table holds them then.
  await waitFor(() => waiting.length === 3, 'three streams at the server');
  t.equal(table.size, 3, 'three streams in the table at once');
  for (const answer of waiting.splice(0)) answer();
  t.same(await answers, ['to /a', 'to /b', 'to /c'], 'each response reached its own stream');
  await waitFor(() => table.size === 0, 'the closed streams to leave the table');
  // Streams still open when the session goes are closed through the table.
  const open = [client.request({ ':path': '/x' }), client.request({ ':path': '/y' })];
  const closed = open.map((s) => {
    s.on('error', () => {});
    return once(s, 'close');
  });
  await waitFor(() => table.size === 2, 'two more streams open');
  client.destroy();
  await Promise.all(closed);
  t.equal(table.size, 0, 'a destroyed session closed every stream it held');
});
