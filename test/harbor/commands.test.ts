// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests and bash hold ${name} as text
// The `harbor` command (dist/cli/harbor.js) against a real harbor-node
// process on loopback: the seed's create-service and service, services,
// delete-service, the manifest applied and deleted, and a round trip from
// `manifest apply` through `harbor-sidecar env` evaluated by a real bash.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { udpTagServer } from '../forward/fixtures/net.js';
import { cleanEnv, HARBOR_BIN, runHarbor, runSidecar, SIDECAR_BIN } from '../helpers/cli.js';
import { refusingPort } from '../helpers/net.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, startNodeProcess } from '../node/fixtures/spawn.js';

const execFileAsync = promisify(execFile);

async function node(t: Test, env: Record<string, string> = {}) {
  const range = await freeRange(8);
  const proc = await startNodeProcess(
    t,
    ['--ports', `${range.first}-${range.last}`, '--host', '10.0.0.5'],
    env,
  );
  return proc;
}

t.test(
  'create-service in the seed form: the credentials, what each field means, the protocol, the variable',
  async (t) => {
    const { api: url } = await node(t);
    const created = await runHarbor(['create-service', 'harbor', 'debug-port'], { HARBOR_NODE_URL: url });
    t.equal(created.status, 0, created.stderr);
    t.match(created.stdout, `created debug-port on ${url}`);
    const block = / {2}"debug-port": (\{[\s\S]*?\n {2}\})/.exec(created.stdout);
    t.ok(block, 'the seed\'s "name": {...} block');
    const credentials = JSON.parse(block![1]!);
    t.same(
      Object.keys(credentials),
      ['hostname', 'host', 'port', 'name', 'node_id', 'int_port'],
      "in the seed's key order",
    );
    t.match(
      created.stdout,
      new RegExp(`port +the port users connect to: .* reach it at 10\\.0\\.0\\.5:${credentials.port}`),
    );
    t.match(
      created.stdout,
      /int_port +the port inside each app container that Harbor forwards to: the app listens on 4100/,
    );
    t.match(created.stdout, /protocol: tcp \(TCP is the default\)/);
    t.match(
      created.stdout,
      /STACKATO_HARBOR=4100 when this is its only Harbor service, and STACKATO_HARBOR_DEBUG_PORT=4100 always/,
    );

    const udp = await runHarbor(['create-service', 'udp-game', '--json'], { HARBOR_NODE_URL: url });
    t.equal(udp.status, 0);
    t.match(
      JSON.parse(udp.stdout),
      { 'udp-game': { int_port: 4101, host: '10.0.0.5' } },
      '--json, the short form',
    );

    const twice = await runHarbor(['create-service', 'harbor', 'debug-port'], { HARBOR_NODE_URL: url });
    t.equal(twice.status, 1, 'a refused request exits 1');
    t.match(
      twice.stderr,
      `harbor: a service named debug-port exists already (id ${credentials.name}) [E_SERVICE_EXISTS]`,
    );
  },
);

t.test(
  'service: credentials, instances in UDP queue order with the primary, traffic; services; delete-service',
  async (t) => {
    const { api: url } = await node(t);
    const env = { HARBOR_NODE_URL: url };
    await runHarbor(['create-service', 'both-dns'], env);
    await runHarbor(['create-service', 'tcp-web'], env);
    const [a, b] = await Promise.all([udpTagServer(t, 'a'), udpTagServer(t, 'b')]);
    t.equal(
      (
        await api(url, 'PUT', '/v1/services/both-dns/instances/guid-1', {
          host: '127.0.0.1',
          port: a.port,
          ttl: 30,
        })
      ).status,
      201,
    );
    t.equal(
      (await api(url, 'PUT', '/v1/services/both-dns/instances/guid-2', { host: '127.0.0.1', port: b.port }))
        .status,
      201,
    );

    const shown = await runHarbor(['service', 'both-dns'], env);
    t.equal(shown.status, 0, shown.stderr);
    t.match(
      shown.stdout,
      /^both-dns: tcp\+udp on port \d+, reached at 10\.0\.0\.5:\d+; the app listens on 4100\nlistening on this node/,
    );
    t.match(
      shown.stdout,
      /protocol: tcp\+udp \(the name starts with "multi" or "both": TCP and UDP on the same port\)/,
    );
    t.match(
      shown.stdout,
      /instances \(2, in UDP queue order\):\n +ID +ADDRESS +STATE +UDP +TTL\n +guid-1 +127\.0\.0\.1:\d+ +up +primary +30 s\n +guid-2 +127\.0\.0\.1:\d+ +up +queued +none/,
    );
    t.match(shown.stdout, /traffic through this node: TCP 0 open, .*; UDP 0 sessions open/);
    const json = JSON.parse((await runHarbor(['service', 'both-dns', '--json'], env)).stdout);
    t.same(
      json.instances.map((i: { udp_role: string }) => i.udp_role),
      ['primary', 'queued'],
    );

    const listed = await runHarbor(['services'], env);
    t.equal(listed.status, 0);
    const lines = listed.stdout.trimEnd().split('\n');
    t.match(lines[0], /^NAME +PROTOCOL +PORT +REACHED AT +INT_PORT +UP +STATE +ID$/);
    t.match(lines[1], /^both-dns +tcp\+udp +\d+ +10\.0\.0\.5:\d+ +4100 +2\/2 +listening +[0-9a-f-]{36}$/);
    t.match(lines[2], /^tcp-web +tcp +\d+ /);

    t.equal((await runHarbor(['delete-service', 'tcp-web'], env)).stdout, 'deleted tcp-web\n');
    const gone = await runHarbor(['service', 'tcp-web'], env);
    t.equal(gone.status, 1);
    t.equal(gone.stderr, 'harbor: tcp-web: no such service (harbor services lists them) [E_API_NOT_FOUND]\n');
    t.equal(
      (await runHarbor(['delete-service', 'tcp-web'], env)).status,
      1,
      'deleting what is gone is refused',
    );
  },
);

