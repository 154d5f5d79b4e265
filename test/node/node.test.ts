import * as dgram from 'node:dgram';
import * as net from 'node:net';
import t from 'tap';
import { listenTcp, tagServer, tcpRequest, udpClient, udpTagServer } from '../forward/fixtures/net.js';
import { freePort, refusingPort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { startNode } from './fixtures/node.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('overlapping creates each get their own int_port', async (t) => {
  const n = await startNode(t, { size: 8 });
  // Started in one turn of the event loop: each has chosen before any has finished.
  const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => n.node.createService(`tcp-${i}`)));
  const intPorts = answers.map((a) => a.int_port).sort();
  t.same(intPorts, [4100, 4101, 4102, 4103, 4104], 'five creates at once: five int_ports');
});

t.test(
  'POST /v1/services: credentials in the seed shape, a free port of the range, int_port from 4100',
  async (t) => {
    const n = await startNode(t);
    const first = await n.call('POST', '/v1/services', { name: 'my-port' });
    t.equal(first.status, 201);
    t.same(Object.keys(first.json), ['hostname', 'host', 'port', 'name', 'node_id', 'int_port']);
    t.match(first.json, {
      hostname: 'node.internal',
      host: '127.0.0.1',
      node_id: 'harbor_node_1',
      int_port: 4100,
    });
    t.match(first.json.name, UUID);
    t.ok(first.json.port >= n.range.first && first.json.port <= n.range.last);
    const second = await n.call('POST', '/v1/services', { name: 'udp-other' });
    t.equal(second.json.int_port, 4101);
    t.not(second.json.port, first.json.port);
    const explicit = await n.call('POST', '/v1/services', { name: 'tcp-x', int_port: 5000 });
    t.equal(explicit.json.int_port, 5000);
    const view = await n.call('GET', `/v1/services/${second.json.name}`);
    t.match(view.json, {
      service: 'udp-other',
      protocol: 'udp',
      listening: true,
      credentials: second.json,
      instances: [],
    });
    const list = await n.call('GET', '/v1/services');
    t.equal(list.json.services.length, 3);
  },
);

t.test('ext_hostname and ext_host appear when configured', async (t) => {
  const n = await startNode(t, { extHostname: 'ports.example.com' });
  const created = await n.call('POST', '/v1/services', { name: 'my-port' });
  t.same(Object.keys(created.json), [
    'hostname',
    'host',
    'port',
    'name',
    'node_id',
    'int_port',
    'ext_hostname',
    'ext_host',
  ]);
  t.equal(created.json.ext_hostname, 'ports.example.com');
  t.equal(created.json.ext_host, '');
});

t.test('TCP round-robin: 30 connections over 3 instances give 10 each', async (t) => {
  const n = await startNode(t);
  const servers = await Promise.all(['a', 'b', 'c'].map((tag) => tagServer(t, tag)));
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-rr' });
  for (const [i, s] of servers.entries()) {
    t.equal(
      (await n.call('PUT', `/v1/services/${creds.name}/instances/i${i}`, { host: '127.0.0.1', port: s.port }))
        .status,
      201,
    );
  }
  const counts: Record<string, number> = {};
  for (let i = 0; i < 30; i++) {
    const tag = await tcpRequest(creds.port);
    counts[tag] = (counts[tag] ?? 0) + 1;
  }
  t.same(counts, { a: 10, b: 10, c: 10 });
});

t.test('one instance down: the others take every connection and none fails', async (t) => {
  const n = await startNode(t);
  const servers = await Promise.all(['a', 'c'].map((tag) => tagServer(t, tag)));
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-down' });
  const ports = [servers[0]!.port, await refusingPort(), servers[1]!.port];
  for (const [i, port] of ports.entries()) {
    await n.call('PUT', `/v1/services/${creds.name}/instances/i${i}`, { host: '127.0.0.1', port });
  }
  const counts: Record<string, number> = {};
  for (let i = 0; i < 30; i++) {
    const tag = await tcpRequest(creds.port);
    counts[tag] = (counts[tag] ?? 0) + 1;
  }
  t.equal((counts.a ?? 0) + (counts.c ?? 0), 30, 'every connection answered');
  t.ok((counts.a ?? 0) > 0 && (counts.c ?? 0) > 0, 'both live instances serve');
  const view = await n.call('GET', `/v1/services/${creds.name}`);
  t.equal(view.json.counters.tcp.connectionsFailed, 0);
  t.equal(view.json.instances.find((i: { id: string }) => i.id === 'i1').state, 'down');
});

