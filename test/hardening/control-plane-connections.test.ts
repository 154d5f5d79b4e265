// The two control-plane servers (harbor-node's API, the sidecar's admin
// endpoint) against clients that connect and say nothing, or half a head
// (issue 9, items 2 and 19), with the built programs:
//   - 100 such connections do not lock a probe out (the cap makes room);
//   - SIGTERM completes by the drain deadline while they are held open.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import { exited, runSidecar, startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { startNodeProcess } from '../node/fixtures/spawn.js';

/** Opens `count` connections to host:port: half say nothing, half send part of a request head. */
async function holdConnections(t: Test, port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<void>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port }, () => {
            if (i % 2 === 1) socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // no blank line: half a head
            resolve();
          });
          socket.on('error', () => resolve());
          sockets.push(socket);
        }),
    ),
  );
  return sockets;
}

/** GET `path`'s status (0: no answer within 2 s); over TLS trusting `ca` when it is given. */
function probe(port: number, path: string, ca?: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path, agent: false };
    const onAnswer = (res: IncomingMessage): void => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = ca === undefined ? get(options, onAnswer) : httpsGet({ ...options, ca }, onAnswer);
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

t.test('harbor-node: idle and half-open API clients neither lock out probes nor stall SIGTERM', async (t) => {
  const range = await freeRange(2);
  const node = await startNodeProcess(t, [
    '--ports',
    `${range.first}-${range.last}`,
    '--drain-timeout',
    '2s',
  ]);
  const port = Number(new URL(node.api).port);
  const held = await holdConnections(t, port, 100);
  t.equal(await probe(port, '/healthz'), 200, '/healthz answers with 100 idle connections held');
  await waitFor(async () => (await probe(port, '/v1/services')) === 200, 'the API to answer');
  const open = held.filter((s) => !s.destroyed).length;
  t.ok(open > 0, `${open} idle or half-open connections open at SIGTERM`);
  const stoppedAt = Date.now();
  node.child.kill('SIGTERM');
  await waitFor(() => node.child.exitCode !== null, 'the node to exit');
  t.equal(node.child.exitCode, 0, 'SIGTERM completes with the connections held by their clients');
  t.comment(`stopped in ${Date.now() - stoppedAt} ms (drain deadline 2 s)`);
});

t.test(
  'harbor-node over TLS: clients that never handshake, or handshake and say half a head, lock out nothing',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-api-guard-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const made = runSidecar(['certs', 'generate', '--name', 'api', '--host', '127.0.0.1', '--out', dir]);
    t.equal(made.status, 0, made.stderr);
    const ca = readFileSync(join(dir, 'api.crt'));
    const range = await freeRange(2);
    const node = await startNodeProcess(t, [
      '--ports',
      `${range.first}-${range.last}`,
      '--drain-timeout',
      '2s',
      '--api-cert',
      join(dir, 'api.crt'),
      '--api-key',
      join(dir, 'api.key'),
    ]);
    const port = Number(new URL(node.api).port);
    const held = await holdConnections(t, port, 50); // TCP only: no handshake
    await Promise.all(
      Array.from(
        { length: 50 },
        () =>
          new Promise<void>((resolve) => {
            const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
              socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // half a head
              resolve();
            });
            socket.on('error', () => resolve());
            held.push(socket);
          }),
      ),
    );
    await waitFor(
      async () => (await probe(port, '/healthz', ca)) === 200,
      '/healthz to answer over TLS with 100 clients held',
    );
    t.pass('/healthz answers over TLS');
    node.child.kill('SIGTERM');
    await waitFor(() => node.child.exitCode !== null, 'the node to exit');
    t.equal(node.child.exitCode, 0, 'SIGTERM completes with the connections held by their clients');
  },
);

t.test('harbor-sidecar: idle admin connections never lock out /healthz; SIGTERM completes', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'harbor-admin-guard-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const adminPort = await freePort();
  const intPort = await freePort();
  const child = startSidecar(
    ['run', '--listen', '127.0.0.1', '--forward', `tcp-x=127.0.0.1:${await freePort()}`],
    {
      STACKATO_SERVICES: JSON.stringify({ 'tcp-x': { int_port: intPort, port: 35001 } }),
      HARBOR_ADMIN: `127.0.0.1:${adminPort}`,
    },
    root,
  );
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /admin endpoint on/);
  await holdConnections(t, adminPort, 100);
  for (let i = 0; i < 5; i++) {
    t.equal(
      await probe(adminPort, '/healthz'),
      200,
      `probe ${i + 1} answered with 100 idle connections held`,
    );
  }
  child.kill('SIGTERM');
  t.same(await exited(child), { code: 0, signal: null }, 'SIGTERM: a clean exit');
});
