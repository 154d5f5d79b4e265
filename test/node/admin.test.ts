import { mkdtemp, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { StateFile } from '../../src/node/index.js';
import { type ServiceRecord, serializeState } from '../../src/node/state.js';
import { listenTcp, tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { startNode } from './fixtures/node.js';
import { freeRange } from './fixtures/ranges.js';

t.test('the admin endpoint on the API address: open probes, token for metrics and status', async (t) => {
  const n = await startNode(t, { token: 'tok' });
  const app = await tagServer(t, 'app');
  const { json: creds } = await n.call('POST', '/v1/services', { name: 'tcp-shop' });
  await n.call('PUT', `/v1/services/${creds.name}/instances/i1`, { host: '127.0.0.1', port: app.port });
  t.equal(await tcpRequest(creds.port), 'app');
  const open = { authorization: '' };
  t.equal((await n.call('GET', '/healthz', undefined, open)).status, 200);
  t.equal((await n.call('GET', '/readyz', undefined, open)).status, 200);
  t.equal((await n.call('GET', '/metrics', undefined, open)).status, 401);
  t.equal((await n.call('GET', '/status', undefined, open)).status, 401);
  const metrics = await n.call('GET', '/metrics');
  t.equal(metrics.status, 200);
  t.match(
    metrics.text,
    new RegExp(`harbor_connections_total\\{service="tcp-shop",service_id="${creds.name}"\\} 1`),
  );
  const status = await n.call('GET', '/status');
  t.match(status.json, {
    program: 'harbor-node',
    state: 'listening',
    services: [
      {
        name: 'tcp-shop',
        protocol: 'tcp',
        port: creds.port,
        int_port: 4100,
        backend: `127.0.0.1:${app.port}`,
      },
    ],
  });
});

t.test('/readyz is 503 naming a service whose port another process holds', async (t) => {
  const range = await freeRange(2);
  const dir = await mkdtemp(join(tmpdir(), 'harbor-admin-'));
  const path = join(dir, 'state.json');
  await writeFile(
    path,
    JSON.stringify({
      version: 1,
      services: [
        { id: 's1', name: 'tcp-held', port: range.first, int_port: 4100, created_at: 'then', instances: [] },
      ],
    }),
  );
  const holder = net.createServer();
  await listenTcp(holder, range.first);
  t.teardown(() => holder.close());
  const n = await startNode(t, { range, stateFile: new StateFile(path), retryMs: 60_000 });
  const ready = await n.call('GET', '/readyz', undefined, { accept: 'application/json' });
  t.equal(ready.status, 503);
  t.match(ready.text, new RegExp(`tcp-held: port ${range.first} not listening`));
});

t.test('two services with one name are two series, told apart by service_id', async (t) => {
  // Names are unique since issue 11; a state file written before may still hold twins.
  const dir = await mkdtemp(join(tmpdir(), 'harbor-admin-'));
  const range = await freeRange(4);
  const twin = (id: string, port: number): ServiceRecord => ({
    id,
    name: 'tcp-same',
    port,
    intPort: 4100,
    createdAt: new Date(0).toISOString(),
    instances: [],
  });
  const path = join(dir, 'state.json');
  await writeFile(
    path,
    serializeState({ services: [twin('id-a', range.first), twin('id-b', range.first + 1)] }),
  );
  const n = await startNode(t, { range, stateFile: new StateFile(path) });
  const app = await tagServer(t, 'app');
  await n.call('PUT', '/v1/services/id-a/instances/i', { host: '127.0.0.1', port: app.port });
  for (let i = 0; i < 3; i++) t.equal(await tcpRequest(range.first), 'app');
  const text = (await n.call('GET', '/metrics')).text;
  t.match(text, /harbor_connections_total\{service="tcp-same",service_id="id-a"\} 3/);
  t.match(text, /harbor_connections_total\{service="tcp-same",service_id="id-b"\} 0/);
  const byName = await n.call('GET', '/v1/services/tcp-same');
  t.equal(byName.status, 409, 'the shared name names neither');
  t.match(byName.json, {
    code: 'E_SERVICE_EXISTS',
    error: /2 services are named tcp-same \(ids id-a, id-b\): give the id/,
  });
});
