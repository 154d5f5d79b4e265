// One in-process harbor-node on a real redis-server, its sync driven by hand:
// a snapshot that meets a port this node's own create holds at that instant
// (another node claimed it first) is applied in part, and the node reads the
// store again at its next sync instead of taking the revision as seen.
import t, { type Test } from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { HarborNode } from '../../src/node/index.js';
import { bindProbe } from '../../src/node/ports.js';
import {
  createStore,
  type NodeStore,
  parseStoreLocation,
  type StoreLocation,
} from '../../src/node/store/index.js';
import { HAVE_REDIS, startRedis } from '../helpers/redis.js';
import { freeRange } from '../node/fixtures/ranges.js';

if (!HAVE_REDIS) t.plan(0, 'redis-server is not installed');

/** A promise and the function that settles it. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire = () => {};
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

async function openStore(t: Test, url: string): Promise<NodeStore> {
  const location = parseStoreLocation(url, undefined) as StoreLocation;
  const store = await createStore(location, silentLogger());
  t.teardown(() => store.close());
  return store;
}

t.test('a service whose port a create in flight holds is learnt at the next sync', async (t) => {
  const redis = await startRedis(t);
  const range = await freeRange(1);
  const port = range.first;
  // Another node: a second client of the same Redis, claiming the only port first.
  const other = await openStore(t, redis.url);
  await other.open();

  const store = await openStore(t, redis.url);
  const probed = signal();
  const probe = bindProbe('127.0.0.1');
  const node = new HarborNode({
    range,
    listenHost: '127.0.0.1',
    nodeId: 'harbor_node_1',
    hostname: 'node.internal',
    host: '127.0.0.1',
    udpIdleTimeoutMs: 60_000,
    logger: silentLogger(),
    store,
    syncMs: 3_600_000, // by hand only
    probe: async (p) => {
      probed.fire();
      return probe(p);
    },
  });
  await node.start();
  t.teardown(() => node.drain(0));
  // From here, a snapshot waits until the test lets it through.
  const snapshotAsked = signal();
  const snapshotGate = signal();
  const readSnapshot = store.snapshot.bind(store);
  store.snapshot = async (...args) => {
    snapshotAsked.fire();
    await snapshotGate.promise;
    return readSnapshot(...args);
  };

  await other.createService({
    id: 'svc-other',
    name: 'tcp-other',
    port,
    intPort: 4100,
    createdAt: new Date().toISOString(),
    instances: [],
  });
  // The sync sees the revision move and waits for its snapshot; meanwhile this node's own
  // create takes the port it still believes free and queues behind the sync.
  const syncing = node.sync();
  await snapshotAsked.promise;
  const creating = node.createService('tcp-mine').then(
    () => 'created',
    (error: { code?: string }) => error.code,
  );
  await probed.promise;
  await new Promise((resolve) => setImmediate(resolve));
  snapshotGate.fire();
  await syncing;

  t.equal(
    await creating,
    'E_PORT_RANGE_EXHAUSTED',
    'the create learns the port is taken and finds none free',
  );
  await node.sync();
  t.same(
    node.list().map((s) => s.credentials.name),
    ['svc-other'],
    'the service the other node created is served here',
  );
  t.equal(node.storeStatus().revision, (await store.sync(undefined)).revision, 'the revision is the store’s');
});
