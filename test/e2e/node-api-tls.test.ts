// harbor-node's API over TLS (--api-cert / --api-key), with the built
// programs: a pair that cannot serve stops the node (exit 78); a sidecar
// registers through it trusting a private CA (HARBOR_NODE_CA); /status shows
// the certificate; the dashboard's session cookie is Secure; SIGHUP swaps a
// new pair in while the old connections go on; the sidecar's TLS policy is
// served before and after it.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t, { type Test } from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { spawnNode, startNodeProcess } from '../node/fixtures/spawn.js';

const TOKEN = 'tls-e2e-token';

const root = mkdtempSync(join(tmpdir(), 'harbor-api-tls-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const caKey = factory.key();
const caFile = factory.cert({ cn: 'Harbor test CA', keyFile: caKey, ca: true });
const ca = read(caFile);

function leaf(cn: string): { cert: string; key: string } {
  const key = factory.key();
  const cert = factory.cert({
    cn,
    hosts: ['127.0.0.1'],
    keyFile: key,
    issuer: { certFile: caFile, keyFile: caKey },
  });
  return { cert, key };
}

/** One request over TLS trusting the test CA: status, headers and body. */
function call(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method, headers, ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The version and suite a client offering `options` is served, or 'refused'. */
function negotiated(port: number, options: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, ...options }, () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().standardName}`);
      socket.destroy();
    });
    socket.on('error', () => resolve('refused'));
  });
}

/** The sidecar's TLS policy, served by the node's API: AES-128-GCM first, ChaCha20 when the client prefers it, AEAD only. */
async function servesTheTlsPolicy(t: Test, port: number, when: string): Promise<void> {
  t.equal(await negotiated(port), 'TLSv1.3 TLS_AES_128_GCM_SHA256', `${when}: the server's first suite`);
  t.equal(
    await negotiated(port, { ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256' }),
    'TLSv1.3 TLS_CHACHA20_POLY1305_SHA256',
    `${when}: a client that prefers ChaCha20 gets it`,
  );
  t.equal(
    await negotiated(port, {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256',
    }),
    'refused',
    `${when}: a CBC suite is not served`,
  );
}

function servedName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

t.test('a pair that cannot serve stops the node with the setting or file named (exit 78)', async (t) => {
  const range = await freeRange(2);
  const ports = ['--ports', `${range.first}-${range.last}`, '--api', '127.0.0.1:0'];
  const a = leaf('a');
  const half = spawnNode(t, [...ports, '--api-cert', a.cert]);
  t.equal(await half.exited, 78);
  t.match(half.output(), /--api-cert .*needs --api-key \(HARBOR_NODE_API_KEY\) too/);
  const mismatched = spawnNode(t, [...ports, '--api-cert', a.cert, '--api-key', leaf('b').key]);
  t.equal(await mismatched.exited, 78);
  t.match(mismatched.output(), /E_KEY_MISMATCH/);
});

t.test('a sidecar registers over TLS trusting a private CA; /status, the cookie, SIGHUP', async (t) => {
  const dir = mkdtempSync(join(root, 'node-'));
  const first = leaf('api-one');
  copyFileSync(first.cert, join(dir, 'api.crt'));
  copyFileSync(first.key, join(dir, 'api.key'));
  const range = await freeRange(4);
  const node = await startNodeProcess(
    t,
    [
      '--ports',
      `${range.first}-${range.last}`,
      '--api-cert',
      join(dir, 'api.crt'),
      '--api-key',
      join(dir, 'api.key'),
    ],
    { HARBOR_NODE_TOKEN: TOKEN },
  );
  const url = node.api;
  t.match(url, /^https:/);
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  const status = JSON.parse((await call(url, 'GET', '/status', auth)).text);
  t.match(status.api, { tls: { subject: /CN=api-one/, last_reload: null } }, '/status shows the certificate');

  const login = await call(
    url,
    'POST',
    '/login',
    { 'content-type': 'application/x-www-form-urlencoded' },
    `token=${TOKEN}`,
  );
  t.equal(login.status, 303);
  t.match(String(login.headers['set-cookie']), /; Secure/, 'the session cookie is never sent in clear');

  const intPort = await freePort();
  const created = await call(
    url,
    'POST',
    '/v1/services',
    auth,
    JSON.stringify({ name: 'tcp-app', int_port: intPort }),
  );
  t.equal(created.status, 201, `the service is created (${created.text})`);
  const credentials = JSON.parse(created.text);
  const app = await freePort();
  const sidecar = startSidecar(['run', '--listen', '127.0.0.1', '--forward', `tcp-app=127.0.0.1:${app}`], {
    STACKATO_SERVICES: JSON.stringify({ 'tcp-app': credentials }),
    HARBOR_NODE_URL: url,
    HARBOR_NODE_TOKEN: TOKEN,
    HARBOR_NODE_CA: caFile,
    HARBOR_INSTANCE_HOST: '127.0.0.1',
    CF_INSTANCE_GUID: 'tls-instance',
  });
  t.teardown(() => sidecar.kill('SIGKILL'));
  await waitForOutput(sidecar, /"msg":"harbor-sidecar serving"/);
  await waitFor(async () => {
    const answer = await call(url, 'GET', `/v1/services/${credentials.name}`, auth);
    return JSON.parse(answer.text).instances.length === 1;
  }, 'the sidecar to register over TLS');
  t.pass('registered through the TLS API with HARBOR_NODE_CA');

  // Rotation: a new pair in place, then SIGHUP (the file watcher may see it first: either serves it).
  const port = Number(new URL(url).port);
  const open = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => resolve(socket));
    socket.on('error', reject);
  });
  t.teardown(() => open.destroy());
  const second = leaf('api-two');
  copyFileSync(second.cert, join(dir, 'api.crt'));
  copyFileSync(second.key, join(dir, 'api.key'));
  await servesTheTlsPolicy(t, port, 'at start');
  node.child.kill('SIGHUP');
  await waitFor(async () => (await servedName(port)) === 'api-two', 'the new pair to serve');
  await servesTheTlsPolicy(t, port, 'after the swap');
  const answer = await new Promise<string>((resolve) => {
    open.once('data', (c: Buffer) => resolve(c.toString()));
    open.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
  t.match(answer, /^HTTP\/1\.1 200/, 'a connection made before the swap is still answered');

  sidecar.kill('SIGTERM');
  t.same(await exited(sidecar), { code: 0, signal: null });
  const after = JSON.parse((await call(url, 'GET', `/v1/services/${credentials.name}`, auth)).text);
  t.same(after.instances, [], 'deregistered over TLS on SIGTERM');
  node.child.kill('SIGTERM');
  t.equal(await node.exited, 0);
});
