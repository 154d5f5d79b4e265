// Three harbor-nodes (127.0.0.21-.23) sharing one real redis-server: any node
// serves any service, with the same credentials, the same UDP primary and
// queue, and the same expiries; a node killed, Redis stopped, restarted with
// its data or empty: nothing acknowledged is lost and forwarding goes on; two
// nodes given one member name are told of it.
import type { Socket } from 'node:net';
import * as net from 'node:net';
import t from 'tap';
import { echoServer, tagServer, tcpRequest, udpClient, udpTagServer } from '../forward/fixtures/net.js';
import { HAVE_REDIS, redisCommand, startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { type ClusterNode, startCluster, startClusterNode } from './fixtures.js';

if (!HAVE_REDIS) t.plan(0, 'redis-server is not installed');

const viewOn = async (node: ClusterNode, id: string) => {
  const view = await node.call('GET', `/v1/services/${id}`);
  return view.status === 200 ? view.json : { instances: [] };
};

t.test('created through one node, served by the others within a second, same credentials', async (t) => {
  const redis = await startRedis(t);
  const { nodes } = await startCluster(t, redis.url);
  const started = Date.now();
  const created = await nodes[0]!.call('POST', '/v1/services', { name: 'tcp-app' });
  t.equal(created.status, 201);
  const id = created.json.name as string;
  t.match(created.json, { host: '127.0.0.20', hostname: 'ports.cluster.test', node_id: 'harbor_cluster' });
  let servedAfter = 0;
  await waitFor(async () => {
    for (const node of nodes) {
      const view = await node.call('GET', `/v1/services/${id}`);
      if (view.status !== 200 || view.json.listening !== true) return false;
    }
    servedAfter = Date.now() - started;
    return true;
  }, 'every node listening');
  t.comment(`created to listening on all three nodes: ${servedAfter} ms`);
  for (const node of nodes)
    t.same((await viewOn(node, id)).credentials, created.json, `the same credentials on ${node.host}`);

  // Instances registered through two different nodes; each node round-robins over both.
  const a = await tagServer(t, 'A');
  const b = await tagServer(t, 'B');
  t.equal(
    (await nodes[1]!.call('PUT', `/v1/services/${id}/instances/a`, { host: '127.0.0.1', port: a.port }))
      .status,
    201,
  );
  t.equal(
    (await nodes[2]!.call('PUT', `/v1/services/${id}/instances/b`, { host: '127.0.0.1', port: b.port }))
      .status,
    201,
  );
  t.equal(
    (await nodes[0]!.call('PUT', `/v1/services/${id}/instances/b`, { host: '127.0.0.1', port: b.port }))
      .status,
    200,
    'a registration known to the cluster is a refresh on any node',
  );
  const port = created.json.port as number;
  for (const node of nodes) {
    await waitFor(
      async () => (await viewOn(node, id)).instances.length === 2,
      `both instances on ${node.host}`,
    );
    const answers = [await tcpRequest(port, '', node.host), await tcpRequest(port, '', node.host)];
    t.same(answers.sort(), ['A', 'B'], `${node.host} sends connections to both in turn`);
  }
});

t.test('a port one node cannot bind is shown by every node, and clears everywhere once free', async (t) => {
  const redis = await startRedis(t);
  const { nodes, range } = await startCluster(t, redis.url, { size: 2 });
  // Another process holds both ports of the range on 127.0.0.22 only.
  const blockers = await Promise.all(
    [range.first, range.last].map(
      (port) =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(port, '127.0.0.22', () => resolve(server));
        }),
    ),
  );
  const closeBlockers = () => Promise.all(blockers.map((b) => new Promise((r) => b.close(r))));
  t.teardown(closeBlockers);
  const created = await nodes[0]!.call('POST', '/v1/services', { name: 'tcp-held' });
  t.equal(created.status, 201);
  const id = created.json.name as string;
  const onBlocked = (m: { member: string }) => m.member.endsWith('/127.0.0.22');
  for (const node of nodes) {
    // Each node's view reaches the others within about a second (published after a sync, read back every second).
    await waitFor(async () => {
      const members = (await viewOn(node, id)).nodes ?? [];
      const blocked = members.find(onBlocked);
      return (
        members.length === 3 &&
        members.every((m: { known: boolean }) => m.known) &&
        blocked?.listening === false &&
        /in use/.test(blocked.conflict ?? '')
      );
    }, `${node.host} to show all three members and the conflict on 127.0.0.22`);
    const others = (await viewOn(node, id)).nodes.filter((m: { member: string }) => !onBlocked(m));
    t.ok(
      others.every((m: { listening: boolean }) => m.listening),
      `${node.host}: the conflict on .22, the other two listening`,
    );
  }
  const status = await nodes[2]!.call('GET', '/status');
  t.match(
    status.json.members.find(onBlocked),
    { not_listening: [{ service: 'tcp-held', conflict: /in use/ }] },
    '/status of another node names the service and the conflict',
  );
  await closeBlockers();
  for (const node of nodes) {
    await waitFor(
      async () => (await viewOn(node, id)).nodes?.every((m: { listening: boolean }) => m.listening),
      `${node.host} to show every member listening once the port is free`,
    );
  }
  t.pass('retried on that node, and cleared everywhere');
});