t.test('no instance at all: a connection is closed at once', async (t) => {
  const n = await startNode(t);
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-empty' });
  t.match(await tcpRequest(creds.port, 'hi').catch((e: NodeJS.ErrnoException) => e.code), /^(|ECONNRESET)$/);
});

t.test('UDP: the primary gets every datagram; remove it and the next one does', async (t) => {
  const n = await startNode(t);
  const [a, b] = await Promise.all([udpTagServer(t, 'a'), udpTagServer(t, 'b')]);
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-game' });
  await n.call('PUT', `/v1/services/${creds.name}/instances/first`, { host: '127.0.0.1', port: a.port });
  await n.call('PUT', `/v1/services/${creds.name}/instances/second`, { host: '127.0.0.1', port: b.port });
  const client = await udpClient(t);
  for (let i = 0; i < 10; i++) t.equal(await client.ask(creds.port, `m${i}`), `a:m${i}`);
  t.equal(b.received, 0, 'the queued instance got nothing');
  const roles = async () =>
    (await n.call('GET', `/v1/services/${creds.name}`)).json.instances.map(
      (i: { id: string; udp_role: string }) => `${i.id}:${i.udp_role}`,
    );
  t.same(await roles(), ['first:primary', 'second:queued'], 'the view says which is the primary');
  t.equal((await n.call('DELETE', `/v1/services/${creds.name}/instances/first`)).status, 204);
  t.same(await roles(), ['second:primary']);
  for (let i = 0; i < 5; i++) t.equal(await client.ask(creds.port, `n${i}`), `b:n${i}`);
  t.equal(a.received, 10);
});

t.test('UDP: replies reach the right one of several clients; idle sessions expire', async (t) => {
  const n = await startNode(t, { udpIdleTimeoutMs: 200 });
  const app = await udpTagServer(t, 'app');
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-chat' });
  await n.call('PUT', `/v1/services/${creds.name}/instances/only`, { host: '127.0.0.1', port: app.port });
  const clients = await Promise.all([0, 1, 2, 3].map(() => udpClient(t)));
  const replies = await Promise.all(clients.map((c, i) => c.ask(creds.port, `from-${i}`)));
  t.same(
    replies,
    [0, 1, 2, 3].map((i) => `app:from-${i}`),
  );
  const sessions = async () =>
    (await n.call('GET', `/v1/services/${creds.name}`)).json.counters.udp.sessionsOpen;
  t.equal(await sessions(), 4);
  await waitFor(async () => (await sessions()) === 0, 'idle UDP sessions to expire');
  t.equal(await clients[0]!.ask(creds.port, 'again'), 'app:again', 'a new session opens after expiry');
});

t.test('TTL: an instance not refreshed is dropped; one without a TTL stays', async (t) => {
  const n = await startNode(t);
  const app = await tagServer(t, 'app');
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-ttl' });
  t.equal(
    (
      await n.call('PUT', `/v1/services/${creds.name}/instances/short`, {
        host: '127.0.0.1',
        port: app.port,
        ttl: 1,
      })
    ).status,
    201,
  );
  t.equal(
    (
      await n.call('PUT', `/v1/services/${creds.name}/instances/short`, {
        host: '127.0.0.1',
        port: app.port,
        ttl: 1,
      })
    ).status,
    200,
    'a refresh answers 200',
  );
  await n.call('PUT', `/v1/services/${creds.name}/instances/forever`, { host: '127.0.0.1', port: app.port });
  const ids = async () =>
    (await n.call('GET', `/v1/services/${creds.name}`)).json.instances.map((i: { id: string }) => i.id);
  t.same(await ids(), ['short', 'forever']);
  await waitFor(async () => (await ids()).length === 1, 'the TTL to run out');
  t.same(await ids(), ['forever']);
});

