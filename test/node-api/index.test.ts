// Requests to a node's API over real loopback sockets: the JSON body, its length
// and the bearer token as sent; the answer read whole; a node that says nothing
// is given up on (ETIMEDOUT); one that is not there is ECONNREFUSED.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import t from 'tap';
import { nodeApiRequest } from '../../src/node-api/index.js';
import { refusingPort } from '../helpers/net.js';

t.test('a PUT with a JSON body and a token; the answer whole', async (t) => {
  let seen: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: string } = {};
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      seen = { method: req.method, url: req.url, headers: req.headers, body };
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: 'é'.repeat(40_000) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };
  const answer = await nodeApiRequest(
    'PUT',
    `http://127.0.0.1:${port}/v1/x`,
    { host: 'ä', port: 1 },
    's3cret',
    5000,
  );
  t.equal(answer.status, 201);
  t.equal(JSON.parse(answer.text).ok.length, 40_000, 'a long answer in several reads, UTF-8 whole');
  t.match(seen, {
    method: 'PUT',
    url: '/v1/x',
    headers: { authorization: 'Bearer s3cret', 'content-type': 'application/json', 'content-length': '22' },
    body: '{"host":"ä","port":1}',
  });
  const bare = await nodeApiRequest('GET', `http://127.0.0.1:${port}/v1/y`, undefined, undefined, 5000);
  t.equal(bare.status, 201);
  t.notOk(seen.headers?.authorization, 'no token, no Authorization');
  t.notOk(seen.headers?.['content-type'], 'no body, no content type');
});

t.test('a node that says nothing: ETIMEDOUT; a node not there: ECONNREFUSED', async (t) => {
  const held: Socket[] = [];
  const silent = createTcpServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  await t.rejects(nodeApiRequest('GET', `http://127.0.0.1:${port}/`, undefined, undefined, 300), {
    code: 'ETIMEDOUT',
  });
  const closed = await refusingPort();
  await t.rejects(nodeApiRequest('GET', `http://127.0.0.1:${closed}/`, undefined, undefined, 5000), {
    code: 'ECONNREFUSED',
  });
});
