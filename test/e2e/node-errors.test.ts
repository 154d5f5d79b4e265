// harbor-node's promised failures, spawned for real: usage and setting
// errors, a corrupt state file, a port held by another process, an API
// address in use, and the drain on SIGTERM.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { echoServer, listenTcp, tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { refusingPort } from '../helpers/net.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, spawnNode, startNodeProcess } from '../node/fixtures/spawn.js';

t.test(
  'an unknown flag is a usage error (exit 2); a bad value a config error (exit 78) naming it',
  async (t) => {
    const unknown = spawnNode(t, ['--bogus']);
    t.equal(await unknown.exited, 2);
    t.match(unknown.output(), /harbor-node: unknown flag --bogus \[E_USAGE\]/);
    const bad = spawnNode(t, ['--ports', '9-1'], { HARBOR_NODE_UDP_IDLE_TIMEOUT: 'later' });
    t.equal(await bad.exited, 78);
    t.match(bad.output(), /error: --ports "9-1": .*\[E_SETTING\]/);
    t.match(bad.output(), /error: HARBOR_NODE_UDP_IDLE_TIMEOUT "later": .*\[E_SETTING\]/);
    const open = spawnNode(t, ['--api', '0.0.0.0:9700']);
    t.equal(await open.exited, 78);
    t.match(open.output(), /not on a loopback address and HARBOR_NODE_TOKEN is not set/);
  },
);

t.test('a corrupt state file: exit 78 naming it, the file untouched', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'harbor-node-'));
  const path = join(dir, 'state.json');
  const text = '{"version": 1, "services": [ {"id": "x"';
  await writeFile(path, text);
  const range = await freeRange(2);
  const proc = spawnNode(t, [
    '--ports',
    `${range.first}-${range.last}`,
    '--state',
    path,
    '--api',
    '127.0.0.1:0',
  ]);
  t.equal(await proc.exited, 78);
  t.match(proc.output(), new RegExp(`state file ${path} is not valid JSON.*\\[E_STATE_CORRUPT\\]`));
  t.equal(await readFile(path, 'utf8'), text);
});

t.test(
  'an empty state file (touched before the first start): the node starts, and its first change fills it',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-node-'));
    const path = join(dir, 'state.json');
    await writeFile(path, '');
    const range = await freeRange(2);
    const node = await startNodeProcess(t, ['--ports', `${range.first}-${range.last}`, '--state', path]);
    const created = await api(node.api, 'POST', '/v1/services', { name: 'tcp-first' });
    t.equal(created.status, 201);
    const saved = JSON.parse(await readFile(path, 'utf8'));
    t.match(saved, { version: 1, services: [{ name: 'tcp-first', port: created.json.port }] });
  },
);

t.test('the API address in use: exit 1, E_PORT_IN_USE', async (t) => {
  const holder = net.createServer();
  await listenTcp(holder);
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const range = await freeRange(2);
  const proc = spawnNode(t, ['--ports', `${range.first}-${range.last}`, '--api', `127.0.0.1:${port}`]);
  t.equal(await proc.exited, 1);
  // The holder named: here the test's own process.
  t.match(
    proc.output(),
    new RegExp(
      `API address 127\\.0\\.0\\.1:\\d+: already in use by pid ${process.pid} \\(.*\\) \\[E_PORT_IN_USE\\]`,
    ),
  );
});

t.test(
  'a port held by another process: logged conflict naming service and port, the others serve, retried until free',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-node-'));
    const path = join(dir, 'state.json');
    const range = await freeRange(4);
    const app = await tagServer(t, 'app');
    const service = (id: string, name: string, port: number) => ({
      id,
      name,
      port,
      int_port: 4100,
      created_at: '2026-01-01T00:00:00.000Z',
      instances: [{ id: 'i1', host: '127.0.0.1', port: app.port }],
    });
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        services: [
          service('s-held', 'tcp-held', range.first),
          service('s-free', 'tcp-free', range.first + 1),
        ],
      }),
    );
    const holder = net.createServer((s) => s.end('holder'));
    await listenTcp(holder, range.first);
    const node = await startNodeProcess(t, ['--ports', `${range.first}-${range.last}`, '--state', path]);
    const conflict = await node.waitLog((l) => l.code === 'E_PORT_TAKEN', 'the conflict');
    t.match(conflict, { service: 'tcp-held', port: range.first, level: 50 });
    t.match(conflict.msg, new RegExp(`${range.first}/tcp is already in use`));
    await node.waitLog((l) => l.msg === 'instance passed its check' && l.instance === 'i1', 'checks');
    t.equal(await tcpRequest(range.first + 1), 'app', 'the other service serves');
    t.equal(await tcpRequest(range.first), 'holder', 'the holder keeps its port');
    const view = (await api(node.api, 'GET', '/v1/services/s-held')).json;
    t.match(view, { listening: false, conflict: /already in use/ });
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    await node.waitLog(
      (l) => l.msg === 'port conflict resolved; listening' && l.port === range.first,
      'the retry',
      10_000,
    );
    t.equal(await tcpRequest(range.first), 'app', 'the service has its port back');
    t.equal(node.logs().filter((l) => l.code === 'E_PORT_TAKEN').length, 1, 'logged once, not every retry');
  },
);

t.test('SIGTERM drains: new connections refused, open ones finish, exit 0', async (t) => {
  const range = await freeRange(2);
  const echo = await echoServer(t);
  const node = await startNodeProcess(t, [
    '--ports',
    `${range.first}-${range.last}`,
    '--drain-timeout',
    '20s',
  ]);
  const creds = (await api(node.api, 'POST', '/v1/services', { name: 'tcp-echo' })).json;
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/e`, {
    host: '127.0.0.1',
    port: echo.port,
  });
  const client = net.connect(creds.port, '127.0.0.1');
  client.on('error', () => {});
  await new Promise((resolve) => client.on('connect', resolve));
  client.write('one');
  await new Promise((resolve) => client.once('data', resolve));
  node.child.kill('SIGTERM');
  await node.waitLog((l) => l.msg === 'draining', 'draining');
  await t.rejects(tcpRequest(creds.port), { code: 'ECONNREFUSED' }, 'no new connections');
  client.write('two');
  const echoed = await new Promise<string>((resolve) =>
    client.once('data', (c: Buffer) => resolve(c.toString())),
  );
  t.equal(echoed, 'two', 'the open connection still works');
  t.equal(node.child.exitCode, null, 'still running while a connection is open');
  client.end();
  t.equal(await node.exited, 0);
  t.ok(node.logs().some((l) => l.msg === 'stopped'));
});

t.test(
  "a Redis store not there at start: the line says why (the system's error, not ioredis's)",
  async (t) => {
    const port = await refusingPort();
    const range = await freeRange(2);
    const proc = spawnNode(t, [
      '--ports',
      `${range.first}-${range.last}`,
      '--api',
      '127.0.0.1:0',
      '--store',
      `redis://127.0.0.1:${port}`,
    ]);
    const line = await proc.waitLog((l) => /store not reachable yet/.test(String(l.msg)), 'the store line');
    t.match(line, { reason: `connect ECONNREFUSED 127.0.0.1:${port}` });
    t.notMatch(String(line.msg), /Connection is closed/);
  },
);