t.test('one name, created at once through three nodes: one service, two 409s naming it', async (t) => {
  const redis = await startRedis(t);
  const { nodes } = await startCluster(t, redis.url);
  const answers = await Promise.all(
    nodes.map((node) => node.call('POST', '/v1/services', { name: 'tcp-once' })),
  );
  const made = answers.filter((a) => a.status === 201);
  t.equal(made.length, 1, 'one create succeeded');
  for (const refused of answers.filter((a) => a.status !== 201)) {
    t.match(refused, {
      status: 409,
      json: { code: 'E_SERVICE_EXISTS', error: new RegExp(made[0]!.json.name) },
    });
  }
  for (const node of nodes) {
    await waitFor(
      async () => (await node.call('GET', '/v1/services/tcp-once')).status === 200,
      `tcp-once by name on ${node.host}`,
    );
  }
  t.pass('found by name on every node');
});

t.test('300 concurrent creates spread over three nodes: no port twice', async (t) => {
  const redis = await startRedis(t);
  const { nodes } = await startCluster(t, redis.url, { size: 400 });
  // 300 creates, 72 in flight at a time (24 per node: well under the API's 64-connection cap,
  // whose shedding of idle keep-alive connections a busy client could otherwise race).
  const answers: { status: number; json: { port: number } }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 72 }, async (_, lane) => {
      const node = nodes[lane % 3]!;
      while (next < 300) {
        const i = next++;
        answers[i] = await node
          .call('POST', '/v1/services', { name: `tcp-race-${i}` })
          .catch((error: Error) => {
            const cause = (error.cause as Error | undefined)?.message;
            throw new Error(
              `create ${i} on ${node.host}: ${error.message} (${cause})\n${node.output().slice(-1500)}`,
            );
          });
      }
    }),
  );
  const statuses = new Map<number, number>();
  for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
  t.same(Object.fromEntries(statuses), { 201: 300 }, 'every create succeeded');
  const ports = answers.map((a) => a.json.port as number);
  t.equal(new Set(ports).size, 300, 'no port twice');
  for (const node of nodes) {
    await waitFor(
      async () => (await node.call('GET', '/v1/services')).json.services.length === 300,
      `300 on ${node.host}`,
    );
  }
  t.equal(
    await redisCommand(redis.port, 'HLEN', 'harbor:ports'),
    ':300\r\n',
    'the store holds 300 port claims',
  );
});

t.test(
  'the same UDP primary and queue everywhere; a node killed; a node restarted serves at once',
  async (t) => {
    const redis = await startRedis(t);
    const { nodes, range } = await startCluster(t, redis.url);
    const created = await nodes[0]!.call('POST', '/v1/services', { name: 'both-game' });
    const { name: id, port } = created.json as { name: string; port: number };
    const apps = await Promise.all(['u1', 'u2', 'u3'].map((tag) => udpTagServer(t, tag)));
    const tcpApp = await tagServer(t, 'T');
    // Registered in turn through different nodes: the store's order is the registration order.
    for (const [i, app] of apps.entries()) {
      const put = await nodes[i]!.call('PUT', `/v1/services/${id}/instances/u${i + 1}`, {
        host: '127.0.0.1',
        port: app.port,
      });
      t.equal(put.status, 201);
    }
    for (const node of nodes) {
      await waitFor(
        async () => (await viewOn(node, id)).instances.length === 3,
        `three instances on ${node.host}`,
      );
      t.same(
        (await viewOn(node, id)).instances.map((i: { id: string }) => i.id),
        ['u1', 'u2', 'u3'],
        `order on ${node.host}`,
      );
    }
    const client = await udpClient(t);
    for (const node of nodes)
      t.equal(await client.ask(port, 'x', 10_000, node.host), 'u1:x', `${node.host}: the primary`);
    // The primary goes: the same successor everywhere.
    t.equal((await nodes[2]!.call('DELETE', `/v1/services/${id}/instances/u1`)).status, 204);
    for (const node of nodes) {
      await waitFor(async () => (await viewOn(node, id)).instances.length === 2, `u1 gone on ${node.host}`);
      t.equal(await client.ask(port, 'y', 10_000, node.host), 'u2:y', `${node.host}: the next in the queue`);
    }

    // One node killed: the others serve on, TCP and UDP.
    await nodes[1]!.call('PUT', `/v1/services/${id}/instances/u1`, { host: '127.0.0.1', port: tcpApp.port });
    nodes[0]!.child.kill('SIGKILL');
    await nodes[0]!.exited;
    for (const node of nodes.slice(1)) {
      t.equal(
        await client.ask(port, 'z', 10_000, node.host),
        'u2:z',
        `${node.host} serves UDP with one node dead`,
      );
      await waitFor(async () => (await tcpRequest(port, '', node.host)) === 'T', `${node.host} serves TCP`);
    }
    // Restarted, it serves from the store as soon as it is ready.
    const again = await startClusterNode(t, redis.url, nodes[0]!.host, range);
    t.equal(await client.ask(port, 'w', 10_000, again.host), 'u2:w', 'the restarted node serves UDP at once');
    t.same((await viewOn(again, id)).credentials, created.json, 'with the same credentials');
  },
);