t.test(
  'several node URLs: the first that answers; the token; what cannot work exits 2, 78 or 1',
  async (t) => {
    const { api: url } = await node(t, { HARBOR_NODE_TOKEN: 'sekrit' });
    const dead = `http://127.0.0.1:${await refusingPort()}`;
    const both = { HARBOR_NODE_URL: `${dead},${url}`, HARBOR_NODE_TOKEN: 'sekrit' };
    t.equal((await runHarbor(['create-service', 'tcp-x'], both)).status, 0, 'past a node that is down');
    const noToken = await runHarbor(['services'], { HARBOR_NODE_URL: url });
    t.equal(noToken.status, 1);
    t.match(noToken.stderr, /\[E_API_AUTH\]/);
    const nobody = await runHarbor(['services', '--node-url', dead]);
    t.equal(nobody.status, 1);
    t.match(
      nobody.stderr,
      new RegExp(`no Harbor node answered \\(${dead}: ECONNREFUSED\\).*\\[E_NODE_UNREACHABLE\\]`),
    );
    const badUrl = await runHarbor(['services', '--node-url', 'ftp://x']);
    t.equal(badUrl.status, 78);
    t.equal(badUrl.stderr, 'harbor: --node-url "ftp://x": must be http:// or https:// [E_SETTING]\n');
    for (const args of [['servce'], [], ['service'], ['create-service', 'a', 'b'], ['services', '--nope']]) {
      const usage = await runHarbor(args, both);
      t.equal(usage.status, 2, `usage: harbor ${args.join(' ')}`);
      t.match(usage.stderr, /\[E_USAGE\]\nTry 'harbor --help'\.\n$/);
    }
    const help = await runHarbor(['--help']);
    t.equal(help.status, 0);
    t.match(help.stdout, /create-service \[harbor\] NAME/);
    const flags = help.stdout.slice(help.stdout.indexOf('Flags:\n') + 7, help.stdout.indexOf('\n\nExit'));
    const columns = flags.split('\n').map((line) => /^ {2}(?:\S+(?: \S+)* {2,}| +)/.exec(line)?.[0].length);
    t.ok(columns.length >= 7, 'every flag has its row');
    t.same(new Set(columns).size, 1, `every flag's help begins in one column: ${columns.join(', ')}`);
    t.notMatch(noToken.stderr + nobody.stderr, /sekrit/, 'the token is never printed');
  },
);

