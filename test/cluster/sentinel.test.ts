// A Sentinel failover under a create loop: a master, a replica and a sentinel
// (real processes), three harbor-nodes on redis-sentinel://. The master is
// SIGKILLed mid-loop: writes resume within seconds on the promoted replica,
// no port is ever handed out twice, and every acknowledged service survives.
// The promoted master has no replica: a create must not wait out the replica
// timeout (1 s) each time.
import t from 'tap';
import { HAVE_REDIS, HAVE_SENTINEL, redisCommand, startRedis, startSentinel } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { startCluster } from './fixtures.js';

if (!HAVE_REDIS || !HAVE_SENTINEL) t.plan(0, 'redis-server or redis-sentinel is not installed');

t.test(
  'a failover under a create loop: writes resume, no port twice, nothing acknowledged lost',
  async (t) => {
    const master = await startRedis(t);
    const replica = await startRedis(t, { replicaOf: master.port });
    await waitFor(
      async () => (await redisCommand(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
      'the replica in sync',
    );
    const sentinel = await startSentinel(t, master.port, 'harbor', 1, [replica.port]);
    await waitFor(
      async () =>
        (await redisCommand(sentinel.port, 'SENTINEL', 'REPLICAS', 'harbor')).includes(String(replica.port)),
      'the sentinel knows the replica',
    );
    const { nodes } = await startCluster(t, `redis-sentinel://127.0.0.1:${sentinel.port}/harbor`, {
      size: 400,
    });

    const acknowledged: { id: string; port: number }[] = [];
    const statuses = new Map<number, number>();
    let stop = false;
    let failedAt = 0;
    let resumedAfter = -1;
    /** How long each create acknowledged after the failover took. */
    const afterFailover: number[] = [];
    const loop = Promise.all(
      nodes.map(async (node, lane) => {
        for (let i = 0; !stop && i < 2000; i++) {
          const sent = Date.now();
          const answer = await node
            .call('POST', '/v1/services', { name: `tcp-failover-${lane}-${i}` })
            .catch(() => undefined);
          const status = answer?.status ?? 0;
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status === 201) {
            acknowledged.push({ id: answer!.json.name, port: answer!.json.port });
            if (failedAt > 0 && resumedAfter < 0) resumedAfter = Date.now() - failedAt;
            if (resumedAfter >= 0) afterFailover.push(Date.now() - sent);
          } else {
            // As a client honouring Retry-After would, but waiting for the condition itself:
            // this node reaching its store again (a failover under way keeps it away).
            await waitFor(
              async () => (await node.call('GET', '/v1/services')).json.store.connected === true,
              `${node.host} reaching its store`,
              60_000,
            );
          }
        }
      }),
    );
    await waitFor(() => acknowledged.length >= 30, 'creates under way');
    await master.kill();
    failedAt = Date.now();
    await waitFor(
      () => resumedAfter >= 0 && acknowledged.length >= 60,
      'creates succeeding again after the failover',
      60_000,
    );
    stop = true;
    await loop;
    t.comment(
      `writes resumed ${resumedAfter} ms after the master was killed; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    t.ok(resumedAfter < 30_000, 'writes resumed within seconds');
    const median = [...afterFailover].sort((a, b) => a - b)[Math.floor(afterFailover.length / 2)]!;
    t.ok(
      median < 1_000,
      `a create on the promoted master (no replica left) does not wait out the replica timeout: median ${median} ms of ${afterFailover.length}`,
    );
    const ports = acknowledged.map((a) => a.port);
    t.equal(new Set(ports).size, ports.length, `no port twice among ${ports.length} acknowledged creates`);
    for (const node of nodes) {
      await waitFor(async () => {
        const listed = (await node.call('GET', '/v1/services')).json.services as {
          credentials: { name: string };
        }[];
        const ids = new Set(listed.map((s) => s.credentials.name));
        return acknowledged.every((a) => ids.has(a.id));
      }, `every acknowledged service on ${node.host}`);
    }
    t.pass('every acknowledged service is served by every node');
  },
);
