// A harbor-node that is down when the sidecar starts: the sidecar serves
// HTTPS all the same, logs W_NODE_UNREACHABLE, keeps retrying with backoff,
// and registers once the node (restarted from its state file on the same API
// address) is back; traffic then flows through the node's external port.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { cleanEnv, exited, NODE_BIN, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet } from '../helpers/net.js';
import { freeRange } from '../node/fixtures/ranges.js';

const TOKEN = 'e2e-node-token';

async function startNode(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [NODE_BIN, '--listen', '127.0.0.1', ...args], {
    env: cleanEnv({ HARBOR_NODE_TOKEN: TOKEN }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitForOutput(child, /"msg":"harbor-node ready"/);
  return child;
}

async function call(
  api: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

const root = mkdtempSync(join(tmpdir(), 'harbor-node-down-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const pair = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
mkdirSync(join(root, 'app', 'certs'), { recursive: true });
copyFileSync(pair.certFile, join(root, 'app', 'certs', 'harbor.crt'));
copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'harbor.key'));

t.test('a node that is down does not stop the sidecar; it registers once the node is up', async (t) => {
  const range = await freeRange(4);
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const nodeArgs = [
    '--api',
    `127.0.0.1:${apiPort}`,
    '--ports',
    `${range.first}-${range.last}`,
    '--state',
    join(root, 'state.json'),
  ];
  // Provision the service, then take the node down: its state file keeps the service for the restart.
  const first = await startNode(nodeArgs);
  t.teardown(() => {
    first.kill('SIGKILL');
  });
  const created = await call(api, 'POST', '/v1/services', { name: 'shop-https', int_port: await freePort() });
  t.equal(created.status, 201);
  const creds = created.json as { name: string; port: number; int_port: number };
  first.kill('SIGTERM');
  t.same(await exited(first), { code: 0, signal: null });

  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const sidecar = startSidecar(['run', '--listen', '127.0.0.1'], {
    STACKATO_SERVICES: JSON.stringify({ 'shop-https': creds }),
    PORT: String(backend.port),
    HARBOR_APP_ROOT: join(root, 'app'),
    HARBOR_NODE_URL: api,
    HARBOR_NODE_TOKEN: TOKEN,
    HARBOR_INSTANCE_HOST: '127.0.0.1',
    CF_INSTANCE_GUID: 'instance-late',
  });
  t.teardown(() => {
    sidecar.kill('SIGKILL');
  });
  const warning = JSON.parse(await waitForOutput(sidecar, /"code":"W_NODE_UNREACHABLE"/)) as Record<
    string,
    unknown
  >;
  t.equal(warning.service, 'shop-https');
  t.equal(warning.node, api);
  t.equal(warning.reason, 'ECONNREFUSED', 'the reason is the refused connection');

  const direct = await httpsGet(creds.int_port, read(pair.certFile), '/while-node-down');
  t.equal(direct.status, 200, 'HTTPS on int_port serves while the node is down');
  t.equal(direct.body, 'backend:GET /while-node-down');

  const second = await startNode(nodeArgs);
  t.teardown(() => {
    second.kill('SIGKILL');
  });
  // Backoff is 1 s, 2 s, 4 s...: the next retry comes within a few seconds of the node's return.
  await waitForOutput(sidecar, /"msg":"registered with the Harbor node after failures"/);
  const service = await call(api, 'GET', `/v1/services/${creds.name}`);
  t.same(
    (service.json as { instances: unknown[] }).instances,
    [{ id: 'instance-late', host: '127.0.0.1', port: creds.int_port, ttl: 30, state: 'up' }],
    'the instance is on the restarted node',
  );
  const viaNode = await httpsGet(creds.port, read(pair.certFile), '/via-node');
  t.equal(viaNode.status, 200, 'traffic flows through the external port the node kept across its restart');
  t.equal(viaNode.body, 'backend:GET /via-node');

  sidecar.kill('SIGTERM');
  t.same(await exited(sidecar), { code: 0, signal: null });
  const after = await call(api, 'GET', `/v1/services/${creds.name}`);
  t.same((after.json as { instances: unknown[] }).instances, [], 'deregistered on SIGTERM');
  second.kill('SIGTERM');
  t.same(await exited(second), { code: 0, signal: null });
});
