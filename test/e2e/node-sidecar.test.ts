// The whole system on one machine: client -> harbor-node's external port ->
// harbor-sidecar's --forward on int_port -> the app. The sidecar registers
// with the node, deregisters on SIGTERM, and keeps serving while the node is
// down.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { refusingPort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

const SIDECAR_BIN = fileURLToPath(new URL('../../dist/cli/sidecar.js', import.meta.url));

function startSidecar(
  t: Test,
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output(): string; exited: Promise<number | null> } {
  if (!existsSync(SIDECAR_BIN)) throw new Error(`${SIDECAR_BIN} is missing: run npm run build first`);
  const child = spawn(process.execPath, [SIDECAR_BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HARBOR_ADMIN: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => text, exited };
}

t.test('client -> node -> sidecar --forward -> app; registered, then removed on SIGTERM', async (t) => {
  const ports = await freeRange(3);
  const intPort = ports.last;
  const app = await tagServer(t, 'app');
  const node = await startNodeProcess(t, ['--ports', `${ports.first}-${ports.first + 1}`], {
    HARBOR_NODE_TOKEN: 'tok',
  });
  const creds = (await api(node.api, 'POST', '/v1/services', { name: 'tcp-app', int_port: intPort }, 'tok'))
    .json;
  const sidecar = startSidecar(t, ['run', '--forward', `tcp-app=127.0.0.1:${app.port}`], {
    STACKATO_SERVICES: JSON.stringify({ 'tcp-app': creds }),
    HARBOR_NODE_URL: node.api,
    HARBOR_NODE_TOKEN: 'tok',
    CF_INSTANCE_GUID: 'guid-e2e',
    HARBOR_INSTANCE_HOST: '127.0.0.1',
  });
  const instances = async () =>
    (await api(node.api, 'GET', `/v1/services/${creds.name}`, undefined, 'tok')).json.instances;
  await waitFor(async () => (await instances()).length === 1, 'the sidecar to register', 15_000).catch(
    (e) => {
      throw new Error(`${e.message}\nsidecar:\n${sidecar.output()}`);
    },
  );
  t.match(await instances(), [{ id: 'guid-e2e', host: '127.0.0.1', port: intPort, state: 'up' }]);
  t.equal(await tcpRequest(creds.port), 'app', 'through node and sidecar to the app');
  sidecar.child.kill('SIGTERM');
  t.equal(await sidecar.exited, 0);
  t.same(await instances(), [], 'deregistered on SIGTERM');
});

t.test('a node that is down does not stop the sidecar serving', async (t) => {
  const intPort = (await freeRange(1)).first;
  const app = await tagServer(t, 'app');
  const nodePort = await refusingPort();
  const creds = {
    hostname: 'h',
    host: '127.0.0.1',
    port: 35000,
    name: 'svc-1',
    node_id: 'n',
    int_port: intPort,
  };
  const sidecar = startSidecar(t, ['run', '--forward', `tcp-app=127.0.0.1:${app.port}`], {
    STACKATO_SERVICES: JSON.stringify({ 'tcp-app': creds }),
    HARBOR_NODE_URL: `http://127.0.0.1:${nodePort}`,
    CF_INSTANCE_GUID: 'guid-down',
    HARBOR_INSTANCE_HOST: '127.0.0.1',
  });
  await waitFor(
    () => sidecar.output().includes('W_NODE_UNREACHABLE'),
    'the unreachable-node warning',
    15_000,
  ).catch((e) => {
    throw new Error(`${e.message}\nsidecar:\n${sidecar.output()}`);
  });
  t.equal(await tcpRequest(intPort), 'app', 'int_port still forwards to the app');
  t.equal(sidecar.child.exitCode, null, 'still running');
  sidecar.child.kill('SIGTERM');
  t.equal(await sidecar.exited, 0);
});
