// The kernel data plane (--dataplane nftables), as root in a network namespace
// of its own: exact round-robin over three echo servers; a dead instance out of
// rotation after one check interval with no client error after it; UDP failover
// of a live flow to the next instance; an established connection through rule
// updates and a node restart; byte counters against what iperf3 moved; and the
// userspace listener serving while the table is gone, until it is rebuilt.
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { createLogger } from '../../../src/log/index.js';
import { HarborNode, type HarborNodeOptions, StateFile } from '../../../src/node/index.js';
import { exited, NODE_BIN, waitForOutput } from '../../helpers/cli.js';
import { acceptsConnections } from '../../helpers/net.js';
import { DEADLINE_MS, eventually, waitFor } from '../../helpers/wait.js';
import { startNode, testNodeOptions } from '../fixtures/node.js';
import { freeRange } from '../fixtures/ranges.js';
import { HERE, inNetworkNamespace, linkNamespaces, netnsUnavailable, PEER } from './netns.js';

const unavailable = netnsUnavailable();
if (unavailable === false) inNetworkNamespace(import.meta.url);

const CHECK_MS = 300;

/**
 * TCP segments this namespace's kernel has resent (/proc/net/snmp, Tcp RetransSegs): the test
 * runs in a network namespace of its own, so they are its own connections'.
 */
function retransmittedSegments(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Tcp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const at = names.indexOf('RetransSegs');
  if (at < 0 || values[at] === undefined) throw new Error('/proc/net/snmp: no Tcp RetransSegs');
  return Number(values[at]);
}

/** The most payload one resent segment carries on loopback (MTU 65536). */
const MAX_LOOPBACK_SEGMENT = 65_536;

async function newNode(options: Partial<HarborNodeOptions> = {}): Promise<HarborNode> {
  const node = new HarborNode({
    ...testNodeOptions(options.range ?? (await freeRange(8))),
    dataplane: 'nftables',
    dataplanePollMs: 100,
    retryMs: CHECK_MS,
    ...options,
  });
  await node.start();
  return node;
}

/** A TCP server that writes its name to each connection and then echoes. */
async function nameServer(name: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.write(name);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.emit('close');
      }),
  };
}