t.test(
  'Redis stopped mid-traffic, back with its data, back empty: forwarding goes on, nothing is lost',
  async (t) => {
    const redis = await startRedis(t);
    const { nodes } = await startCluster(t, redis.url);
    const created = await nodes[0]!.call('POST', '/v1/services', { name: 'tcp-echo' });
    const { name: id, port } = created.json as { name: string; port: number };
    const echo = await echoServer(t);
    await nodes[0]!.call('PUT', `/v1/services/${id}/instances/e`, { host: '127.0.0.1', port: echo.port });
    for (const node of nodes) {
      await waitFor(
        async () => (await viewOn(node, id)).instances.length === 1,
        `the instance on ${node.host}`,
      );
    }
    const held: Socket = net.connect({ host: nodes[1]!.host, port });
    t.teardown(() => held.destroy());
    // A reset of the held connection fails the test naming where it went, not as an uncaught error.
    let heldError: Error | undefined;
    held.on('error', (error) => {
      heldError = error;
    });
    await new Promise((resolve, reject) => {
      held.once('connect', resolve);
      held.once('error', reject);
    });
    const echoed = (text: string) =>
      new Promise<string>((resolve, reject) => {
        if (heldError !== undefined) {
          reject(new Error(`the held connection to ${nodes[1]!.host}:${port} failed: ${heldError.message}`));
          return;
        }
        held.once('data', (d) => resolve(d.toString()));
        held.once('error', (error) =>
          reject(new Error(`the held connection to ${nodes[1]!.host}:${port} failed: ${error.message}`)),
        );
        held.write(text);
      });
    t.equal(await echoed('before'), 'before');

    await redis.kill();
    await waitFor(
      async () => (await nodes[1]!.call('POST', '/v1/services', { name: 'tcp-refused' })).status === 503,
      'writes refused',
    );
    const refused = await nodes[2]!.call('POST', '/v1/services', { name: 'tcp-refused' });
    t.equal(refused.status, 503);
    t.equal(refused.json.code, 'E_STORE_UNAVAILABLE');
    t.equal(refused.headers.get('retry-after'), '2', 'with Retry-After');
    await waitFor(
      async () => (await nodes[2]!.call('GET', '/v1/services')).headers.get('harbor-store-stale') !== null,
      'a stale read says so',
    );
    const list = await nodes[2]!.call('GET', '/v1/services');
    t.equal(list.status, 200, 'reads answer from the cache');
    t.equal(list.json.store.connected, false);
    t.equal(await echoed('during'), 'during', 'an established connection goes on');
    for (const node of nodes)
      t.equal(await tcpRequest(port, 'new', node.host), 'new', `${node.host}: new connections too`);

    await redis.start();
    const back = Date.now();
    let second: { status: number; json: { name: string; port: number } } | undefined;
    await waitFor(async () => {
      second = await nodes[2]!.call('POST', '/v1/services', { name: 'tcp-after' });
      return second.status === 201;
    }, 'writes again once Redis is back');
    t.comment(`writes again ${Date.now() - back} ms after Redis came back with its data`);

    // Back empty: the nodes put back what they knew.
    await redis.kill();
    await redis.start({ empty: true });
    await waitFor(
      async () => (await redisCommand(redis.port, 'HLEN', 'harbor:services')) === ':2\r\n',
      'both services put back',
    );
    await waitFor(
      async () => (await redisCommand(redis.port, 'HLEN', `harbor:inst:${id}`)) === ':1\r\n',
      'and the instance',
    );
    const expected = JSON.stringify(
      [
        [id, port],
        [second!.json.name, second!.json.port],
      ].sort(),
    );
    for (const node of nodes) {
      const listed = async () => {
        const services = (await node.call('GET', '/v1/services')).json.services as {
          credentials: { name: string; port: number };
        }[];
        return JSON.stringify(services.map((s) => [s.credentials.name, s.credentials.port]).sort());
      };
      await waitFor(async () => (await listed()) === expected, `${node.host}: both services`);
      t.equal(await listed(), expected, `${node.host}: the same services and ports`);
    }
    t.equal(await echoed('after'), 'after', 'the held connection lived through it all');
  },
);

