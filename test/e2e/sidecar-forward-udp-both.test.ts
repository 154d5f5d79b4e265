// `harbor-sidecar run` forwarding by the service's protocol, through real
// apps: a TCP echo behind `ldap-port`, dnsmasq behind `udp-dns` (queried by
// dig over UDP) and behind `both-dns` (dig over UDP and over TCP on the same
// int_port), a UDP echo behind `udp-echo`; the forwards given both as
// `--forward NAME=HOST:PORT` and as HARBOR_FORWARD_<NAME>.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { exited, runSidecar, startSidecar, waitForOutput } from '../helpers/cli.js';
import { echoBackend, freePort, httpsGet } from '../helpers/net.js';

const run = promisify(execFile);

/** A loopback port free for both TCP and UDP (dnsmasq and `both-` services take both). */
async function freeDualPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    const free = await new Promise<boolean>((resolve) => {
      const probe = createSocket('udp4');
      probe.once('error', () => resolve(false));
      probe.bind(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no port free for TCP and UDP');
}

async function dig(port: number, name: string, tcp = false, type = 'A'): Promise<string> {
  const args = ['@127.0.0.1', '-p', String(port), name, type, '+short', '+time=2', '+tries=2'];
  if (tcp) args.push('+tcp');
  const { stdout } = await run('dig', args, { timeout: 10_000 });
  return stdout.trim();
}

/** dnsmasq answering app.test from its own table, on 127.0.0.1:port, TCP and UDP. */
async function startDnsmasq(port: number): Promise<ChildProcess> {
  const child = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--address=/app.test/192.0.2.7',
      '--txt-record=info.test,served by dnsmasq',
      '--pid-file=',
      '--log-facility=-',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await waitForOutput(child, /dnsmasq\[\d+\]: started/);
  return child;
}

async function udpEchoApp(): Promise<{ socket: UdpSocket; port: number; peers: string[] }> {
  const socket = createSocket('udp4');
  const peers: string[] = [];
  socket.on('message', (message, rinfo) => {
    peers.push(`${rinfo.address}:${rinfo.port}`);
    socket.send(Buffer.concat([Buffer.from('echo:'), message]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port, peers };
}

async function tcpEchoApp(): Promise<{ close: () => void; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { close: () => server.close(), port: (server.address() as { port: number }).port };
}

function tcpRoundTrip(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo on ${port}; got ${JSON.stringify(text)}`));
    }, 5000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

/** A UDP client bound on its own port: sends `payload`, resolves with the first reply. */
async function udpAsk(port: number, payload: string): Promise<{ reply: string; from: number }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    // UDP may drop: a few tries, each bounded.
    for (let attempt = 0; attempt < 5; attempt++) {
      const reply = await new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(undefined);
        }, 1000);
        const onMessage = (message: Buffer) => {
          clearTimeout(timer);
          resolve(message.toString());
        };
        socket.once('message', onMessage);
        socket.send(payload, port, '127.0.0.1');
      });
      if (reply !== undefined) return { reply, from: socket.address().port };
    }
    throw new Error(`no UDP reply from 127.0.0.1:${port}`);
  } finally {
    socket.close();
  }
}

t.test(
  'TCP, UDP and both- services forwarded to real apps, by --forward and HARBOR_FORWARD_<NAME>',
  async (t) => {
    const dnsPort = await freeDualPort();
    const dnsmasq = await startDnsmasq(dnsPort);
    t.teardown(() => {
      dnsmasq.kill('SIGTERM');
    });
    const udpEcho = await udpEchoApp();
    t.teardown(() => udpEcho.socket.close());
    const tcpEcho = await tcpEchoApp();
    t.teardown(() => tcpEcho.close());
    t.equal(await dig(dnsPort, 'app.test'), '192.0.2.7', 'dnsmasq answers directly');

    const ports = {
      ldap: await freePort(),
      udpDns: await freeDualPort(),
      bothDns: await freeDualPort(),
      udpEcho: await freeDualPort(),
    };
    const services = {
      'ldap-port': { int_port: ports.ldap, port: 35001, name: 'id-ldap' },
      'udp-dns': { int_port: ports.udpDns, port: 35002, name: 'id-udp-dns' },
      'both-dns': { int_port: ports.bothDns, port: 35003, name: 'id-both-dns' },
      'udp-echo': { int_port: ports.udpEcho, port: 35004, name: 'id-udp-echo' },
    };
    const adminPort = await freePort();
    const child = startSidecar(
      [
        'run',
        '--forward',
        `ldap-port=127.0.0.1:${tcpEcho.port}`,
        '--forward',
        `udp-dns=127.0.0.1:${dnsPort}`,
        '--admin',
        `127.0.0.1:${adminPort}`,
      ],
      {
        STACKATO_SERVICES: JSON.stringify(services),
        HARBOR_FORWARD_BOTH_DNS: `127.0.0.1:${dnsPort}`,
        HARBOR_FORWARD_UDP_ECHO: `127.0.0.1:${udpEcho.port}`,
      },
    );
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const serving = await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
    t.match(serving, /both-dns tcp\+udp int_port/);

    t.equal(await tcpRoundTrip(ports.ldap, 'dn: cn=admin\n'), 'dn: cn=admin\n', 'ldap-port: TCP echo');

    t.equal(await dig(ports.udpDns, 'app.test'), '192.0.2.7', 'udp-dns: dig over UDP through the sidecar');
    t.equal(
      await dig(ports.udpDns, 'info.test', false, 'TXT'),
      '"served by dnsmasq"',
      'udp-dns: a TXT record',
    );
    await t.rejects(dig(ports.udpDns, 'app.test', true), 'udp-dns carries no TCP: dig +tcp fails');

    t.equal(await dig(ports.bothDns, 'app.test'), '192.0.2.7', 'both-dns: UDP on int_port');
    t.equal(await dig(ports.bothDns, 'app.test', true), '192.0.2.7', 'both-dns: TCP on the same int_port');

    // Two clients at once: each reply goes back to the client that asked.
    const [a, b] = await Promise.all([udpAsk(ports.udpEcho, 'from-a'), udpAsk(ports.udpEcho, 'from-b')]);
    t.equal(a.reply, 'echo:from-a');
    t.equal(b.reply, 'echo:from-b');
    t.ok(
      udpEcho.peers.every(
        (p) => p.startsWith('127.0.0.1:') && !p.endsWith(`:${a.from}`) && !p.endsWith(`:${b.from}`),
      ),
      'the app hears the sidecar, not the clients',
    );

    // What the admin endpoint reports for the forwards: each service's protocol, and UDP bytes both ways.
    const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as {
      services: { name: string; protocol: string; int_port: number; backend: string }[];
    };
    t.same(status.services.map((s) => [s.name, s.protocol, s.int_port, s.backend]).sort(), [
      ['both-dns', 'both', ports.bothDns, `127.0.0.1:${dnsPort}`],
      ['ldap-port', 'tcp', ports.ldap, `127.0.0.1:${tcpEcho.port}`],
      ['udp-dns', 'udp', ports.udpDns, `127.0.0.1:${dnsPort}`],
      ['udp-echo', 'udp', ports.udpEcho, `127.0.0.1:${udpEcho.port}`],
    ]);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const sample = (name: string) =>
      Number(new RegExp(`^${name}\\{service="udp-echo"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
    t.ok(sample('harbor_received_bytes_total') >= 'from-a'.length * 2, 'UDP bytes from clients are counted');
    t.ok(
      sample('harbor_sent_bytes_total') >= 'echo:from-a'.length * 2,
      'UDP bytes back to clients are counted',
    );

    child.kill('SIGTERM');
    t.same(await exited(child), { code: 0, signal: null });
    await t.rejects(dig(ports.bothDns, 'app.test', true), 'after SIGTERM nothing answers on int_port');
  },
);

t.test('HARBOR_FORWARD_<NAME> for no service, or a bad target: one line, exit 78', async (t) => {
  const services = JSON.stringify({ 'udp-dns': { int_port: 4153, name: 'x' } });
  const unknown = runSidecar(['run'], { STACKATO_SERVICES: services, HARBOR_FORWARD_NOPE: '127.0.0.1:53' });
  t.equal(unknown.status, 78);
  t.match(unknown.stderr, /HARBOR_FORWARD_NOPE names no Harbor service \(known: udp-dns\)/);
  const bad = runSidecar(['run'], { STACKATO_SERVICES: services, HARBOR_FORWARD_UDP_DNS: 'not-an-address' });
  t.equal(bad.status, 78);
  t.match(bad.stderr, /HARBOR_FORWARD_UDP_DNS for "udp-dns" must be HOST:PORT, not "not-an-address"/);
});

t.test(
  'both-dns-https: HTTPS on the TCP side of int_port, UDP forwarded to dnsmasq on the same port',
  async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'harbor-both-https-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    const pair = new OpensslFactory(root).pair(
      'localhost',
      { type: 'ec' },
      { hosts: ['localhost', '127.0.0.1'] },
    );
    mkdirSync(join(root, 'app', 'certs'), { recursive: true });
    copyFileSync(pair.certFile, join(root, 'app', 'certs', 'harbor.crt'));
    copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'harbor.key'));
    const dnsPort = await freeDualPort();
    const dnsmasq = await startDnsmasq(dnsPort);
    t.teardown(() => {
      dnsmasq.kill('SIGTERM');
    });
    const backend = await echoBackend();
    t.teardown(() => backend.close());
    const intPort = await freeDualPort();
    const child = startSidecar(['run', '--listen', '127.0.0.1'], {
      STACKATO_SERVICES: JSON.stringify({
        'both-dns-https': { int_port: intPort, port: 35053, name: 'id-both' },
      }),
      HARBOR_FORWARD_BOTH_DNS_HTTPS: `127.0.0.1:${dnsPort}`,
      PORT: String(backend.port),
      HARBOR_APP_ROOT: join(root, 'app'),
    });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
    const answer = await httpsGet(intPort, read(pair.certFile), '/over-tls');
    t.equal(answer.status, 200, 'TCP on int_port is the HTTPS proxy');
    t.equal(answer.body, 'backend:GET /over-tls');
    t.equal(await dig(intPort, 'app.test'), '192.0.2.7', 'UDP on the same int_port reaches dnsmasq');
    child.kill('SIGTERM');
    t.same(await exited(child), { code: 0, signal: null });
  },
);
