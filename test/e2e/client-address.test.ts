// The client's address end to end: a client on 127.0.0.55 -> harbor-node
// (--proxy-protocol v2) -> harbor-sidecar's HTTPS port (--trust-proxy) -> the
// app, which sees 127.0.0.55 in X-Forwarded-For and Forwarded, not the node.
import { spawn } from 'node:child_process';
import t from 'tap';
import { SIDECAR_BIN } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { startEchoBackend, tlsGetAfter } from '../https/fixtures/helpers.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

const CERTS = new URL('../../certs-example/', import.meta.url).pathname;

t.test('client -> node (PROXY v2) -> sidecar (trusted) -> app: the app sees the client', async (t) => {
  const ports = await freeRange(3);
  const intPort = ports.last;
  const app = await startEchoBackend();
  t.teardown(() => app.close());
  const node = await startNodeProcess(t, [
    '--ports',
    `${ports.first}-${ports.first + 1}`,
    '--proxy-protocol',
    'v2',
  ]);
  const creds = (await api(node.api, 'POST', '/v1/services', { name: 'web-https', int_port: intPort })).json;
  const sidecar = spawn(
    process.execPath,
    [SIDECAR_BIN, 'run', '--listen', '127.0.0.1', '--trust-proxy', '127.0.0.1'],
    {
      env: {
        PATH: process.env.PATH ?? '',
        STACKATO_SERVICES: JSON.stringify({ 'web-https': creds }),
        HARBOR_BACKEND: `127.0.0.1:${(app.address as { port: number }).port}`,
        HARBOR_CERTS_DIR: CERTS,
        HARBOR_ADMIN: 'off',
        HARBOR_NODE_URL: node.api,
        HARBOR_INSTANCE_ID: 'guid-client-address',
        HARBOR_INSTANCE_HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  sidecar.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  t.teardown(() => sidecar.kill('SIGKILL'));
  await waitFor(
    async () => (await api(node.api, 'GET', `/v1/services/${creds.name}`)).json.instances.length === 1,
    'the sidecar to register',
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${output}`);
  });

  // The client comes from another loopback address than the node's own.
  const answer = await tlsGetAfter(creds.port, { localAddress: '127.0.0.55' });
  t.match(answer, /^HTTP\/1\.1 200/);
  t.match(answer, /"x-forwarded-for":"127\.0\.0\.55"/, 'X-Forwarded-For is the client, not the node');
  t.match(answer, /"forwarded":"[^"]*for=127\.0\.0\.55/, 'Forwarded too');
});
