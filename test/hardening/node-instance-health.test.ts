// harbor-node against instances that fail in the ways a real world makes them
// fail (issue 9, items 1, 3 and 7), with the built program and real sockets:
//   - an instance host that cannot be connected to over UDP must not end the node;
//   - TCP and UDP health are separate on a both- service;
//   - the node's own descriptor limit is never blamed on an instance.
//   (Panic, every instance down, is in test/node/node.test.ts, where no check can interfere.)
import { createSocket, type Socket } from 'node:dgram';
import t from 'tap';
import { tagServer, tcpRequest, udpClient, udpTagServer } from '../forward/fixtures/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

async function startNode(t: Parameters<typeof startNodeProcess>[0]) {
  const range = await freeRange(4);
  return startNodeProcess(t, ['--ports', `${range.first}-${range.last}`]);
}

t.test('a UDP instance that cannot be connected to drops datagrams; the node serves on', async (t) => {
  const node = await startNode(t);
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'udp-game' });
  const live = await udpTagServer(t, 'live');
  // Three hosts a dgram connect fails on: the broadcast address (EACCES), a name that
  // cannot resolve (.invalid, RFC 6761: ENOTFOUND), and one more of each kind after them.
  for (const [id, host] of [
    ['broadcast', '255.255.255.255'],
    ['unresolvable', 'no-such-host.invalid'],
  ]) {
    const put = await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/${id}`, { host, port: 9 });
    t.equal(put.status, 201, `${id} registered`);
  }
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/live`, {
    host: '127.0.0.1',
    port: live.port,
  });
  const client = await udpClient(t);
  // The primary is `broadcast`: its connect fails, it is marked down, and the next datagram
  // goes to `unresolvable`, then to `live`. Whatever the order, the node stays up and `live` answers.
  await waitFor(
    async () => (await client.ask(creds.port, 'hello', 500).catch(() => '')) === 'live:hello',
    'live answers',
  );
  t.equal(node.child.exitCode, null, 'the node is still running');
  const view = await api(node.api, 'GET', `/v1/services/${creds.name}`);
  const states = Object.fromEntries(
    view.json.instances.map((i: { id: string; state: string }) => [i.id, i.state]),
  );
  t.equal(states.broadcast, 'down', 'the broadcast instance is down');
  t.equal(states.unresolvable, 'down', 'the unresolvable instance is down');
  t.equal(states.live, 'up');
  t.ok(
    node.logs().some((l) => l.msg === 'udp instance unreachable'),
    'an unreachable instance is logged',
  );
  t.notMatch(node.output(), /ERR_SOCKET_BAD_PORT|Uncaught/, 'no crash trace');
  // A burst of datagrams while the bad ones are retried after their down time cannot end it either.
  for (let i = 0; i < 200; i++) client.socket.send(`burst-${i}`, creds.port, '127.0.0.1');
  const fresh = await udpClient(t);
  t.equal(await fresh.ask(creds.port, 'after'), 'live:after', 'a new client is served after the burst');
  t.equal(node.child.exitCode, null, 'still running after the burst');
});

t.test('both-: a UDP failure does not stop TCP, and a TCP failure does not stop UDP', async (t) => {
  const node = await startNode(t);
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'both-dns' });
  // The app answers UDP only: its TCP port is closed.
  const udpOnly = await udpTagServer(t, 'udp-app');
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/u`, {
    host: '127.0.0.1',
    port: udpOnly.port,
  });
  const client = await udpClient(t);
  t.equal(await client.ask(creds.port, 'q1'), 'udp-app:q1', 'UDP reaches the app');
  // One TCP attempt: refused by the app's closed TCP port, which marks TCP down only.
  await tcpRequest(creds.port).catch(() => '');
  const view = await api(node.api, 'GET', `/v1/services/${creds.name}`);
  t.match(view.json.instances[0], { state: 'degraded', health: { tcp: 'down', udp: 'up' } });
  t.equal(await client.ask(creds.port, 'q2'), 'udp-app:q2', 'UDP still flows after the TCP failure');

  // The reverse: an app on TCP whose UDP side is closed. ICMP port unreachable marks UDP down only.
  const { json: other } = await api(node.api, 'POST', '/v1/services', { name: 'both-web' });
  const tcpOnly = await tagServer(t, 'tcp-app');
  await api(node.api, 'PUT', `/v1/services/${other.name}/instances/w`, {
    host: '127.0.0.1',
    port: tcpOnly.port,
  });
  const probe = createSocket('udp4');
  t.teardown(() => probe.close());
  await waitFor(async () => {
    probe.send('late', other.port, '127.0.0.1');
    const v = await api(node.api, 'GET', `/v1/services/${other.name}`);
    return v.json.instances[0]?.health?.udp === 'down';
  }, 'the UDP side marked down by ICMP port unreachable');
  t.equal(await tcpRequest(other.port), 'tcp-app', 'TCP still reaches the app');
});

t.test("the node's own descriptor limit is not blamed on a healthy instance", async (t) => {
  // A node with few descriptors, and UDP clients from many source ports: each session opens
  // one upstream socket, until the node has none left (EMFILE). The instance is healthy
  // throughout and must stay up; the failures are the node's, counted and logged as such.
  const range = await freeRange(2);
  const node = await startNodeProcess(
    t,
    ['--ports', `${range.first}-${range.last}`, '--udp-idle-timeout', '1s'],
    {},
    ['prlimit', '--nofile=48:48'],
  );
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'udp-many' });
  const app = await udpTagServer(t, 'app');
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/ok`, {
    host: '127.0.0.1',
    port: app.port,
  });
  const clients: Socket[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
  });
  for (let i = 0; i < 60; i++) {
    const c = createSocket('udp4');
    c.on('error', () => {});
    clients.push(c);
    c.send(`c${i}`, creds.port, '127.0.0.1');
  }
  await node.waitLog(
    (l) => typeof l.msg === 'string' && l.msg.includes('lack of a local resource'),
    'the node to log its own EMFILE',
  );
  const view = await api(node.api, 'GET', `/v1/services/${creds.name}`);
  t.equal(view.json.instances[0].state, 'up', 'the healthy instance is still up');
  t.ok(view.json.counters.udp.localFailures > 0, `counted: ${view.json.counters.udp.localFailures}`);
  t.equal(view.json.counters.udp.upstreamErrors, 0, 'no failure was charged to the instance');
  for (const c of clients.splice(0)) c.close();
  // Once the sessions idle out, a new client is served by the same instance.
  const client = await udpClient(t);
  await waitFor(
    async () => (await client.ask(creds.port, 'again', 500).catch(() => '')) === 'app:again',
    'the instance to answer once descriptors are free',
  );
  t.equal(node.child.exitCode, null, 'the node ran through it');
});
