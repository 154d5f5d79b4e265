// A cluster of two harbor-nodes on Redis, both with the kernel data plane, each
// in a network namespace of its own (two machines, in effect) joined by a veth
// pair whose addresses are all in 127.0.0.0/8 (with scope global: the kernel
// gives a 127 address host scope, and masquerade finds no address to use). A service created through one
// node and instances registered through the other are programmed into both
// kernels; each node's clients are balanced round-robin by its own kernel (the
// userspace listeners see nothing); the node whose instances are on the other
// machine masquerades toward them; a deletion leaves both tables. Root, as in CI.
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import t from 'tap';
import { MASQUERADE_MARK } from '../../../src/node/dataplane/rules.js';
import { HAVE_REDIS, startRedis } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';
import { freeRange } from '../fixtures/ranges.js';
import { api, startNodeProcess } from '../fixtures/spawn.js';
import { HERE, inNetworkNamespace, linkNamespaces, netnsUnavailable, PEER } from './netns.js';

const unavailable = netnsUnavailable() || (!HAVE_REDIS && 'needs redis-server, as in CI');
if (unavailable === false) inNetworkNamespace(import.meta.url);

/** A service's TCP chain in this namespace (`peer`: in the other), or '' while there is none. */
function tcpChain(port: number, peer = false): string {
  try {
    return execFileSync(
      peer ? 'ip' : 'nft',
      [...(peer ? ['netns', 'exec', 'peer', 'nft'] : []), 'list', 'chain', 'ip', 'harbor', `s${port}_tcp`],
      { encoding: 'utf8', stdio: 'pipe' },
    );
  } catch {
    return '';
  }
}

/** A TCP server on HERE that writes its name to each connection. */
async function nameServer(name: string) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, HERE, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The first byte a connection to `host:port` gets, from this namespace or (`peer`) the other. */
function whoAnswers(host: string, port: number, peer = false): Promise<string> {
  const client = `const s = require('node:net').connect(${port}, '${host}');
    s.once('data', (c) => { process.stdout.write(c.toString().slice(0, 1)); s.destroy(); });
    s.on('error', (e) => { process.stdout.write('error ' + e.code); });`;
  const [command, ...args] = [
    ...(peer ? ['ip', 'netns', 'exec', 'peer'] : []),
    process.execPath,
    '-e',
    client,
  ];
  return new Promise((resolve) =>
    execFile(command!, args, { timeout: 10_000 }, (e, out) => resolve(e ? `failed: ${e.message}` : out)),
  );
}

t.test(
  'two nodes on Redis, each programming its own kernel; a Redis that refuses one',
  { skip: unavailable },
  async (t) => {
    linkNamespaces(t);
    const redis = await startRedis(t, { alsoOn: HERE });
    const range = await freeRange(4);
    const common = [
      '--store',
      redis.url,
      '--ports',
      `${range.first}-${range.last}`,
      '--node-id',
      'harbor_kernel_cluster',
      '--dataplane',
      'nftables',
      '--check-interval',
      '1s',
    ];
    const here = await startNodeProcess(t, [...common, '--listen', '127.0.0.1', '--api', '127.0.0.1:0']);
    const there = await startNodeProcess(t, [...common, '--listen', PEER, '--api', `${PEER}:0`], {}, [
      'ip',
      'netns',
      'exec',
      'peer',
    ]);
    const a = await nameServer('A');
    const b = await nameServer('B');
    t.teardown(() => Promise.all([a.close(), b.close()]));

    for (const node of [here, there])
      await waitFor(
        async () => (await api(node.api, 'GET', '/v1/services')).json.store.connected === true,
        `${node.api} to reach the store`,
      );

    // Created through the node on the other machine, instances registered through this one.
    const created = await api(there.api, 'POST', '/v1/services', { name: 'tcp-both-machines' });
    t.equal(created.status, 201, 'created through the peer node', { answer: created.json });
    const { name: id, port } = created.json as { name: string; port: number };
    for (const [instance, server] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const put = await api(here.api, 'PUT', `/v1/services/${id}/instances/${instance}`, {
        host: HERE,
        port: server.port,
      });
      t.equal(put.status, 201, `instance ${instance} registered through this node`);
    }
    await waitFor(() => /mod 2/.test(tcpChain(port)), 'this kernel to balance over both');
    await waitFor(() => /mod 2/.test(tcpChain(port, true)), "the peer's kernel to balance over both");

    // This machine: its loopback clients, its local instances.
    let answers = '';
    for (let i = 0; i < 4; i++) answers += await whoAnswers('127.0.0.1', port);
    t.equal(answers, 'ABAB', 'round-robin by this kernel');
    // The other machine: a client there, the instances here.
    answers = '';
    for (let i = 0; i < 4; i++) answers += await whoAnswers(PEER, port, true);
    t.equal(answers, 'ABAB', "round-robin by the peer's kernel, across the link");
    // Flows toward an instance on another machine carry the mark that masquerades them.
    const peerFlows = execFileSync(
      'ip',
      ['netns', 'exec', 'peer', 'conntrack', '-L', '-p', 'tcp', '--orig-port-dst', String(port)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .split('\n')
      .filter((line) => line.includes(`dport=${port}`));
    t.equal(peerFlows.length, 4, "the peer's conntrack has the four flows", { peerFlows });
    t.ok(
      peerFlows.every(
        (line) => line.includes(`mark=${Number(MASQUERADE_MARK)}`) && line.includes(`src=${HERE}`),
      ),
      'each sent to an instance here and marked for masquerade',
      { peerFlows },
    );
    for (const [node, where] of [
      [here, 'this node'],
      [there, 'the peer node'],
    ] as const) {
      const view = (await api(node.api, 'GET', `/v1/services/${id}`)).json;
      t.equal(view.counters?.tcp?.connectionsTotal, 0, `${where}: none through its userspace listener`);
      await waitFor(
        async () => ((await api(node.api, 'GET', `/v1/services/${id}`)).json.kernel?.flows ?? 0) >= 4,
        `${where}: its kernel to count the four flows`,
      );
    }

    t.equal((await api(here.api, 'DELETE', `/v1/services/${id}`)).status, 204, 'deleted through this node');
    await waitFor(() => tcpChain(port) === '' && tcpChain(port, true) === '', 'both tables to drop it');
    t.pass('gone from both kernels');

    // A Redis on another machine that refuses it: the node's answers say why.
    // Protected mode is Redis's default: with no password, clients off its loopback are refused.
    const protectedPort = (await freeRange(1)).first;
    const protectedRedis = spawn(
      'redis-server',
      ['--port', String(protectedPort), '--bind', '127.0.0.1', HERE, '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    t.teardown(() => protectedRedis.kill('SIGKILL'));
    const range2 = await freeRange(2);
    const refused = await startNodeProcess(
      t,
      [
        '--store',
        `redis://${HERE}:${protectedPort}`,
        '--ports',
        `${range2.first}-${range2.last}`,
        '--api',
        `${PEER}:0`,
      ],
      {},
      ['ip', 'netns', 'exec', 'peer'],
    );
    let answer = { status: 0, json: {} as { error?: string } };
    await waitFor(async () => {
      answer = await api(refused.api, 'POST', '/v1/services', { name: 'tcp-refused' });
      return /protected mode/.test(answer.json.error ?? '');
    }, 'an answer naming protected mode');
    t.equal(answer.status, 503);
    t.match(answer.json.error, `store redis://${HERE}:${protectedPort} cannot be reached`);
    t.match(answer.json.error, /set requirepass and put the password in the store URL, or protected-mode no/);
  },
);
