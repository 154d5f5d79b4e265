// harbor-node's state file and API input against an unlucky or careless world
// (issue 9, items 12 and 13), with the built program.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, spawnNode, startNodeProcess } from '../node/fixtures/spawn.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-node-state-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const ports = async () => {
  const range = await freeRange(4);
  return ['--ports', `${range.first}-${range.last}`];
};

t.test('a state folder that does not exist is created; changes are saved', async (t) => {
  const state = join(root, 'new', 'deeper', 'state.json');
  const node = await startNodeProcess(t, [...(await ports()), '--state', state]);
  const created = await api(node.api, 'POST', '/v1/services', { name: 'tcp-first' });
  t.equal(created.status, 201, 'the first create succeeds (it answered 500 before)');
  t.ok(existsSync(state), 'and is on disk');
});

t.test('a state folder that cannot be written: exit 78 before ready, naming it', async (t) => {
  const blocker = join(root, 'not-a-folder');
  writeFileSync(blocker, 'a file where the folder should be');
  const node = spawnNode(t, [
    '--api',
    '127.0.0.1:0',
    ...(await ports()),
    '--state',
    join(blocker, 'state.json'),
  ]);
  t.equal(await node.exited, 78);
  t.match(node.output(), /E_STATE_FOLDER/);
  t.match(node.output(), /not-a-folder/, 'the message names the folder');
  t.notMatch(node.output(), /harbor-node ready/, 'it never said ready');
});

t.test('leftover temporary files are removed; unknown fields and long TTLs survive', async (t) => {
  const dir = join(root, 'kept');
  mkdirSync(dir);
  const state = join(dir, 'state.json');
  writeFileSync(join(dir, '.state.json.99999.tmp'), '{"half":');
  const range = await freeRange(4);
  writeFileSync(
    state,
    JSON.stringify({
      version: 1,
      cluster: { note: 'written by a newer node' },
      services: [
        {
          id: 'svc-1',
          name: 'tcp-kept',
          port: range.first,
          int_port: 4100,
          created_at: '2026-11-30T00:00:00.000Z',
          owner: 'team-a',
          instances: [{ id: 'long', host: '127.0.0.1', port: 9, ttl: 40 * 86_400, zone: 'b' }],
        },
      ],
    }),
  );
  const node = await startNodeProcess(t, ['--ports', `${range.first}-${range.last}`, '--state', state]);
  t.notOk(existsSync(join(dir, '.state.json.99999.tmp')), 'the stale temporary file is gone');
  // A change makes the node write the file.
  t.equal((await api(node.api, 'POST', '/v1/services', { name: 'tcp-other' })).status, 201);
  const written = JSON.parse(readFileSync(state, 'utf8'));
  t.same(written.cluster, { note: 'written by a newer node' }, 'an unknown top-level field is kept');
  t.equal(written.services[0].owner, 'team-a', 'an unknown service field is kept');
  t.equal(written.services[0].instances[0].zone, 'b', 'an unknown instance field is kept');
  // A 40-day TTL does not overflow the timer and expire at once.
  const view = await api(node.api, 'GET', '/v1/services/svc-1');
  t.same(
    view.json.instances.map((i: { id: string }) => i.id),
    ['long'],
    'the 40-day instance is still there',
  );
});

t.test('the API refuses hosts that cannot be dialled', async (t) => {
  const node = await startNodeProcess(t, await ports());
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'tcp-hosts' });
  for (const host of ['---', '::::', '-a.example', 'a..b', '999.1.1.1', 'x'.repeat(64)]) {
    const put = await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/i`, { host, port: 80 });
    t.equal(put.status, 400, `${JSON.stringify(host)}: 400`);
  }
  for (const host of ['127.0.0.1', '::1', '[::1]', 'app-1.internal', 'localhost']) {
    const put = await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/i`, { host, port: 80 });
    t.ok(put.status === 201 || put.status === 200, `${host}: accepted (${put.status})`);
  }
});

const [low = 0, high = 0] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
  .trim()
  .split(/\s+/)
  .map(Number);
const reserved = readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8').trim();
t.test(
  'a port range inside the ephemeral range is warned about, with the fix',
  { skip: high - low < 100 || reserved !== '' ? 'no plain ephemeral range on this machine' : false },
  async (t) => {
    const inside = await freeRange(2, low, high);
    const node = await startNodeProcess(t, ['--ports', `${inside.first}-${inside.last}`]);
    const warning = await node.waitLog((l) => l.code === 'W_PORTS_EPHEMERAL', 'the warning');
    t.match(warning.msg, /ip_local_reserved_ports/, 'it says how to reserve them');
  },
);

t.test('a body over the API limit gets its 413, not a reset', async (t) => {
  const node = await startNodeProcess(t, await ports());
  const big = JSON.stringify({ name: 'tcp-big', pad: 'x'.repeat(100_000) });
  for (const framing of [
    ['-H', 'Content-Type: application/json'],
    ['-H', 'Transfer-Encoding: chunked'],
  ]) {
    const out = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = execFile(
        'curl',
        [
          '-sS',
          '-X',
          'POST',
          ...framing,
          '--data-binary',
          '@-',
          '-w',
          '\\n%{http_code}',
          `${node.api}/v1/services`,
        ],
        { timeout: 20_000 },
        (error, stdout) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout }),
      );
      child.stdin?.end(big);
    });
    t.equal(out.code, 0, `curl (${framing[1]}) completes without a reset`);
    t.match(out.stdout, /"code":"E_API_REQUEST"[\s\S]*\n413$/, 'and gets 413 with the error');
  }
  t.equal((await api(node.api, 'GET', '/v1/services')).status, 200, 'the API serves on');
});
