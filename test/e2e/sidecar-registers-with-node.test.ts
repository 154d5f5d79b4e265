// The whole path with the real CLIs: a harbor-node provisions two services
// through its API; `harbor-sidecar run`, given the returned credentials as
// STACKATO_SERVICES and HARBOR_NODE_URL/HARBOR_NODE_TOKEN, registers this
// instance for both, keeps it registered (a refresh puts back an instance the
// node lost), carries traffic from the node's external ports to the apps,
// and removes the instance on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { cleanEnv, exited, NODE_BIN, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet } from '../helpers/net.js';
import { DEADLINE_MS, eventually } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';

const TOKEN = 'e2e-node-token';
const INSTANCE = 'instance-a';

interface Credentials {
  readonly name: string;
  readonly port: number;
  readonly int_port: number;
  readonly [field: string]: unknown;
}

interface InstanceView {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly ttl: number | null;
  readonly state: string;
}

async function startNode(args: string[]): Promise<{ child: ChildProcess; api: string }> {
  const child = spawn(
    process.execPath,
    [NODE_BIN, '--api', '127.0.0.1:0', '--listen', '127.0.0.1', ...args],
    {
      env: cleanEnv({ HARBOR_NODE_TOKEN: TOKEN }),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const line = await waitForOutput(child, /"msg":"harbor-node ready"/);
  return { child, api: `http://${(JSON.parse(line) as { api: string }).api}` };
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

async function instancesOf(api: string, id: string): Promise<InstanceView[]> {
  const answer = await call(api, 'GET', `/v1/services/${id}`);
  if (answer.status !== 200) throw new Error(`GET /v1/services/${id}: ${answer.status}`);
  return (answer.json as { instances: InstanceView[] }).instances;
}

function tcpRoundTrip(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of stream on ${port}; got ${JSON.stringify(text)}`));
    }, DEADLINE_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

const root = mkdtempSync(join(tmpdir(), 'harbor-registers-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const pair = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
mkdirSync(join(root, 'app', 'certs'), { recursive: true });
copyFileSync(pair.certFile, join(root, 'app', 'certs', 'harbor.crt'));
copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'harbor.key'));

t.test('registers with a real harbor-node, refreshes, carries traffic, deregisters on SIGTERM', async (t) => {
  const range = await freeRange(6);
  const node = await startNode([
    '--ports',
    `${range.first}-${range.last}`,
    '--state',
    join(root, 'state.json'),
  ]);
  t.teardown(() => {
    node.child.kill('SIGKILL');
  });
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const ldap = createServer((socket) => {
    socket.on('error', () => {});
    socket.end('ldap-app\n');
  });
  await new Promise<void>((resolve) => ldap.listen(0, '127.0.0.1', resolve));
  t.teardown(() => ldap.close());

  const created = {
    'shop-https': (
      await call(node.api, 'POST', '/v1/services', { name: 'shop-https', int_port: await freePort() })
    ).json as Credentials,
    'ldap-port': (
      await call(node.api, 'POST', '/v1/services', { name: 'ldap-port', int_port: await freePort() })
    ).json as Credentials,
  };
  const shop = created['shop-https'];
  const ldapCreds = created['ldap-port'];
  t.ok(shop.port >= range.first && shop.port <= range.last, 'the node handed out a port of its range');
  t.same(await instancesOf(node.api, shop.name), [], 'no instance before the sidecar starts');

  const sidecar = startSidecar(
    [
      'run',
      '--listen',
      '127.0.0.1',
      '--forward',
      `ldap-port=127.0.0.1:${(ldap.address() as { port: number }).port}`,
    ],
    {
      STACKATO_SERVICES: JSON.stringify(created),
      PORT: String(backend.port),
      HARBOR_APP_ROOT: join(root, 'app'),
      HARBOR_NODE_URL: node.api,
      // Refreshes every 2 s (ttl/3): the one a deleted instance waits for comes soon.
      HARBOR_NODE_TTL: '6s',
      HARBOR_NODE_TOKEN: TOKEN,
      HARBOR_INSTANCE_HOST: '127.0.0.1',
      CF_INSTANCE_GUID: INSTANCE,
    },
  );
  t.teardown(() => {
    sidecar.kill('SIGKILL');
  });
  await waitForOutput(sidecar, /"msg":"harbor-sidecar serving"/);

  const expected = (creds: Credentials): InstanceView[] => [
    { id: INSTANCE, host: '127.0.0.1', port: creds.int_port, ttl: 6, state: 'up' },
  ];
  for (const [name, creds] of Object.entries(created)) {
    let seen: InstanceView[] = [];
    await eventually(async () => {
      seen = await instancesOf(node.api, creds.name);
      return seen.length > 0;
    });
    t.same(seen, expected(creds), `the instance shows up on the node for ${name}`);
  }

  // client -> node's external port -> sidecar (TLS ends here) -> app
  const answer = await httpsGet(shop.port, read(pair.certFile), '/via-node');
  t.equal(answer.status, 200);
  t.equal(answer.body, 'backend:GET /via-node');
  t.equal(backend.seen.at(-1)?.['x-forwarded-port'], String(shop.port), 'the app is told the external port');
  t.equal(await tcpRoundTrip(ldapCreds.port, ''), 'ldap-app\n', 'TCP through the node and the --forward');

  // The node loses the instance (an operator deletes it): the sidecar's next refresh (every ttl/3) puts it back.
  t.equal((await call(node.api, 'DELETE', `/v1/services/${shop.name}/instances/${INSTANCE}`)).status, 204);
  t.same(await instancesOf(node.api, shop.name), []);
  const back = await eventually(async () => (await instancesOf(node.api, shop.name)).length === 1);
  t.ok(back, 'a refresh registers the instance again');
  t.same(await instancesOf(node.api, shop.name), expected(shop));

  sidecar.kill('SIGTERM');
  t.same(await exited(sidecar), { code: 0, signal: null });
  t.same(await instancesOf(node.api, shop.name), [], 'deregistered from shop-https on SIGTERM');
  t.same(await instancesOf(node.api, ldapCreds.name), [], 'deregistered from ldap-port on SIGTERM');
  t.equal(
    await tcpRoundTrip(ldapCreds.port, ''),
    '',
    'the node closes a connection with no instance at once',
  );

  node.child.kill('SIGTERM');
  t.same(await exited(node.child), { code: 0, signal: null });
});

t.test(
  'registration only: the app listens on int_port itself; the sidecar registers it and stays up',
  async (t) => {
    const range = await freeRange(4);
    const node = await startNode(['--ports', `${range.first}-${range.last}`]);
    t.teardown(() => {
      node.child.kill('SIGKILL');
    });
    const created = await call(node.api, 'POST', '/v1/services', {
      name: 'znc-port',
      int_port: await freePort(),
    });
    const creds = created.json as Credentials;
    // The app (an IRC bouncer, say) listens on int_port itself: nothing for the sidecar to serve.
    const app = createServer((socket) => {
      socket.on('error', () => {});
      socket.end(':znc NOTICE * :hello\r\n');
    });
    await new Promise<void>((resolve) => app.listen(creds.int_port, '127.0.0.1', resolve));
    t.teardown(() => app.close());

    // The admin endpoint is off (cleanEnv), so no listener of the sidecar's own holds its event loop.
    const sidecar = startSidecar(['run'], {
      STACKATO_SERVICES: JSON.stringify({ 'znc-port': creds }),
      HARBOR_NODE_URL: node.api,
      HARBOR_NODE_TOKEN: TOKEN,
      HARBOR_INSTANCE_HOST: '127.0.0.1',
      VCAP_APPLICATION: JSON.stringify({ instance_id: 'vcap-instance-7', name: 'znc' }),
    });
    t.teardown(() => {
      sidecar.kill('SIGKILL');
    });
    const registered = JSON.parse(
      await waitForOutput(sidecar, /"msg":"registered with the Harbor node"/),
    ) as Record<string, unknown>;
    t.equal(
      registered.instance,
      'vcap-instance-7',
      "the instance id comes from VCAP_APPLICATION's instance_id",
    );
    t.same(await instancesOf(node.api, creds.name), [
      { id: 'vcap-instance-7', host: '127.0.0.1', port: creds.int_port, ttl: 30, state: 'up' },
    ]);
    t.equal(
      await tcpRoundTrip(creds.port, ''),
      ':znc NOTICE * :hello\r\n',
      'the node reaches the app itself',
    );

    // Still running a while later (it must keep refreshing), then a clean stop that deregisters.
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(sidecar.exitCode, null, 'the sidecar is still running');
    sidecar.kill('SIGTERM');
    t.same(await exited(sidecar), { code: 0, signal: null });
    t.same(await instancesOf(node.api, creds.name), [], 'deregistered on SIGTERM');
  },
);