/** Connects to `port`, reads the first byte (the server's name), closes. */
function whoAnswers(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('data', (c: Buffer) => {
      resolve(c.toString().slice(0, 1));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

function chain(name: string): string {
  return listed('chain', name);
}

/** `nft list` of one chain, set or map of the ip harbor table; '' when it is not there. */
function listed(kind: 'chain' | 'set' | 'map', name: string): string {
  try {
    return execFileSync('nft', ['list', kind, 'ip', 'harbor', name], { encoding: 'utf8', stdio: 'pipe' });
  } catch {
    return '';
  }
}

t.test('kernel data plane', { skip: unavailable }, async (t) => {
  t.test(
    'round-robin ABCABC by the kernel; a dead instance out after one check, no client error',
    async (t) => {
      // With its API: /status and /metrics are read through it below.
      const { node, call } = await startNode(t, {
        range: await freeRange(8),
        dataplane: 'nftables',
        dataplanePollMs: 100,
        retryMs: CHECK_MS,
      });
      const servers = [await nameServer('A'), await nameServer('B'), await nameServer('C')];
      t.teardown(() => Promise.all(servers.map((s) => s.close())));
      const service = await node.createService('web');
      const id = service.name;
      for (const [i, s] of servers.entries())
        await node.putInstance(id, `i${i}`, { host: '127.0.0.1', port: s.port });
      await waitFor(() => /numgen inc mod 3/.test(chain(`s${service.port}_tcp`)), 'the service chain');
      const order: string[] = [];
      for (let i = 0; i < 6; i++) order.push(await whoAnswers(service.port));
      t.equal(order.join(''), 'ABCABC', 'exact round-robin');
      const view = node.view(id);
      t.equal(view.counters.tcp?.connectionsTotal ?? 0, 0, 'the userspace listener saw none of them');
      await waitFor(() => (node.view(id).kernel?.flows ?? 0) >= 6, 'the kernel flow counter');
      t.equal(node.view(id).kernel?.flows, 6, 'the kernel counted six flows');
      t.ok((node.view(id).kernel?.bytes_out ?? 0) > 0, 'and bytes toward the clients');
      // /status and /metrics read the same counters.
      const status = (await call('GET', '/status')).json as {
        dataplane: {
          kind: string;
          programmed: number;
          conntrack: { count: number | null; max: number | null };
        };
      };
      t.equal(status.dataplane.kind, 'nftables');
      t.equal(status.dataplane.programmed, 1);
      t.ok((status.dataplane.conntrack.max ?? 0) > 0, 'with the conntrack table size');
      const metrics = (await call('GET', '/metrics')).text;
      t.match(metrics, /harbor_kernel_flows_total\{service="web",service_id="[^"]+"\} 6/);
      t.match(metrics, /harbor_conntrack_max \d+/);

      await servers[1]!.close();
      await waitFor(
        () => node.view(id).instances.find((i) => i.id === 'i1')?.state === 'down',
        'B to be down',
      );
      await waitFor(() => /mod 2/.test(chain(`s${service.port}_tcp`)), 'the rules without B', CHECK_MS * 20);
      const after: string[] = [];
      for (let i = 0; i < 20; i++) after.push(await whoAnswers(service.port));
      t.notOk(after.includes('B'), 'no connection goes to B');
      t.equal(after.length, 20, 'and none fails');
    },
  );

  t.test(
    'UDP: a refusing primary fails over; the live flow and new clients go to the next at once',
    async (t) => {
      // The decision's time, taken as the node logs it.
      let decidedAt = 0;
      /** The node's log, each line with its time: shown if the flow is late. */
      const log: string[] = [];
      const lines = new Writable({
        write(chunk: Buffer, _encoding, done) {
          const text = chunk.toString();
          if (!text.includes('nftables poll')) log.push(`${Math.round(performance.now())} ${text.trim()}`);
          if (decidedAt === 0 && text.includes('UDP primary refused')) decidedAt = performance.now();
          done();
        },
      });
      const node = await newNode({
        logger: createLogger({ level: 'debug', pretty: false, name: 'node', destination: lines }),
      });
      t.teardown(() => node.drain(0));
      const { apps, service, client } = await udpServiceOnTwoApps(t, node, 'udp-game');
      const id = service.name;
      const replies: { from: string; at: number }[] = [];
      client.on('message', (m) => replies.push({ from: m.toString(), at: performance.now() }));
      const sender = setInterval(() => client.send('ping'), 5);
      t.teardown(() => clearInterval(sender));
      await waitFor(() => replies.length > 3, 'replies from the primary');
      t.ok(
        replies.every((r) => r.from === 'U1'),
        'the first instance is the primary',
      );
      apps[0]!.close();
      await waitFor(() => decidedAt > 0, 'the node to take U1 out (ICMP port unreachable)');
      await waitFor(
        () => replies.some((r) => r.from === 'U2' && r.at > decidedAt),
        'U2 to answer the same flow',
      );
      const first = replies.find((r) => r.from === 'U2')!;
      t.pass(`the live flow reached U2 ${Math.round(first.at - decidedAt)} ms after the decision`);
      t.ok(
        first.at - decidedAt < 5000,
        'soon after the decision (the benchmark measures it; the issue asks 100 ms)',
        { decidedAt: Math.round(decidedAt), log },
      );
      const fresh = dgram.createSocket('udp4');
      t.teardown(() => fresh.close());
      const answer = await new Promise<string>((resolve) => {
        fresh.on('message', (m) => resolve(m.toString()));
        fresh.send('hello', service.port, '127.0.0.1');
      });
      t.equal(answer, 'U2', 'a new client goes to U2 at once');
      t.equal(
        node.view(id).instances.find((i) => i.id === 'u2')?.state,
        'up',
        'U2 is not blamed for the errors of U1 counted across the failover',
      );
    },
  );

  t.test('an established connection survives rule updates and a node restart', async (t) => {
    const folder = mkdtempSync(join(tmpdir(), 'harbor-nft-'));
    t.teardown(() => rmSync(folder, { recursive: true, force: true }));
    const path = join(folder, 'state.json');
    const range = await freeRange(8);
    let node = await newNode({ range, stateFile: new StateFile(path) });
    const a = await nameServer('A');
    const b = await nameServer('B');
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const service = await node.createService('long-lived');
    await node.putInstance(service.name, 'a', { host: '127.0.0.1', port: a.port });
    await waitFor(() => /dnat/.test(chain(`s${service.port}_tcp`)), 'the service chain');
    const socket = net.connect(service.port, '127.0.0.1');
    t.teardown(() => socket.destroy());
    let received = '';
    socket.on('data', (c: Buffer) => {
      received += c.toString();
    });
    await waitFor(() => received === 'A', 'A to greet');
    const echo = async (text: string): Promise<void> => {
      const before = received.length;
      socket.write(text);
      await waitFor(() => received.length >= before + text.length, `the echo of ${text}`);
      t.equal(received.slice(before), text);
    };
    await echo('one');
    await node.putInstance(service.name, 'b', { host: '127.0.0.1', port: b.port });
    await waitFor(() => /mod 2/.test(chain(`s${service.port}_tcp`)), 'the update');
    await echo('two');
    await node.drain(0);
    await echo('three');
    node = await newNode({ range, stateFile: new StateFile(path) });
    t.teardown(() => node.drain(0));
    await echo('four');
    t.match(chain(`s${service.port}_tcp`), /dnat/, 'the restarted node programmed the table again');
  });

  t.test(
    'byte counters: within 1% of what crossed (iperf3, then an exact 100 MB)',
    { skip: hasProgram('iperf3') ? false : 'needs iperf3' },
    async (t) => {
      const node = await newNode();
      t.teardown(() => node.drain(0));
      const ports = await freeRange(1, 30_000, 31_000);
      const server = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(ports.first)], {
        stdio: 'ignore',
      });
      t.teardown(() => server.kill('SIGKILL'));
      const service = await node.createService('iperf');
      await node.putInstance(service.name, 'i', { host: '127.0.0.1', port: ports.first });
      await waitFor(() => /dnat/.test(chain(`s${service.port}_tcp`)), 'the service chain');
      await waitFor(async () => await acceptsConnections(ports.first), 'iperf3 to listen');
      // The view holds the counters as last read (every few polls): a reading taken while bytes
      // still crossed can pass a lower bound, so a count is taken once it has held still for a
      // second (several full polls) after reaching `least`.
      const counted = async (least: number): Promise<number> => {
        const read = (): number => node.view(service.name).kernel?.bytes_in ?? 0;
        let last = read();
        let since = Date.now();
        await waitFor(() => {
          const now = read();
          if (now !== last) [last, since] = [now, Date.now()];
          return now >= least && Date.now() - since >= 1000;
        }, 'the counter to reach its count and hold still');
        return last;
      };
      // A busy machine can fail an iperf3 run (a control message late, the server still busy with
      // the probe above): such a run is taken again, up to three times, from a count taken once
      // the bytes it sent have been counted.
      let before = 0;
      let retransBeforeIperf = retransmittedSegments();
      let totals = iperfTotals(service.port, '200M');
      for (let attempt = 2; 'error' in totals; attempt++) {
        if (attempt > 3) throw new Error(`iperf3 failed three times, last: ${totals.error}`);
        t.comment(`iperf3 run ${attempt - 1} failed (${totals.error}); running it again`);
        before = await counted(before);
        retransBeforeIperf = retransmittedSegments();
        totals = iperfTotals(service.port, '200M');
      }
      // iperf3's two counts bracket what crossed: the server stops reading at the test's end (a
      // little may be in flight), and the client's last writes may never leave (it closes hard).
      const { received, sent } = totals;
      const afterIperf = (await counted(before + received * 0.99)) - before;
      // A busy machine makes loopback TCP resend (a receiver late with its ACK past the
      // retransmission timeout): those bytes cross the data plane again and count, as they should.
      const iperfResent = (retransmittedSegments() - retransBeforeIperf) * MAX_LOOPBACK_SEGMENT;
      t.ok(
        afterIperf >= received * 0.99 && afterIperf <= sent * 1.01 + iperfResent,
        `bytes in ${afterIperf}: between what iperf3's server got (${received}) - 1% and what its client sent (${sent}) + 1% (+ ${iperfResent} resent)`,
      );
      // And an exact amount: 100 MB written, read to the end by a sink, then closed.
      const sink = net.createServer((socket) => socket.resume());
      await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
      t.teardown(() => sink.close());
      await node.putInstance(service.name, 'i', {
        host: '127.0.0.1',
        port: (sink.address() as net.AddressInfo).port,
      });
      await waitFor(
        () => chain(`s${service.port}_tcp`).includes(`:${(sink.address() as net.AddressInfo).port}`),
        'the sink',
      );
      const bytes = 100 * 1024 * 1024;
      const retransBefore = retransmittedSegments();
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(service.port, '127.0.0.1');
        socket.on('error', reject);
        socket.on('close', () => resolve());
        socket.end(Buffer.alloc(bytes, 1));
        socket.resume();
      });
      const exact = (await counted(before + afterIperf + bytes * 0.99)) - before - afterIperf;
      const resent = (retransmittedSegments() - retransBefore) * MAX_LOOPBACK_SEGMENT;
      t.ok(
        exact >= bytes * 0.99 && exact <= bytes * 1.01 + resent,
        `bytes in ${exact} for ${bytes} written (the packets' headers taken off; + ${resent} resent at most)`,
      );
    },
  );

  t.test(
    'UDP byte counters from conntrack: every datagram counted, through a failover that deletes the flow and a restart',
    async (t) => {
      const folder = mkdtempSync(join(tmpdir(), 'harbor-nft-'));
      t.teardown(() => rmSync(folder, { recursive: true, force: true }));
      const range = await freeRange(8);
      const state = join(folder, 'state.json');
      let node = await newNode({ range, stateFile: new StateFile(state) });
      t.teardown(() => node.drain(0));
      const { apps, service, client } = await udpServiceOnTwoApps(t, node, 'udp-bytes');
      let sent = 0;
      let replyBytes = 0;
      const from: string[] = [];
      client.on('message', (m) => {
        replyBytes += m.length;
        from.push(m.toString());
      });
      const DATAGRAM = Buffer.alloc(1000, 7);
      /**
       * Sends one datagram, counted once the kernel took it: after an ICMP error a connected
       * socket refuses its next send (ECONNREFUSED), and that datagram never leaves.
       */
      const send = (): void =>
        client.send(DATAGRAM, (error) => {
          if (!error) sent++;
        });
      /** One datagram, and its answer awaited (none is lost on loopback one at a time). */
      const exchange = async (): Promise<void> => {
        const before = from.length;
        send();
        await waitFor(() => from.length > before, 'an answer');
      };
      for (let i = 0; i < 100; i++) await exchange();
      t.ok(
        from.every((f) => f === 'U1'),
        'U1 answered the first 100',
      );
      // U1 refuses from now on: datagrams go on (refused, counted all the same) until U2 answers
      // the same flow, after the node deleted U1's entry with what it had counted.
      apps[0]!.close();
      const deadline = Date.now() + DEADLINE_MS;
      while (!from.includes('U2') && Date.now() < deadline) {
        send();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      t.ok(from.includes('U2'), 'U2 took the flow over');
      for (let i = 0; i < 100; i++) await exchange();
      let counted = () => node.view(service.name).kernel;
      // Read every few polls: the counts are waited for, then compared. A flow the node deletes is
      // counted as conntrack printed it while deleting, which it read up to a walk of its table
      // (milliseconds) earlier: a datagram of those last milliseconds may be missed.
      const sentBytes = sent * DATAGRAM.length;
      await eventually(
        () =>
          (counted()?.bytes_in ?? 0) >= sentBytes - 2 * DATAGRAM.length &&
          counted()?.bytes_out === replyBytes,
        10_000,
      );
      const bytesIn = counted()?.bytes_in ?? 0;
      t.ok(
        bytesIn <= sentBytes && bytesIn >= sentBytes - 2 * DATAGRAM.length,
        `bytes in ${bytesIn}: the ${sent} datagrams sent (${sentBytes} bytes, headers taken off), at most two missed at the failover`,
      );
      t.equal(counted()?.bytes_out, replyBytes, 'bytes out: every answer');

      // A restarted node counts what the live flow carries from its start, not the flow's history.
      await node.drain(0);
      node = await newNode({ range, stateFile: new StateFile(state) });
      counted = () => node.view(service.name).kernel;
      for (let i = 0; i < 10; i++) await exchange();
      await eventually(() => counted()?.bytes_in === 10 * DATAGRAM.length, 10_000);
      t.equal(counted()?.bytes_in, 10 * DATAGRAM.length, 'the restarted node counts the ten datagrams since');
    },
  );

  t.test(
    'the reconciler removes a UDP entry that points elsewhere than the primary, the service idle',
    async (t) => {
      const node = await newNode();
      t.teardown(() => node.drain(0));
      const { apps, service } = await udpServiceOnTwoApps(t, node, 'udp-stale');
      const clientPort = 40_000 + (service.port % 1000);
      const entries = () =>
        execFileSync(
          'conntrack',
          ['-L', '-p', 'udp', '-f', 'ipv4', '--orig-port-dst', String(service.port)],
          {
            encoding: 'utf8',
            stdio: 'pipe',
          },
        );
      // As a DNAT to U2 would have left it while U1 is the primary, made by hand: no datagram went
      // through the table, so the node's counters give no hint of it (an idle node skips listings
      // that nothing calls for, but not for long).
      execFileSync(
        'conntrack',
        [
          '-I',
          ...['-p', 'udp', '-s', '127.0.0.1', '-d', '127.0.0.1'],
          ...['--sport', String(clientPort), '--dport', String(service.port)],
          ...['-r', '127.0.0.1', '-q', '127.0.0.1'],
          ...['--reply-port-src', String(apps[1]!.port), '--reply-port-dst', String(clientPort), '-t', '120'],
        ],
        { stdio: 'pipe' },
      );
      t.match(entries(), `sport=${apps[1]!.port} dport=${clientPort}`, 'the stale entry is there');
      await waitFor(
        () => !entries().includes(`sport=${apps[1]!.port} dport=${clientPort}`),
        'the stale entry to go',
      );
      t.pass('removed');
    },
  );

  t.test(
    'the table removed: the userspace listener serves until the node rebuilds it; counts go on',
    async (t) => {
      const node = await newNode();
      t.teardown(() => node.drain(0));
      const a = await nameServer('A');
      t.teardown(() => a.close());
      const service = await node.createService('fallback');
      await node.putInstance(service.name, 'a', { host: '127.0.0.1', port: a.port });
      await waitFor(() => /dnat/.test(chain(`s${service.port}_tcp`)), 'the service chain');
      const flows = () => node.view(service.name).kernel?.flows ?? 0;
      for (let i = 0; i < 3; i++) await whoAnswers(service.port);
      await waitFor(() => flows() === 3, 'three flows counted by the kernel');
      execFileSync('nft', ['delete', 'table', 'ip', 'harbor']);
      t.equal(await whoAnswers(service.port), 'A', 'served with the table gone');
      t.equal(node.view(service.name).counters.tcp?.connectionsTotal, 1, 'by the userspace listener');
      await waitFor(() => /dnat/.test(chain(`s${service.port}_tcp`)), 'the table to be rebuilt');
      t.equal(await whoAnswers(service.port), 'A');
      t.equal(node.view(service.name).counters.tcp?.connectionsTotal, 1, 'and the kernel forwards again');
      // The new table's counters start at 0; the node's totals go on from what the old one counted.
      await eventually(() => flows() === 4, 10_000);
      t.equal(flows(), 4, 'the kernel count goes on from the three before the rebuild');
    },
  );
});

function hasProgram(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A UDP service on two apps (U1 the primary, U2 next), in the kernel's table, and a client connected to it. */
async function udpServiceOnTwoApps(
  t: Test,
  node: HarborNode,
  name: string,
): Promise<{
  apps: { port: number; close(): void }[];
  service: { name: string; port: number };
  client: dgram.Socket;
}> {
  const apps = await Promise.all(['U1', 'U2'].map(udpApp));
  t.teardown(() => {
    for (const app of apps) app.close();
  });
  const service = await node.createService(name);
  await node.putInstance(service.name, 'u1', { host: '127.0.0.1', port: apps[0]!.port });
  await node.putInstance(service.name, 'u2', { host: '127.0.0.1', port: apps[1]!.port });
  await waitFor(
    () => listed('map', 'udp_primary').includes(`${service.port} : 127.0.0.1 . ${apps[0]!.port}`),
    'the UDP primary',
  );
  const client = dgram.createSocket('udp4');
  t.teardown(() => client.close());
  client.on('error', () => {});
  await new Promise<void>((resolve) => client.connect(service.port, '127.0.0.1', resolve));
  return { apps, service, client };
}

async function udpApp(name: string): Promise<{ port: number; close(): void }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (_m, from) => socket.send(name, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  let closed = false;
  return {
    port,
    close: () => {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}

t.test(
  'a client in another namespace: prerouting sends it to the instance (loopback addresses only)',
  { skip: unavailable },
  async (t) => {
    linkNamespaces(t);
    const node = await newNode({ listenHost: undefined });
    t.teardown(() => node.drain(0));
    const a = await nameServer('A');
    const b = await nameServer('B');
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const service = await node.createService('from-outside');
    await node.putInstance(service.name, 'a', { host: '127.0.0.1', port: a.port });
    await node.putInstance(service.name, 'b', { host: '127.0.0.1', port: b.port });
    await waitFor(() => /mod 2/.test(chain(`s${service.port}_tcp`)), 'the service chain');
    const client = `const s = require('node:net').connect(${service.port}, '${HERE}');
      s.once('data', (c) => { process.stdout.write(c.toString().slice(0, 1)); s.destroy(); });
      s.on('error', (e) => { process.stdout.write('error ' + e.code); });`;
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      // Asynchronously: the servers answering it live in this process.
      answers.push(
        await new Promise<string>((resolve) =>
          execFile(
            'ip',
            ['netns', 'exec', 'peer', process.execPath, '-e', client],
            { timeout: 10_000 },
            (e, out) => resolve(e ? `failed: ${e.message}` : out),
          ),
        ),
      );
    }
    t.equal(answers.join(''), 'ABAB', 'round-robin for a client on the other side of the link');
    t.equal(node.view(service.name).counters.tcp?.connectionsTotal, 0, 'none through the userspace listener');
  },
);

t.test(
  'an instance on another machine: the kernel balances other clients; loopback ones are served in userspace',
  { skip: unavailable },
  async (t) => {
    linkNamespaces(t);
    const node = await newNode({ listenHost: undefined });
    t.teardown(() => node.drain(0));
    const a = await nameServer('A');
    t.teardown(() => a.close());
    // B lives in the other namespace: an instance on another machine.
    const bPort = (await freeRange(1, 32_000, 33_000)).first;
    const b = spawn(
      'ip',
      [
        'netns',
        'exec',
        'peer',
        process.execPath,
        '-e',
        `require('node:net').createServer((s) => { s.on('error', () => {}); s.write('B'); s.pipe(s); }).listen(${bPort}, '${PEER}')`,
      ],
      { stdio: 'ignore' },
    );
    t.teardown(() => b.kill('SIGKILL'));
    await waitFor(() => acceptsConnections({ host: PEER, port: bPort }), 'B to listen');
    const service = await node.createService('two-machines');
    await node.putInstance(service.name, 'a', { host: '127.0.0.1', port: a.port });
    await node.putInstance(service.name, 'b', { host: PEER, port: bPort });
    await waitFor(() => /mod 2/.test(chain(`s${service.port}_tcp`)), 'the service chain');
    t.match(listed('set', 'remote'), `${service.port} . ${PEER}`, 'flows to B are masqueraded');

    /** The first byte a connection gets, from `from` to `to`. */
    const answer = (from: string, to: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect({ port: service.port, host: to, localAddress: from });
        socket.once('data', (c: Buffer) => {
          resolve(c.toString().slice(0, 1));
          socket.destroy();
        });
        socket.once('error', reject);
      });
    // A client on this machine's link address: the kernel, round-robin, B across the link.
    let kernel = '';
    for (let i = 0; i < 4; i++) kernel += await answer(HERE, HERE);
    t.equal(kernel, 'ABAB', 'round-robin by the kernel, B reached across the link');
    t.equal(node.view(service.name).counters.tcp?.connectionsTotal ?? 0, 0, 'none through the listener');
    // A loopback client cannot leave the machine: the userspace listener serves it, A and B alike.
    let userspace = '';
    for (let i = 0; i < 4; i++) userspace += await answer('127.0.0.1', '127.0.0.1');
    t.same([...userspace].sort().join(''), 'AABB', 'both instances serve loopback clients');
    t.equal(node.view(service.name).counters.tcp?.connectionsTotal, 4, 'through the userspace listener');
  },
);

t.test(
  'the CLI: start-up checks, one node per namespace, the table kept at exit, dataplane clean',
  { skip: unavailable },
  async (t) => {
    const range = await freeRange(4);
    const base = [
      '--ports',
      `${range.first}-${range.last}`,
      '--api',
      '127.0.0.1:0',
      '--dataplane',
      'nftables',
    ];
    const noNft = await runNode(base, { PATH: '/nonexistent' });
    t.equal(noNft.status, 78, 'a missing nft program is a configuration error');
    t.match(noNft.stderr, /needs the nft program \(Debian: apt-get install nftables\) \[E_DATAPLANE\]/);
    t.equal(noNft.stderr.trim().split('\n').length, 1, 'one line');
    const both = await runNode([...base, '--proxy-protocol', 'v2'], {});
    t.equal(both.status, 78);
    t.match(both.stderr, /--dataplane "nftables": the kernel cannot send PROXY protocol headers/);

    const child = spawn(process.execPath, [NODE_BIN, ...base], {
      env: { PATH: process.env.PATH ?? '', HARBOR_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => child.kill('SIGKILL'));
    await waitForOutput(child, /kernel data plane programmed/);
    const tableBefore = execFileSync('nft', ['list', 'table', 'ip', 'harbor'], { encoding: 'utf8' });
    // One node per network namespace: a second would replace the first's table under it.
    const other = await freeRange(4);
    const second = await runNode(
      ['--ports', `${other.first}-${other.last}`, '--api', '127.0.0.1:0', '--dataplane', 'nftables'],
      {},
    );
    t.equal(second.status, 78, 'a second node on the data plane is a configuration error');
    t.match(
      second.stderr,
      new RegExp(
        `another harbor-node, pid ${child.pid} \\(.*\\), runs the kernel data plane in this network namespace.*\\[E_DATAPLANE\\]`,
      ),
    );
    const busy = await runNode(['dataplane', 'clean'], {});
    t.equal(busy.status, 78, 'clean is refused while a node runs');
    t.match(busy.stderr, new RegExp(`a harbor-node, pid ${child.pid} .*: stop it first`));
    t.equal(
      execFileSync('nft', ['list', 'table', 'ip', 'harbor'], { encoding: 'utf8' }),
      tableBefore,
      "the running node's table is untouched",
    );
    child.kill('SIGTERM');
    t.same(await exited(child), { code: 0, signal: null });
    t.match(
      execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }),
      /table ip harbor/,
      'the table stays at exit',
    );
    const clean = await runNode(['dataplane', 'clean'], {});
    t.equal(clean.status, 0, clean.stderr);
    t.match(clean.stdout, /removed ip harbor and ip6 harbor/);
    t.notMatch(
      execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }),
      /harbor/,
      'and dataplane clean removes it',
    );
    const again = await runNode(['dataplane', 'clean'], {});
    t.equal(again.status, 0, 'cleaning twice is fine');
    const typo = await runNode(['dataplane', 'clear'], {});
    t.equal(typo.status, 2);
    t.match(typo.stderr, /did you mean clean/);
  },
);

function runNode(
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [NODE_BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({ status: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** One iperf3 run of `amount` to `port` on loopback: what its client sent and its server got, or why it failed. */
function iperfTotals(port: number, amount: string): { sent: number; received: number } | { error: string } {
  let out: string;
  try {
    out = execFileSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', amount, '-J'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  } catch (error) {
    // A failed run says why in its JSON when it got that far.
    out = String((error as { stdout?: unknown }).stdout ?? '');
    if (out === '') return { error: (error as Error).message };
  }
  let report: { error?: string; end?: { sum_sent?: { bytes?: number }; sum_received?: { bytes?: number } } };
  try {
    report = JSON.parse(out) as typeof report;
  } catch {
    return { error: `not JSON: ${out.slice(0, 200)}` };
  }
  const sent = report.end?.sum_sent?.bytes;
  const received = report.end?.sum_received?.bytes;
  if (report.error !== undefined || sent === undefined || received === undefined) {
    return { error: report.error ?? `no totals in ${out.slice(0, 200)}` };
  }
  return { sent, received };
}
