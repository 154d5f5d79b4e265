// kill -9 the node and start it again: same ports, same instances, traffic
// flows once each instance has passed its connect check.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { bothTagServer, tagServer, tcpRequest, udpClient } from '../forward/fixtures/net.js';
import { refusingPort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

t.test('restart after kill -9 restores ports and instances; traffic flows again', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'harbor-node-'));
  const range = await freeRange(6);
  const args = ['--ports', `${range.first}-${range.last}`, '--state', join(dir, 'state.json')];
  const env = { HARBOR_NODE_TOKEN: 'tok' };
  const [a, b] = await Promise.all([tagServer(t, 'a'), tagServer(t, 'b')]);
  // The both- service's app answers UDP and TCP on one port number, as a sidecar forwarding both would.
  const udpApp = await bothTagServer(t, 'u');
  const deadApp = await refusingPort();

  const first = await startNodeProcess(t, args, env);
  const tcp = (await api(first.api, 'POST', '/v1/services', { name: 'tcp-web' }, 'tok')).json;
  const both = (await api(first.api, 'POST', '/v1/services', { name: 'both-game' }, 'tok')).json;
  for (const [id, port] of [
    ['a', a.port],
    ['b', b.port],
    ['gone', deadApp],
  ] as const) {
    t.equal(
      (
        await api(
          first.api,
          'PUT',
          `/v1/services/${tcp.name}/instances/${id}`,
          { host: '127.0.0.1', port, ttl: 600 },
          'tok',
        )
      ).status,
      201,
    );
  }
  await api(
    first.api,
    'PUT',
    `/v1/services/${both.name}/instances/u`,
    { host: '127.0.0.1', port: udpApp.port },
    'tok',
  );
  t.match(await tcpRequest(tcp.port), /^[ab]$/);
  const before = (await api(first.api, 'GET', '/v1/services', undefined, 'tok')).json.services;

  first.child.kill('SIGKILL');
  t.equal(await first.exited, 'SIGKILL');

  const second = await startNodeProcess(t, args, env);
  await second.waitLog((l) => l.msg === 'state restored', 'state restored');
  const list = async () => (await api(second.api, 'GET', '/v1/services', undefined, 'tok')).json.services;
  const after = await list();
  t.same(
    after.map((s: { credentials: unknown }) => s.credentials),
    before.map((s: { credentials: unknown }) => s.credentials),
    'same services, ports and credentials',
  );
  t.same(
    after.map((s: { instances: { id: string }[] }) => s.instances.map((i) => i.id)),
    [['a', 'b', 'gone'], ['u']],
    'same instances',
  );
  // The two live instances pass their check; the dead one stays out of rotation.
  await waitFor(async () => {
    const states = (await list())[0].instances.map((i: { state: string }) => i.state);
    return states[0] === 'up' && states[1] === 'up';
  }, 'instances a and b to pass their check');
  t.equal((await list())[0].instances[2].state, 'checking');
  const tags = new Set<string>();
  for (let i = 0; i < 6; i++) tags.add(await tcpRequest(tcp.port));
  t.same([...tags].sort(), ['a', 'b'], 'TCP flows to the checked instances only');
  const client = await udpClient(t);
  t.equal(
    await client.ask(both.port, 'ping'),
    'u:ping',
    'UDP flows (UDP-carrying both- service on the same port)',
  );
  t.equal(await tcpRequest(both.port), 'u', 'and TCP on the same port number');
});