t.test(
  'names are unique: a second create is a 409 naming the first; a service is found by name too',
  async (t) => {
    const n = await startNode(t, { size: 4 });
    const app = await tagServer(t, 'app');
    const first = await n.call('POST', '/v1/services', { name: 'tcp-mine' });
    t.equal(first.status, 201);
    const twins = await Promise.all([1, 2].map(() => n.call('POST', '/v1/services', { name: 'tcp-mine' })));
    for (const twin of twins) {
      t.equal(twin.status, 409);
      t.same(twin.json, {
        error: `a service named tcp-mine exists already (id ${first.json.name})`,
        code: 'E_SERVICE_EXISTS',
      });
    }
    const overlapping = await Promise.all(
      [1, 2, 3].map(() => n.call('POST', '/v1/services', { name: 'tcp-race' })),
    );
    t.same(overlapping.map((a) => a.status).sort(), [201, 409, 409], 'three at once: one made, two refused');
    t.equal(n.node.list().length, 2, 'no twin made');

    const byName = await n.call('GET', '/v1/services/tcp-mine');
    t.equal(byName.status, 200);
    t.same(byName.json.credentials, first.json, 'GET by name');
    const put = await n.call('PUT', '/v1/services/tcp-mine/instances/i1', {
      host: '127.0.0.1',
      port: app.port,
    });
    t.equal(put.status, 201, 'PUT an instance by name');
    t.equal(await tcpRequest(first.json.port), 'app');
    t.equal((await n.call('DELETE', '/v1/services/tcp-mine/instances/i1')).status, 204);
    t.equal((await n.call('DELETE', '/v1/services/tcp-mine')).status, 204, 'DELETE by name');
    t.equal((await n.call('GET', `/v1/services/${first.json.name}`)).status, 404);
    t.equal(
      (await n.call('POST', '/v1/services', { name: 'tcp-mine' })).status,
      201,
      'the name is free again',
    );
  },
);

t.test('DELETE /v1/services/{id}: 204, the port closes and returns to the pool', async (t) => {
  const n = await startNode(t, { size: 1 });
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-gone' });
  t.equal((await n.call('POST', '/v1/services', { name: 'tcp-more' })).status, 503);
  t.equal((await n.call('DELETE', `/v1/services/${creds.name}`)).status, 204);
  await t.rejects(tcpRequest(creds.port), { code: 'ECONNREFUSED' });
  t.equal((await n.call('GET', `/v1/services/${creds.name}`)).status, 404);
  const again = await n.call('POST', '/v1/services', { name: 'tcp-more' });
  t.equal(again.status, 201);
  t.equal(again.json.port, creds.port);
});

