// Real servers and clients behind harbor-node: dnsmasq as a both- service
// queried by dig over UDP and TCP through the node's external port, and
// redis-server behind a TCP service driven by redis-benchmark.
import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';
import t from 'tap';
import { daemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

const run = promisify(execFile);

async function have(command: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

async function dig(port: number, name: string, tcp: boolean): Promise<string> {
  const args = ['@127.0.0.1', '-p', String(port), name, '+short', '+time=2', '+tries=1'];
  if (tcp) args.push('+tcp');
  const { stdout } = await run('dig', args, { timeout: 10_000 }).catch((e: { stdout?: string }) => ({
    stdout: e.stdout ?? '',
  }));
  return stdout.trim();
}

const noDns =
  !(await have('dnsmasq')) || !(await have('dig'))
    ? 'dnsmasq or dig is not installed (Debian: dnsmasq-base, dnsutils)'
    : false;
const noRedis =
  !(await have('redis-server')) || !(await have('redis-benchmark'))
    ? 'redis-server or redis-benchmark is not installed (Debian: redis-server, redis-tools)'
    : false;

t.test('dnsmasq as a both- service: dig over UDP and TCP through the node', { skip: noDns }, async (t) => {
  const ports = await freeRange(3);
  const dnsPort = ports.last;
  const args = [
    '--no-daemon',
    `--port=${dnsPort}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--address=/example.test/127.0.0.9',
    '--pid-file=',
    '--log-facility=-',
  ];
  // As root dnsmasq drops to "nobody" unless told otherwise; as anyone else it stays who it is.
  if (process.getuid?.() === 0) args.push(`--user=${userInfo().username}`, '--group=root');
  daemon(t, 'dnsmasq', args);
  await waitFor(
    async () => (await dig(dnsPort, 'up.example.test', false)) === '127.0.0.9',
    'dnsmasq to answer',
    10_000,
  );

  const node = await startNodeProcess(t, ['--ports', `${ports.first}-${ports.first + 1}`]);
  const creds = (await api(node.api, 'POST', '/v1/services', { name: 'both-dns' })).json;
  t.equal(
    (
      await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/dns1`, {
        host: '127.0.0.1',
        port: dnsPort,
      })
    ).status,
    201,
  );
  t.equal(await dig(creds.port, 'www.example.test', false), '127.0.0.9', 'UDP query through the node');
  t.equal(await dig(creds.port, 'mail.example.test', true), '127.0.0.9', 'TCP query (+tcp) through the node');
  const counters = (await api(node.api, 'GET', `/v1/services/${creds.name}`)).json.counters;
  t.ok(counters.udp.datagramsIn >= 1 && counters.udp.datagramsOut >= 1, 'the UDP forwarder carried it');
  t.ok(counters.tcp.connectionsTotal >= 1, 'the TCP forwarder carried it');
});

t.test('redis-server behind a TCP service, driven by redis-benchmark', { skip: noRedis }, async (t) => {
  const ports = await freeRange(3);
  const redisPort = ports.last;
  daemon(t, 'redis-server', [
    '--port',
    String(redisPort),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
  ]);
  const ping = (port: number) =>
    run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'PING'], { timeout: 5000 }).then(
      (r) => r.stdout.trim(),
      () => '',
    );
  await waitFor(async () => (await ping(redisPort)) === 'PONG', 'redis-server to answer', 10_000);

  const node = await startNodeProcess(t, ['--ports', `${ports.first}-${ports.first + 1}`]);
  const creds = (await api(node.api, 'POST', '/v1/services', { name: 'redis' })).json;
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/r1`, {
    host: '127.0.0.1',
    port: redisPort,
  });
  const { stdout } = await run(
    'redis-benchmark',
    ['-h', '127.0.0.1', '-p', String(creds.port), '-n', '2000', '-c', '8', '-t', 'set,get', '-q'],
    { timeout: 60_000 },
  );
  t.match(stdout, /SET: [\d.]+ requests per second/);
  t.match(stdout, /GET: [\d.]+ requests per second/);
  const { stdout: value } = await run('redis-cli', [
    '-h',
    '127.0.0.1',
    '-p',
    String(creds.port),
    'GET',
    'key:__rand_int__',
  ]);
  t.equal(value.trim(), 'VXK', 'the value redis-benchmark SET reads back through the node');
  const counters = (await api(node.api, 'GET', `/v1/services/${creds.name}`)).json.counters.tcp;
  t.ok(counters.connectionsTotal >= 8, `${counters.connectionsTotal} connections relayed`);
  t.equal(counters.connectionsFailed, 0);
});