t.test(
  'manifest apply: creates what is missing, reuses what exists, prints the environment; a real bash round trip through harbor-sidecar env',
  async (t) => {
    const { api: url } = await node(t);
    const dir = await mkdtemp(join(tmpdir(), 'harbor-manifest-'));
    await writeFile(
      join(dir, 'manifest.yml'),
      'name: port-test\nmemory: 256\nservices:\n  my-port: harbor\n  udp-${name}: harbor\n  mydb: mysql\n',
    );
    const env = { HARBOR_NODE_URL: url };
    const first = await runHarbor(['manifest', 'apply'], env, dir);
    t.equal(first.status, 0, first.stderr);
    t.equal(
      first.stderr,
      'skipped mydb (type mysql: not a Harbor service)\ncreated my-port\ncreated udp-port-test\n',
    );
    t.match(first.stdout, /^export STACKATO_APP_NAME='port-test'\nexport STACKATO_SERVICES='\{"my-port":\{/);
    const again = await runHarbor(['manifest', 'apply'], env, dir);
    t.equal(
      again.stderr,
      'skipped mydb (type mysql: not a Harbor service)\nexists  my-port\nexists  udp-port-test\n',
    );
    t.equal(again.stdout, first.stdout, 'twice changes nothing');
    const listed = JSON.parse((await runHarbor(['services', '--json'], env)).stdout);
    t.equal(listed.length, 2, 'no service made twice');

    const script = `
    eval "$(node ${HARBOR_BIN} manifest apply)" || exit 9
    eval "$(node ${SIDECAR_BIN} env)" || exit 10
    UDP_SERVICE_NAME=STACKATO_HARBOR_UDP_\${STACKATO_APP_NAME_UPCASE}
    echo "udp=\${!UDP_SERVICE_NAME} tcp=$STACKATO_HARBOR_MY_PORT vcap=$(echo "$VCAP_SERVICES" | head -c 40)"`;
    const { stdout } = await execFileAsync('bash', ['-c', script], {
      cwd: dir,
      env: cleanEnv({ HARBOR_NODE_URL: url }),
    });
    const byName = Object.fromEntries(
      listed.map((s: { service: string; credentials: { int_port: number } }) => [
        s.service,
        s.credentials.int_port,
      ]),
    );
    t.equal(
      stdout.trim(),
      `udp=${byName['udp-port-test']} tcp=${byName['my-port']} vcap={"harbor":[{"name":"my-port","label":"ha`,
      'STACKATO_HARBOR_UDP_<APP> for udp-${name}, through STACKATO_APP_NAME_UPCASE',
    );

    const dotenv = await runHarbor(['manifest', 'apply', '--format', 'dotenv'], env, dir);
    t.match(dotenv.stdout, /^STACKATO_APP_NAME=port-test\nSTACKATO_SERVICES="\{\\"my-port\\"/);
    const removed = await runHarbor(['manifest', 'delete'], env, dir);
    t.equal(removed.stdout, 'deleted my-port\ndeleted udp-port-test\n');
    t.same(JSON.parse((await runHarbor(['services', '--json'], env)).stdout), [], 'both gone');
    const missing = await runHarbor(['manifest', 'apply', 'nope.yml'], env, dir);
    t.equal(missing.status, 78);
    t.equal(missing.stderr, 'harbor: nope.yml: cannot be read (ENOENT) [E_MANIFEST]\n');
  },
);

t.test('manifest apply, the list form: binds services that exist, creates nothing', async (t) => {
  const { api: url } = await node(t);
  const dir = await mkdtemp(join(tmpdir(), 'harbor-manifest-'));
  await writeFile(join(dir, 'm.yml'), 'name: app\nservices:\n  - tcp-existing\n  - tcp-missing\n');
  const env = { HARBOR_NODE_URL: url };
  await runHarbor(['create-service', 'tcp-existing'], env);
  const applied = await runHarbor(['manifest', 'apply', 'm.yml', '--json'], env, dir);
  t.equal(applied.status, 0, applied.stderr);
  const result = JSON.parse(applied.stdout);
  t.same(result.services, [
    { service: 'tcp-existing', outcome: 'bound' },
    {
      service: 'tcp-missing',
      outcome: 'skipped',
      reason: 'not on this Harbor node (the list form binds only)',
    },
  ]);
  t.same(Object.keys(JSON.parse(result.environment.STACKATO_SERVICES)), ['tcp-existing']);
  t.equal(JSON.parse((await runHarbor(['services', '--json'], env)).stdout).length, 1, 'nothing created');
});

t.test(
  'manifest apply: two services that give the app one variable are refused before anything is created',
  async (t) => {
    const { api: url } = await node(t);
    const dir = await mkdtemp(join(tmpdir(), 'harbor-manifest-'));
    const env = { HARBOR_NODE_URL: url };
    await writeFile(join(dir, 'm.yml'), 'name: app\nservices:\n  my-port: harbor\n  My_Port: harbor\n');
    const clash = await runHarbor(['manifest', 'apply', 'm.yml'], env, dir);
    t.equal(clash.status, 78, 'a manifest that cannot be used');
    t.match(
      clash.stderr,
      /m\.yml: services "my-port" and "My_Port" both give the app STACKATO_HARBOR_MY_PORT .*rename one; nothing was created/,
    );
    t.equal(clash.stdout, '', 'no environment to eval');
    t.equal(JSON.parse((await runHarbor(['services', '--json'], env)).stdout).length, 0, 'nothing created');
    // One that exists already, bound by the list form beside a new one of the same variable.
    t.equal((await runHarbor(['create-service', 'tcp.one'], env)).status, 0);
    const twin = await runHarbor(['create-service', 'TCP_one'], env);
    t.equal(twin.status, 0, 'names are unique; the variable is only noted');
    t.match(
      twin.stderr,
      /^note: tcp\.one gives an app STACKATO_HARBOR_TCP_ONE too: an app bound to both could not tell them apart/m,
    );
    const json = await runHarbor(['create-service', 'tcp_ONE', '--json'], env);
    t.ok(JSON.parse(json.stdout).tcp_ONE, 'stdout stays JSON');
    t.match(json.stderr, /note: TCP_one, tcp\.one give an app STACKATO_HARBOR_TCP_ONE too/);
    for (const extra of ['TCP_one', 'tcp_ONE'])
      t.equal((await runHarbor(['delete-service', extra], env)).status, 0);
    await writeFile(join(dir, 'list.yml'), 'name: app\nservices:\n  - tcp.one\n  - tcp.one\n  - missing\n');
    const listed = await runHarbor(['manifest', 'apply', 'list.yml'], env, dir);
    t.equal(listed.status, 0, 'a name the list form binds twice, or one not on the node, is no clash');
    await writeFile(join(dir, 'both.yml'), 'name: app\nservices:\n  tcp.one: harbor\n  tcp-one: harbor\n');
    const both = await runHarbor(['manifest', 'apply', 'both.yml'], env, dir);
    t.equal(both.status, 78);
    t.match(both.stderr, /"tcp\.one" and "tcp-one" both give the app STACKATO_HARBOR_TCP_ONE/);
    t.equal(
      JSON.parse((await runHarbor(['services', '--json'], env)).stdout).length,
      1,
      'tcp-one not created',
    );
  },
);

t.test(
  'a node serving HTTPS: an untrusted certificate is named with what to do; HARBOR_NODE_CA trusts it',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-api-tls-'));
    const made = runSidecar(['certs', 'generate', '--name', 'api', '--host', '127.0.0.1', '--out', dir]);
    t.equal(made.status, 0, made.stderr);
    const certFile = join(dir, 'api.crt');
    const range = await freeRange(4);
    const { api: url } = await startNodeProcess(
      t,
      ['--ports', `${range.first}-${range.last}`, '--api-cert', certFile, '--api-key', join(dir, 'api.key')],
      { HARBOR_NODE_TOKEN: 'sekrit' },
    );
    t.match(url, /^https:\/\/127\.0\.0\.1:/, 'the ready line says the API serves TLS');
    const env = { HARBOR_NODE_URL: url, HARBOR_NODE_TOKEN: 'sekrit' };

    const untrusted = await runHarbor(['create-service', 'tcp-tls'], env);
    t.equal(untrusted.status, 1);
    t.match(
      untrusted.stderr,
      /DEPTH_ZERO_SELF_SIGNED_CERT: its certificate is not trusted here \(a private CA: set HARBOR_NODE_CA to its PEM file\)/,
    );
    const trusted = await runHarbor(['create-service', 'tcp-tls'], { ...env, HARBOR_NODE_CA: certFile });
    t.equal(trusted.status, 0, trusted.stderr);
    t.match(trusted.stdout, /"tcp-tls": \{/);
    // Node's own NODE_EXTRA_CA_CERTS is honoured too when HARBOR_NODE_CA is not set.
    const extra = await runHarbor(['services'], { ...env, NODE_EXTRA_CA_CERTS: certFile });
    t.equal(extra.status, 0, extra.stderr);

    const unreadable = await runHarbor(['services'], { ...env, HARBOR_NODE_CA: join(dir, 'missing.pem') });
    t.equal(unreadable.status, 78, 'a CA file that cannot be read is a configuration error');
    t.match(unreadable.stderr, /HARBOR_NODE_CA .*missing\.pem: cannot be read \(ENOENT\)/);

    // http:// to the TLS API: the dropped connection is explained.
    const plainUrl = await runHarbor(['services'], {
      ...env,
      HARBOR_NODE_URL: url.replace('https:', 'http:'),
    });
    t.equal(plainUrl.status, 1);
    t.match(plainUrl.stderr, /ECONNRESET: it closed the connection without answering \(a node serving HTTPS/);

    // https:// to a plain API: said as such, not a bare code.
    const { api: plainApi } = await node(t, { HARBOR_NODE_TOKEN: 'sekrit' });
    const plain = await runHarbor(['services'], {
      HARBOR_NODE_URL: plainApi.replace('http:', 'https:'),
      HARBOR_NODE_TOKEN: 'sekrit',
    });
    t.equal(plain.status, 1);
    t.match(plain.stderr, /: it does not speak TLS there \(an http:\/\/ URL\?\)/);
  },
);
