import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { HarborNode, NodeApi } from '../../src/node/index.js';
import { RegistrationClient, resolveInstanceHost, resolveInstanceId } from '../../src/registration/index.js';
import { tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { freePort, refusingPort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { startNode } from '../node/fixtures/node.js';
import { freeRange } from '../node/fixtures/ranges.js';

const logger = silentLogger();

t.test('registers, refreshes within the TTL, and deregisters on stop, with a real node', async (t) => {
  const n = await startNode(t, { token: 'tok' });
  const app = await tagServer(t, 'app');
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-app' });
  const client = new RegistrationClient({
    nodeUrl: `${n.url}/`,
    token: 'tok',
    instanceId: 'guid-1',
    host: '127.0.0.1',
    services: [{ serviceId: creds.name, serviceName: 'tcp-app', port: app.port }],
    ttlSeconds: 2,
    logger,
  });
  t.teardown(() => client.stop());
  client.start();
  const instances = async () => (await n.call('GET', `/v1/services/${creds.name}`)).json.instances;
  await waitFor(async () => (await instances()).length === 1, 'the registration');
  t.match(await instances(), [{ id: 'guid-1', host: '127.0.0.1', port: app.port, ttl: 2, state: 'up' }]);
  t.equal(await tcpRequest(creds.port), 'app', 'traffic flows to the registered instance');
  // Over two TTLs later it is still there only because it was refreshed (ttl/3 apart: a wait
  // for the count, not for a time, so that a busy machine's late timers cannot fail it).
  const registered = Date.now();
  await waitFor(
    () => client.status()[0]!.refreshes >= 5 && Date.now() - registered > 4500,
    'five refreshes, over two TTLs',
  );
  t.equal((await instances()).length, 1, 'still registered after two TTLs');
  await client.stop();
  t.same(await instances(), [], 'removed on stop');
  t.equal(client.status()[0]!.registered, false);
});

t.test('a node that is down is retried with backoff; registration succeeds once it is up', async (t) => {
  const range = await freeRange(4);
  const node = new HarborNode({
    range,
    listenHost: '127.0.0.1',
    nodeId: 'n',
    hostname: 'h',
    host: '127.0.0.1',
    udpIdleTimeoutMs: 60_000,
    logger,
  });
  await node.start();
  t.teardown(() => node.drain(0));
  const creds = await node.createService('tcp-late');
  const apiPort = await freePort(); // the node's API listens here later
  const client = new RegistrationClient({
    nodeUrl: `http://127.0.0.1:${apiPort}`,
    instanceId: 'late-1',
    host: '127.0.0.1',
    services: [{ serviceId: creds.name, serviceName: 'tcp-late', port: 4100 }],
    minBackoffMs: 50,
    maxBackoffMs: 200,
    logger,
  });
  t.teardown(() => client.stop());
  client.start();
  await waitFor(() => client.status()[0]!.failures >= 3, 'a few failed tries');
  t.match(client.status()[0], { registered: false, lastError: /ECONNREFUSED/ });
  const api = new NodeApi({ node, token: undefined, logger });
  await api.listen('127.0.0.1', apiPort);
  t.teardown(() => api.close());
  await waitFor(() => client.status()[0]!.registered, 'registration once the node is up');
  t.same(
    node.view(creds.name).instances.map((i) => i.id),
    ['late-1'],
  );
});

t.test('an error answer (unknown service, wrong token) is retried and reported, never thrown', async (t) => {
  const n = await startNode(t, { token: 'right' });
  const client = new RegistrationClient({
    nodeUrl: n.url,
    token: 'wrong',
    instanceId: 'x',
    host: '127.0.0.1',
    services: [{ serviceId: 'no-such-service', serviceName: 'tcp-x', port: 4100 }],
    minBackoffMs: 50,
    logger,
  });
  t.teardown(() => client.stop());
  client.start();
  await waitFor(() => client.status()[0]!.failures >= 2, 'retries');
  t.match(client.status()[0]!.lastError, /HTTP 401: wrong bearer token/);
});

t.test('instance id: CF_INSTANCE_GUID, else VCAP_APPLICATION instance_id, else hostname', async (t) => {
  t.equal(
    resolveInstanceId({ cfInstanceGuid: 'g-1', vcapApplication: '{"instance_id":"v-1"}', hostname: 'h' }),
    'g-1',
  );
  t.equal(
    resolveInstanceId({ cfInstanceGuid: '', vcapApplication: '{"instance_id":"v-1"}', hostname: 'h' }),
    'v-1',
  );
  t.equal(resolveInstanceId({ vcapApplication: '{not json', hostname: 'h' }), 'h');
  t.equal(resolveInstanceId({ hostname: 'h' }), 'h');
});

t.test('instance host: HARBOR_INSTANCE_HOST, else the first non-internal address', async (t) => {
  const lo = { address: '127.0.0.1', family: 'IPv4', internal: true } as const;
  const eth = { address: '10.1.2.3', family: 'IPv4', internal: false } as const;
  const v6 = { address: '2001:db8::5', family: 'IPv6', internal: false } as const;
  const common = { netmask: '', mac: '', cidr: null };
  t.equal(resolveInstanceHost('192.0.2.7', {}), '192.0.2.7');
  t.equal(
    resolveInstanceHost(undefined, {
      lo: [{ ...lo, ...common }],
      eth0: [
        { ...v6, ...common, scopeid: 0 },
        { ...eth, ...common },
      ],
    }),
    '10.1.2.3',
  );
  t.equal(resolveInstanceHost(undefined, { eth0: [{ ...v6, ...common, scopeid: 0 }] }), '2001:db8::5');
  t.equal(resolveInstanceHost(undefined, { lo: [{ ...lo, ...common }] }), '127.0.0.1');
});

t.test('retries never wait longer than a third of the TTL, whatever the backoff says', async (t) => {
  // Issue 9, item 8: after a node outage longer than the TTL, a 30 s backoff let the restored
  // instance expire before the next try.
  const client = new RegistrationClient({
    nodeUrl: `http://127.0.0.1:${await refusingPort()}`,
    instanceId: 'ttl-1',
    host: '127.0.0.1',
    services: [{ serviceId: 'x', serviceName: 'tcp-x', port: 4100 }],
    ttlSeconds: 3,
    minBackoffMs: 50,
    maxBackoffMs: 30_000,
    logger,
  });
  t.teardown(() => client.stop());
  client.start();
  await waitFor(() => client.status()[0]!.failures >= 6, 'six failed tries');
  const retryMs = client.status()[0]!.retryMs ?? 0;
  t.ok(retryMs > 0 && retryMs <= 1000, `the next try in ${retryMs} ms: at most ttl/3 = 1000 ms`);
});

t.test('a service carrying UDP registers with its udp_check', async (t) => {
  const n = await startNode(t);
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'udp-game' });
  const client = new RegistrationClient({
    nodeUrl: `${n.url}/`,
    instanceId: 'u-1',
    host: '127.0.0.1',
    services: [{ serviceId: creds.name, serviceName: 'udp-game', port: 4100, udpCheck: 'hex:0102' }],
    logger,
  });
  t.teardown(() => client.stop());
  client.start();
  await waitFor(() => client.status()[0]!.registered, 'the registration');
  t.match((await n.call('GET', `/v1/services/${creds.name}`)).json.instances, [
    { id: 'u-1', udp_check: 'hex:0102' },
  ]);
});

t.test(
  'several node URLs (a cluster): a dead one is passed over, and the next that answers takes it',
  async (t) => {
    const n = await startNode(t);
    const app = await tagServer(t, 'app');
    const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-app' });
    const dead = `http://127.0.0.1:${await refusingPort()}`;
    const client = new RegistrationClient({
      nodeUrl: `${dead}, ${n.url}/`,
      instanceId: 'guid-multi',
      host: '127.0.0.1',
      services: [{ serviceId: creds.name, serviceName: 'tcp-app', port: app.port }],
      ttlSeconds: 2,
      logger,
    });
    t.teardown(() => client.stop());
    client.start();
    const instances = async () => (await n.call('GET', `/v1/services/${creds.name}`)).json.instances;
    await waitFor(async () => (await instances()).length === 1, 'the registration through the live node');
    t.equal(client.status()[0]!.failures, 0, 'the dead node cost no failed registration');
    await waitFor(() => client.status()[0]!.refreshes >= 3, 'refreshes');
    t.equal(client.status()[0]!.failures, 0, 'refreshes stay on the live node');
    await client.stop();
    t.same(await instances(), [], 'deregistered through the live node too');
  },
);