t.test(
  'TTL on the store clock: expires on every node; not during a Redis outage longer than the TTL',
  async (t) => {
    const redis = await startRedis(t);
    const { nodes } = await startCluster(t, redis.url);
    const created = await nodes[0]!.call('POST', '/v1/services', { name: 'tcp-ttl' });
    const id = created.json.name as string;
    await nodes[1]!.call('PUT', `/v1/services/${id}/instances/short`, { host: '127.0.0.1', port: 9, ttl: 3 });
    await nodes[1]!.call('PUT', `/v1/services/${id}/instances/kept`, { host: '127.0.0.1', port: 10, ttl: 4 });
    for (const node of nodes) {
      await waitFor(async () => (await viewOn(node, id)).instances.length === 2, `both on ${node.host}`);
    }
    await redis.kill();
    const down = Date.now();
    // Longer than either TTL: neither may expire anywhere while the store is away.
    // (TTLs of seconds: after the store returns, `short` has what it had left when it went, and
    // a busy machine must still see it before then.)
    await waitFor(async () => Date.now() - down > 4_500, 'an outage longer than the TTLs');
    for (const node of nodes)
      t.equal((await viewOn(node, id)).instances.length, 2, `${node.host} kept both through the outage`);
    await redis.start();
    await waitFor(
      async () => (await nodes[0]!.call('GET', '/v1/services')).json.store.connected === true,
      'synced again',
    );
    t.equal((await viewOn(nodes[0]!, id)).instances.length, 2, 'no mass expiry when the store returns');
    // Refreshes stop for `short`; `kept` is refreshed: only `short` expires, on every node.
    const refresh = setInterval(
      () =>
        void nodes[2]!
          .call('PUT', `/v1/services/${id}/instances/kept`, { host: '127.0.0.1', port: 10, ttl: 4 })
          .catch(() => {}),
      400,
    );
    t.teardown(() => clearInterval(refresh));
    for (const node of nodes) {
      await waitFor(
        async () => (await viewOn(node, id)).instances.map((i: { id: string }) => i.id).join() === 'kept',
        `short expired on ${node.host}`,
      );
    }
    clearInterval(refresh);
    t.pass('an instance whose refreshes stopped expired on every node; the refreshed one stayed');
  },
);

t.test('two nodes given one --member: each warns, naming the other process (W_MEMBER_CLASH)', async (t) => {
  const redis = await startRedis(t);
  const range = await freeRange(8);
  // Before, each overwrote the other's view of ports and instances every second, unseen.
  const [a, b] = await Promise.all(
    ['127.0.0.21', '127.0.0.22'].map((host) =>
      startClusterNode(t, redis.url, host, range, ['--member', 'edge-1']),
    ),
  );
  const clash = (node: ClusterNode) =>
    node.waitLog((l) => l.code === 'W_MEMBER_CLASH', `${node.host} to warn of the clash`);
  const [onA, onB] = await Promise.all([clash(a!), clash(b!)]);
  t.match(onA.msg, /another harbor-node publishes as member edge-1 too .*give every node its own --member/);
  t.match(onA.other, new RegExp(` pid ${b!.child.pid} `), 'a names b');
  t.match(onB.other, new RegExp(` pid ${a!.child.pid} `), 'b names a');
  t.equal(a!.logs().filter((l) => l.code === 'W_MEMBER_CLASH').length, 1, 'told once');
});

t.test('a node restarted under its member name does not take its old self for another', async (t) => {
  const redis = await startRedis(t);
  const range = await freeRange(8);
  const first = await startClusterNode(t, redis.url, '127.0.0.21', range, ['--member', 'edge-1']);
  // Killed: its view stays in the store until its TTL.
  first.child.kill('SIGKILL');
  await first.exited;
  const again = await startClusterNode(t, redis.url, '127.0.0.21', range, ['--member', 'edge-1']);
  // Watched over several publishes (one a second): the first replaces the old view, the next
  // ones its own.
  const started = Date.now();
  await waitFor(async () => Date.now() - started > 3_500, 'three refreshes');
  t.equal(again.logs().filter((l) => l.code === 'W_MEMBER_CLASH').length, 0);
});
