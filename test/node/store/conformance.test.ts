// One conformance suite for every store: memory, the state file, and Redis (a
// real redis-server). What the node relies on: atomic port claims, the
// registration order, refreshes that do not move the revision, TTLs on the
// store's clock, and a revision that moves with every other change.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { isHarborError } from '../../../src/errors/index.js';
import { silentLogger } from '../../../src/log/index.js';
import type { ServiceRecord } from '../../../src/node/state.js';
import { StateFile } from '../../../src/node/state.js';
import {
  createStore,
  FileStore,
  MemoryStore,
  type NodeStore,
  parseStoreLocation,
} from '../../../src/node/store/index.js';
import { HAVE_REDIS, startRedis } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

/** `another`: a second client of the same store; `reopen`: the store closed, then opened anew (default: another). */
type Factory = (
  t: Test,
) => Promise<{ store: NodeStore; another: () => Promise<NodeStore>; reopen?: () => Promise<NodeStore> }>;

const stores: Record<string, Factory> = {
  memory: async () => {
    const store = new MemoryStore();
    return { store, another: async () => store };
  },
  file: async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-store-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'state.json');
    const store = new FileStore(new StateFile(path));
    t.teardown(() => store.close());
    // The file is one node's at a time (its lock): this one lets go before another opens it.
    const reopen = async () => {
      await store.close();
      const again = new FileStore(new StateFile(path));
      t.teardown(() => again.close());
      return again;
    };
    return { store, another: async () => store, reopen };
  },
  redis: async (t) => {
    const redis = await startRedis(t);
    const open = async () => {
      const location = parseStoreLocation(redis.url, undefined);
      if (typeof location === 'string') throw new Error(location);
      const store = await createStore(location, silentLogger());
      t.teardown(() => store.close());
      return store;
    };
    return { store: await open(), another: open };
  },
};

const record = (id: string, port: number, name = `svc-${id}`): ServiceRecord => ({
  id,
  name,
  port,
  intPort: 4100,
  createdAt: new Date(0).toISOString(),
  credentials: { hostname: 'harbor.example', host: '10.0.0.1', node_id: 'harbor_cluster' },
  instances: [],
});

const code = (error: unknown): string | undefined => (isHarborError(error) ? error.code : String(error));

