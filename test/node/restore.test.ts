// Restoring from the state file in-process: which instances take traffic at
// once and which wait for their connect check; a failed write rolls back.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { HarborNode, type HarborNodeOptions, StateFile } from '../../src/node/index.js';
import { tagServer, tcpRequest, udpClient, udpTagServer } from '../forward/fixtures/net.js';
import { refusingPort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from './fixtures/ranges.js';

async function node(t: Test, options: Partial<HarborNodeOptions>): Promise<HarborNode> {
  const n = new HarborNode({
    range: options.range!,
    listenHost: '127.0.0.1',
    nodeId: 'n',
    hostname: 'h',
    host: '127.0.0.1',
    udpIdleTimeoutMs: 60_000,
    logger: silentLogger(),
    retryMs: 100,
    ...options,
  });
  await n.start();
  t.teardown(() => n.drain(0));
  return n;
}

t.test(
  'restore: UDP-only instances serve at once; TCP ones after their check; a dead one waits',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-restore-'));
    const stateFile = new StateFile(join(dir, 'state.json'));
    const range = await freeRange(4);
    const udpApp = await udpTagServer(t, 'u');
    const tcpApp = await tagServer(t, 'tcp');
    const dead = await refusingPort();
    const first = await node(t, { range, stateFile });
    const udp = await first.createService('udp-voice');
    const tcp = await first.createService('tcp-shop');
    await first.putInstance(udp.name, 'u1', { host: '127.0.0.1', port: udpApp.port, ttl: 60 });
    await first.putInstance(tcp.name, 'dead', { host: '127.0.0.1', port: dead });
    await first.putInstance(tcp.name, 'live', { host: '127.0.0.1', port: tcpApp.port });
    await first.drain(0);

    let checks = 0;
    const second = await node(t, {
      range,
      stateFile,
      check: async (_host, port) => {
        checks++;
        return port !== dead;
      },
    });
    t.match(
      second.view(udp.name).instances,
      [{ id: 'u1', state: 'up', ttl: 60 }],
      'UDP-only: up without a check',
    );
    const client = await udpClient(t);
    t.equal(await client.ask(udp.port, 'hi'), 'u:hi');
    await waitFor(
      () => second.view(tcp.name).instances.find((i) => i.id === 'live')?.state === 'up',
      'the check',
    );
    t.equal(await tcpRequest(tcp.port), 'tcp');
    await waitFor(() => checks >= 4, 'the dead instance to be re-checked');
    t.equal(
      second.view(tcp.name).instances.find((i) => i.id === 'dead')?.state,
      'checking',
      'still out of rotation',
    );
    await second.putInstance(tcp.name, 'dead', { host: '127.0.0.1', port: dead });
    t.equal(
      second.view(tcp.name).instances.find((i) => i.id === 'dead')?.state,
      'up',
      'a refresh from its sidecar vouches for it',
    );
  },
);

t.test('a state write that fails refuses the change and keeps the old state', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'harbor-restore-'));
  const stateFile = new StateFile(join(dir, 'state.json'));
  const range = await freeRange(3);
  const app = await tagServer(t, 'app');
  const n = await node(t, { range, stateFile });
  const kept = await n.createService('tcp-kept');
  await n.putInstance(kept.name, 'i1', { host: '127.0.0.1', port: app.port });
  // The folder vanishes under the running node: even root cannot write there now.
  await rm(dir, { recursive: true });
  const refused = { code: 'E_STATE_WRITE', message: /state file .* cannot be written/ };
  await t.rejects(n.createService('tcp-x'), refused);
  t.same(
    n.list().map((v) => v.service),
    ['tcp-kept'],
    'the new service was rolled back',
  );
  const before = new Set([range.first, range.first + 1, range.last]);
  before.delete(kept.port);
  for (const port of before) {
    t.equal(
      await tcpRequest(port).catch((e: NodeJS.ErrnoException) => e.code),
      'ECONNREFUSED',
      `${port} not left listening`,
    );
  }
  await t.rejects(n.putInstance(kept.name, 'i2', { host: '127.0.0.1', port: app.port }), refused);
  await t.rejects(n.putInstance(kept.name, 'i1', { host: '127.0.0.1', port: app.port, ttl: 5 }), refused);
  await t.rejects(n.deleteInstance(kept.name, 'i1'), refused);
  t.match(n.view(kept.name).instances, [{ id: 'i1', ttl: null }], 'instances as they were');
  await t.rejects(n.deleteService(kept.name), refused);
  t.equal(await tcpRequest(kept.port), 'app', 'the service still serves');
});