t.test('bad input: one-line JSON errors with 400, 404, 405, 503', async (t) => {
  const n = await startNode(t, { size: 1 });
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-a' });
  const svc = `/v1/services/${creds.name}`;
  const cases: [string, string, unknown, number, RegExp][] = [
    ['POST', '/v1/services', '{"name": ', 400, /not valid JSON/],
    ['POST', '/v1/services', '[1]', 400, /must be a JSON object/],
    ['POST', '/v1/services', { name: 'x', color: 'red' }, 400, /unknown field "color"/],
    ['POST', '/v1/services', { name: '' }, 400, /"name" must be/],
    ['POST', '/v1/services', { name: 'x', int_port: 70000 }, 400, /"int_port" must be an integer 1-65535/],
    ['POST', '/v1/services', { name: 'x', int_port: '4100' }, 400, /"int_port"/],
    ['POST', '/v1/services', { name: 'no-room' }, 503, /no free port/],
    ['PUT', `${svc}/instances/i1`, { host: '127.0.0.1' }, 400, /"port" must be/],
    ['PUT', `${svc}/instances/i1`, { host: '127.0.0.1', port: 80, ttl: 0 }, 400, /"ttl" must be/],
    ['PUT', `${svc}/instances/i1`, { host: 'bad host!', port: 80 }, 400, /"host" must be/],
    ['PUT', `${svc}/instances/i1`, { host: '127.0.0.1', port: 80, weight: 2 }, 400, /unknown field "weight"/],
    ['PUT', `${svc}/instances/bad%20id`, { host: '127.0.0.1', port: 80 }, 400, /instance id/],
    [
      'PUT',
      '/v1/services/nope/instances/i1',
      { host: '127.0.0.1', port: 80 },
      404,
      /no service with id or name nope/,
    ],
    ['DELETE', `${svc}/instances/never`, undefined, 404, /has no instance never/],
    ['DELETE', '/v1/services/nope', undefined, 404, /no service with id or name nope/],
    ['GET', '/v2/anything', undefined, 404, /no such path/],
    // A target `new URL` would read as protocol-relative with a bad host (the soak's fuzz found a 500).
    ['POST', '//servicesv1%C3%85Upgrade:%20websocket%0D%0A/services', { name: 'x' }, 404, /no such path/],
    ['GET', '//%0D%0A', undefined, 404, /no such path/],
    ['PATCH', svc, undefined, 405, /not allowed/],
  ];
  for (const [method, path, body, status, message] of cases) {
    const r = await n.call(method, path, body);
    t.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}`);
    t.match(r.json?.error, message);
    t.match(r.json?.code, /^E_/);
    t.equal(r.text.trim().split('\n').length, 1, 'one line');
  }
  t.same((await n.call('GET', svc)).json.instances, [], 'nothing registered by the bad requests');
});

t.test('token: missing or wrong is 401, the right one passes', async (t) => {
  const n = await startNode(t, { token: 's3cret' });
  const missing = await n.call('GET', '/v1/services', undefined, { authorization: '' });
  t.equal(missing.status, 401);
  t.match(missing.json, { code: 'E_API_AUTH', error: /missing bearer token/ });
  const wrong = await n.call('POST', '/v1/services', { name: 'x' }, { authorization: 'Bearer guess' });
  t.equal(wrong.status, 401);
  t.match(wrong.json, { code: 'E_API_AUTH', error: /wrong bearer token/ });
  t.equal((await n.call('GET', '/v1/services')).json.services.length, 0, 'the refused POST created nothing');
  t.equal((await n.call('POST', '/v1/services', { name: 'x' })).status, 201);
});

t.test(
  'UDP: a primary that answers "port unreachable" is marked down and the next one takes over',
  async (t) => {
    const n = await startNode(t);
    const live = await udpTagServer(t, 'live');
    const gone = await udpTagServer(t, 'gone');
    const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-failover' });
    await n.call('PUT', `/v1/services/${creds.name}/instances/first`, { host: '127.0.0.1', port: gone.port });
    await n.call('PUT', `/v1/services/${creds.name}/instances/second`, {
      host: '127.0.0.1',
      port: live.port,
    });
    const client = await udpClient(t);
    t.equal(await client.ask(creds.port, 'a'), 'gone:a', 'the primary answers while it lives');
    gone.socket.close();
    // The next datagram meets ICMP port unreachable; the ones after go to the queued instance.
    await waitFor(
      async () => (await client.ask(creds.port, 'b', 300).catch(() => '')) === 'live:b',
      'the failover',
    );
    const view = (await n.call('GET', `/v1/services/${creds.name}`)).json;
    t.equal(view.instances[0].state, 'down');
    t.ok(view.counters.udp.upstreamErrors >= 1);
  },
);

/** A node whose one TCP instance refused a client and is marked down; `back()` makes it answer. */
async function downInstance(t: Parameters<typeof startNode>[0], retryMs: number) {
  const n = await startNode(t, { downMs: 60_000, retryMs });
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-down' });
  const port = await freePort(); // listened on later by back()
  await n.call('PUT', `/v1/services/${creds.name}/instances/a`, { host: '127.0.0.1', port });
  await tcpRequest(creds.port).catch(() => '');
  const state = async () => (await n.call('GET', `/v1/services/${creds.name}`)).json.instances[0].state;
  const back = async () => {
    const server = net.createServer((s) => s.end('back'));
    await listenTcp(server, port);
    t.teardown(() => server.close());
  };
  return { servicePort: creds.port as number, state, back };
}

t.test('active checks: an instance down after a refusal is back as soon as it answers', async (t) => {
  // Down time one minute: only the background check can bring it back within the test.
  const d = await downInstance(t, 100);
  t.equal(await d.state(), 'down', 'refused: down');
  await d.back();
  await waitFor(async () => (await d.state()) === 'up', 'the check to see it answer');
  t.equal(await tcpRequest(d.servicePort), 'back');
});

t.test('every instance down: a new connection still tries them (panic)', async (t) => {
  // No check runs within the test (retry every minute), so only the panic path can serve.
  const d = await downInstance(t, 60_000);
  t.equal(await d.state(), 'down');
  await d.back();
  t.equal(await tcpRequest(d.servicePort), 'back', 'served by the instance still marked down');
  t.equal(await d.state(), 'down', 'it was not marked up: the panic path served it');
});

t.test('opt-in UDP check: a silent primary (no ICMP) is taken out, and back when it answers', async (t) => {
  const n = await startNode(t, { downMs: 60_000, retryMs: 100 });
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-game' });
  // Two apps that answer the check ("ping") and every datagram; `a` can go silent while its
  // socket stays open, as a blackholed host does: no ICMP, only silence.
  let aSilent = false;
  const app = async (tag: string, silent: () => boolean) => {
    const socket = dgram.createSocket('udp4');
    t.teardown(() => socket.close());
    socket.on('message', (m, r) => {
      if (!silent()) socket.send(`${tag}:${m}`, r.port, r.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    return socket.address().port;
  };
  const aPort = await app('a', () => aSilent);
  const bPort = await app('b', () => false);
  for (const [id, port] of [
    ['a', aPort],
    ['b', bPort],
  ] as const) {
    const put = await n.call('PUT', `/v1/services/${creds.name}/instances/${id}`, {
      host: '127.0.0.1',
      port,
      udp_check: 'ping',
    });
    t.equal(put.json.udp_check, 'ping', `${id} registered with its check`);
  }
  const ask = async (text: string) => (await udpClient(t)).ask(creds.port, text, 500).catch(() => '');
  t.equal(await ask('one'), 'a:one', 'a is the primary');
  aSilent = true;
  const state = async (id: string) =>
    (await n.call('GET', `/v1/services/${creds.name}`)).json.instances.find(
      (i: { id: string }) => i.id === id,
    ).state;
  await waitFor(async () => (await state('a')) === 'down', 'the check to take the silent primary out');
  t.equal(await ask('two'), 'b:two', 'b takes over');
  aSilent = false;
  await waitFor(async () => (await state('a')) === 'up', 'a back once it answers its check');
  await waitFor(async () => (await ask('three')) === 'a:three', 'a is the primary again');
  t.equal(
    (
      await n.call('PUT', `/v1/services/${creds.name}/instances/c`, {
        host: '127.0.0.1',
        port: 9,
        udp_check: 'hex:zz',
      })
    ).status,
    400,
    'a udp_check that is not hex after hex: is refused',
  );
});

t.test('--udp-sessions-per-source: one address past its share evicts its own oldest session', async (t) => {
  const n = await startNode(t, { udpSessionsPerSource: 2 });
  const app = await udpTagServer(t, 'app');
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-share' });
  await n.call('PUT', `/v1/services/${creds.name}/instances/i`, { host: '127.0.0.1', port: app.port });
  const clients = await Promise.all([1, 2, 3].map(() => udpClient(t)));
  for (const [i, client] of clients.entries()) t.equal(await client.ask(creds.port, `m${i}`), `app:m${i}`);
  const udp = (await n.call('GET', `/v1/services/${creds.name}`)).json.counters.udp;
  t.equal(udp.sessionsEvicted, 1, 'the third session from 127.0.0.1 made room');
  t.equal(udp.sessionsOpen, 2);
});