for (const [kind, factory] of Object.entries(stores)) {
  t.test(
    `${kind} store`,
    { skip: kind === 'redis' && !HAVE_REDIS ? 'redis-server is not installed' : false },
    async (t) => {
      const { store, another, reopen } = await factory(t);
      const first = await store.open();
      t.ok(first, 'opens');
      t.same(first?.services, [], 'empty at first');

      t.test('a port is claimed once; the record comes back whole', async (t) => {
        const r1 = await store.createService(record('a', 30001));
        t.type(r1, 'string');
        await t.rejects(
          store.createService(record('b', 30001)),
          { code: 'E_PORT_TAKEN' },
          'the same port again',
        );
        await t.rejects(
          store.createService(record('a', 30002)),
          { code: 'E_STORE_CONFLICT' },
          'the same id again',
        );
        const snapshot = await store.snapshot();
        t.match(snapshot.services, [
          {
            id: 'a',
            name: 'svc-a',
            port: 30001,
            intPort: 4100,
            credentials: { hostname: 'harbor.example', host: '10.0.0.1', node_id: 'harbor_cluster' },
            instances: [],
          },
        ]);
        t.equal(snapshot.revision, r1, 'the revision is the one the create returned');
      });

      t.test(
        'instances: created, refreshed (no new revision), replaced (to the back), in order',
        async (t) => {
          t.match(await store.putInstance('a', { id: 'i1', host: '127.0.0.1', port: 5001, ttl: 30 }), {
            result: 'created',
          });
          t.match(await store.putInstance('a', { id: 'i2', host: '127.0.0.1', port: 5002 }), {
            result: 'created',
          });
          t.match(await store.putInstance('a', { id: 'i3', host: '127.0.0.1', port: 5003 }), {
            result: 'created',
          });
          const refresh = await store.putInstance('a', { id: 'i1', host: '127.0.0.1', port: 5001, ttl: 30 });
          t.same(
            refresh,
            { result: 'refreshed', revision: undefined },
            'a plain refresh leaves the revision',
          );
          const longer = await store.putInstance('a', { id: 'i1', host: '127.0.0.1', port: 5001, ttl: 60 });
          t.equal(longer.result, 'refreshed');
          t.type(longer.revision, 'string', 'a new TTL moves the revision');
          t.match(await store.putInstance('a', { id: 'i2', host: '127.0.0.1', port: 6002 }), {
            result: 'replaced',
          });
          const snapshot = await store.snapshot();
          const instances = snapshot.services[0]!.instances;
          t.same(
            instances.map((i) => i.id),
            ['i1', 'i3', 'i2'],
            'registration order; the replaced one goes to the back',
          );
          t.ok(
            instances[0]!.remainingMs! > 55_000 && instances[0]!.remainingMs! <= 60_000,
            'its TTL left, on the store clock',
          );
          t.equal(instances[1]!.remainingMs, undefined, 'no TTL: nothing left to count');
          await t.rejects(store.putInstance('zz', { id: 'x', host: '127.0.0.1', port: 1 }), {
            code: 'E_API_NOT_FOUND',
          });
          await store.deleteInstance('a', 'i3');
          await t.rejects(store.deleteInstance('a', 'i3'), { code: 'E_API_NOT_FOUND' });
          t.same(
            (await store.snapshot()).services[0]!.instances.map((i) => i.id),
            ['i1', 'i2'],
          );
        },
      );

      t.test('a TTL runs out on the store clock; before that the store says how long is left', async (t) => {
        await store.putInstance('a', { id: 'short', host: '127.0.0.1', port: 5009, ttl: 1 });
        const early = await store.expireInstance('a', 'short');
        t.equal(early.expired, false);
        t.ok(early.remainingMs! > 0 && early.remainingMs! <= 1000, `left: ${early.remainingMs} ms`);
        await waitFor(async () => (await store.expireInstance('a', 'short')).expired, 'the expiry');
        t.notOk(
          (await store.snapshot()).services[0]!.instances.some((i) => i.id === 'short'),
          'removed from the store',
        );
        t.same(
          await store.expireInstance('a', 'i2'),
          { expired: false, remainingMs: undefined, revision: undefined },
          'no TTL: never',
        );
      });

      t.test('sync compares revisions; a second client of the store sees the same', async (t) => {
        const { revision } = await store.snapshot();
        t.match(await store.sync(revision), { revision, diverged: false, lag: 0 });
        const other = await another();
        if (other !== store) await other.open();
        const r = await other.createService(record('c', 30003));
        const seen = await store.sync(revision);
        t.equal(seen.revision, r, 'the other client moved it');
        t.equal(seen.lag, 1, `one behind (${revision} -> ${seen.revision})`);
        t.same(await store.lostRevisions([revision, r]), new Set(), 'nothing lost');
      });

      t.test(
        'a name is taken once, through any client; free again once its service is deleted',
        async (t) => {
          const other = await another();
          if (other !== store) await other.open();
          await store.createService(record('n1', 30010, 'tcp-named'));
          await t.rejects(other.createService(record('n2', 30011, 'tcp-named')), {
            code: 'E_SERVICE_EXISTS',
            message: 'a service named tcp-named exists already (id n1)',
          });
          await store.deleteService('n1');
          t.type(await other.createService(record('n3', 30011, 'tcp-named')), 'string', 'free again');
          await other.deleteService('n3');
        },
      );

      t.test('a deleted service frees its port', async (t) => {
        await store.deleteService('c');
        await t.rejects(store.deleteService('c'), { code: 'E_API_NOT_FOUND' });
        t.type(await store.createService(record('d', 30003)), 'string', 'the port is free again');
      });

      t.test('200 concurrent claims over 20 ports through two clients: each port once', async (t) => {
        const other = await another();
        if (other !== store) await other.open();
        const results = await Promise.allSettled(
          Array.from({ length: 200 }, (_, i) =>
            (i % 2 ? store : other).createService(record(`race-${i}`, 31000 + (i % 20))),
          ),
        );
        const won = results.filter((r) => r.status === 'fulfilled').length;
        const lost = results.filter(
          (r) => r.status === 'rejected' && code(r.reason) === 'E_PORT_TAKEN',
        ).length;
        t.equal(won, 20, 'one claim per port');
        t.equal(lost, 180, 'the rest refused with E_PORT_TAKEN');
        const ports = (await store.snapshot()).services.map((s) => s.port);
        t.equal(new Set(ports).size, ports.length, 'no port twice in the store');
      });

      t.test('members publish their own views, read back with their age; withdrawn at once', async (t) => {
        const view = (member: string) => ({
          member,
          lifecycle: 'listening',
          services: { d: { listening: false, conflict: 'port 30003 in use', instances: { i1: 'down' } } },
        });
        await store.putMember(view('edge-a'), 5_000);
        const other = await another();
        if (other !== store) await other.open();
        const shared = other !== store;
        if (shared) await other.putMember(view('edge-b'), 5_000);
        const members = await store.members();
        t.same(
          members.map((m) => m.member),
          shared ? ['edge-a', 'edge-b'] : ['edge-a'],
          'every member of a shared store; one node alone sees itself',
        );
        t.match(members[0], view('edge-a'), 'the view as published');
        t.ok(
          members.every((m) => m.age_ms >= 0 && m.age_ms < 5_000),
          'with its age',
        );
        await store.deleteMember('edge-a');
        t.notOk(
          (await other.members()).some((m) => m.member === 'edge-a'),
          'withdrawn',
        );
        if (shared) {
          await other.putMember(view('edge-b'), 200);
          await waitFor(async () => (await store.members()).length === 0, 'the silent member to expire');
          t.pass('a member that stops refreshing expires');
        }
      });

      t.test('closed and opened again: everything is still there', { skip: kind === 'memory' }, async (t) => {
        const before = await store.snapshot();
        const again = await (reopen ?? another)();
        const after = await again.open();
        t.same(
          after?.services.map((s) => [s.id, s.port, s.instances.map((i) => i.id)]),
          before.services.map((s) => [s.id, s.port, s.instances.map((i) => i.id)]),
        );
      });
    },
  );
}
