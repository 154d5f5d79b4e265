import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type Machine, resolveSidecarSettings } from '../../src/config/settings.js';
import { OpensslFactory } from '../fixtures/certs-helpers.js';

const machine = (files: Record<string, string> = {}): Machine => ({
  cwd: '/srv/app',
  hostname: 'container-7',
  readFile: (p) => {
    const text = files[p];
    if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    return text;
  },
  stdoutIsTerminal: false,
});

t.test('defaults', async (t) => {
  const { settings, problems } = resolveSidecarSettings({}, {}, machine());
  t.same(problems, []);
  t.match(settings, {
    appRoot: '/srv/app',
    backend: undefined,
    admin: { kind: 'tcp', host: '127.0.0.1', port: 9701 },
    drainTimeoutMs: 10_000,
    backendTimeoutMs: 60_000,
    listenHosts: ['0.0.0.0', '::'],
    instanceId: 'container-7',
    format: 'shell',
    logLevel: 'info',
    pretty: false,
  });
  t.ok(Object.isFrozen(settings));
});

t.test(
  'an explicit certificate folder by flag or HARBOR_CERTS_DIR (src/certs finds certs/ or cert/ otherwise)',
  async (t) => {
    t.equal(resolveSidecarSettings({}, {}, machine()).settings.certsDir, undefined);
    t.equal(resolveSidecarSettings({}, { HARBOR_CERTS_DIR: '/x' }, machine()).settings.certsDir, '/x');
    t.equal(
      resolveSidecarSettings({ 'certs-dir': '/f' }, { HARBOR_CERTS_DIR: '/x' }, machine()).settings.certsDir,
      '/f',
    );
  },
);

t.test('app root: flag, then HARBOR_APP_ROOT, then STACKATO_APP_ROOT', async (t) => {
  const env = { HARBOR_APP_ROOT: '/h', STACKATO_APP_ROOT: '/s' };
  t.equal(resolveSidecarSettings({ 'app-root': '/f' }, env, machine()).settings.appRoot, '/f');
  t.equal(resolveSidecarSettings({}, env, machine()).settings.appRoot, '/h');
  t.equal(resolveSidecarSettings({}, { STACKATO_APP_ROOT: '/s' }, machine()).settings.appRoot, '/s');
});

t.test(
  'backend: flag, HARBOR_BACKEND, then 127.0.0.1:$PORT, then $VCAP_APP_PORT; unix sockets too',
  async (t) => {
    const backend = (flags: Record<string, string>, env: Record<string, string>) =>
      resolveSidecarSettings(flags, env, machine()).settings.backend;
    t.same(backend({}, { VCAP_APP_PORT: '8081' }), { kind: 'tcp', host: '127.0.0.1', port: 8081 });
    t.same(backend({}, { PORT: '8080', VCAP_APP_PORT: '8081' }), {
      kind: 'tcp',
      host: '127.0.0.1',
      port: 8080,
    });
    t.same(backend({}, { HARBOR_BACKEND: '/tmp/uwsgi.sock', PORT: '1' }), {
      kind: 'unix',
      path: '/tmp/uwsgi.sock',
    });
    t.same(backend({ backend: '[::1]:9000' }, { HARBOR_BACKEND: '10.0.0.1:1' }), {
      kind: 'tcp',
      host: '::1',
      port: 9000,
    });
    t.same(backend({ backend: 'unix:./app.sock' }, {}), { kind: 'unix', path: './app.sock' });
    const { problems } = resolveSidecarSettings({}, { PORT: 'eighty' }, machine());
    t.match(problems, [{ code: 'E_BACKEND', message: /^PORT must be host:port/ }]);
    const port = resolveSidecarSettings({ backend: 'localhost:99999' }, {}, machine()).problems;
    t.match(port, [{ code: 'E_BACKEND', message: /^--backend has a port that must be an integer 1-65535/ }]);
  },
);

t.test('every bad value is reported at once, naming flag or variable', async (t) => {
  const { problems } = resolveSidecarSettings(
    { 'drain-timeout': 'soon' },
    {
      HARBOR_BACKEND_TIMEOUT: '-1',
      HARBOR_LOG_LEVEL: 'loud',
      HARBOR_ADMIN: 'nowhere',
      HARBOR_MAX_CONNECTIONS: '0',
    },
    machine(),
  );
  t.same(
    problems.map((p) => p.message.split(' ')[0]),
    [
      'HARBOR_ADMIN',
      'HARBOR_BACKEND_TIMEOUT',
      '--drain-timeout',
      'HARBOR_MAX_CONNECTIONS',
      'HARBOR_LOG_LEVEL',
    ],
  );
  t.ok(problems.every((p) => p.code === 'E_SETTING'));
});

t.test('--max-buffered-body: a size with k, m or g, or off', async (t) => {
  const held = (value: string) =>
    resolveSidecarSettings({ 'max-buffered-body': value }, {}, machine()).settings.maxBufferedBodyBytes;
  t.equal(held('512k'), 512 * 1024);
  t.equal(held('8M'), 8 * 1024 * 1024);
  t.equal(held('1g'), 1024 ** 3);
  t.equal(held('1048576'), 1048576);
  t.equal(held('off'), 0, 'off: bodies without a length go chunked');
  t.equal(
    resolveSidecarSettings({}, { HARBOR_MAX_BUFFERED_BODY: '2m' }, machine()).settings.maxBufferedBodyBytes,
    2 * 1024 * 1024,
  );
  for (const bad of ['lots', '0', '-1m', '1.5m']) {
    const { problems } = resolveSidecarSettings({ 'max-buffered-body': bad }, {}, machine());
    t.match(
      problems,
      [{ code: 'E_SETTING', message: /^--max-buffered-body must be a size such as 512k/ }],
      bad,
    );
  }
});

t.test('timeouts and the TTL: longer than 0, no longer than a timer (or a node) can wait', async (t) => {
  const resolve = (flags: Record<string, string>) => resolveSidecarSettings(flags, {}, machine());
  const { settings } = resolve({
    'idle-timeout': '1d',
    'header-timeout': '596h',
    'backend-timeout': '90',
    'drain-timeout': '1.5s',
    'node-ttl': '24h',
  });
  t.equal(settings.idleTimeoutMs, 86_400_000, 'd: days');
  t.equal(settings.headerTimeoutMs, 596 * 3_600_000, 'the longest a timer waits is just above 596h');
  t.equal(settings.backendTimeoutMs, 90_000, 'a bare number: seconds');
  t.equal(settings.drainTimeoutMs, 1500);
  t.equal(settings.nodeTtlMs, 86_400_000);
  // Each of these would arm a timer that fires at once (0, or past 2^31-1 ms, which Node turns
  // into 1 ms) or that a node refuses: a response cut as soon as its client is slow.
  for (const flag of ['backend-timeout', 'drain-timeout', 'header-timeout', 'idle-timeout', 'node-ttl']) {
    for (const bad of ['0', '0ms', '0.2ms']) {
      t.match(
        resolve({ [flag]: bad }).problems,
        [{ code: 'E_SETTING', message: `--${flag} must be longer than 0, not "${bad}"` }],
        `${flag} ${bad}`,
      );
    }
  }
  for (const flag of ['backend-timeout', 'drain-timeout', 'header-timeout', 'idle-timeout']) {
    t.match(resolve({ [flag]: '597h' }).problems, [
      {
        message: `--${flag} must be at most 596h (about 24.8 days, the longest a timer can wait), not "597h"`,
      },
    ]);
    t.match(resolve({ [flag]: '25d' }).problems, [{ message: /must be at most 596h/ }]);
  }
  t.match(resolveSidecarSettings({}, { HARBOR_NODE_TTL: '2d' }, machine()).problems, [
    { code: 'E_SETTING', message: 'HARBOR_NODE_TTL must be at most 24h (what a node accepts), not "2d"' },
  ]);
  t.match(resolve({ 'idle-timeout': '1w' }).problems, [
    { message: '--idle-timeout must be a duration such as 10s, 500ms, 2m or 1d, not "1w"' },
  ]);
});

t.test('--max-header-size: bytes or k/m, 1k to 1m', async (t) => {
  const size = (value: string) => resolveSidecarSettings({ 'max-header-size': value }, {}, machine());
  t.equal(size('32k').settings.maxHeaderBytes, 32 * 1024);
  t.equal(size('1m').settings.maxHeaderBytes, 1024 * 1024);
  t.equal(size('8192').settings.maxHeaderBytes, 8192);
  // 5000000000 was taken, and the first HTTP/2 client then crashed the proxy: nghttp2's header
  // list limit (twice this) must fit 32 bits.
  for (const bad of ['5000000000', '2m', '512']) {
    t.match(
      size(bad).problems,
      [
        {
          code: 'E_SETTING',
          message: `--max-header-size must be 1k to 1m (1024 to 1048576 bytes), not "${bad}"`,
        },
      ],
      bad,
    );
  }
  t.match(size('big').problems, [{ message: /^--max-header-size must be a size such as 512k/ }]);
});

t.test('--listen: each address once; a wildcard and an address it covers are refused', async (t) => {
  const listen = (value: string) => resolveSidecarSettings({ listen: value }, {}, machine());
  t.same(listen('127.0.0.1, [::1], 127.0.0.1').settings.listenHosts, ['127.0.0.1', '::1']);
  t.same(listen('0.0.0.0,::1').settings.listenHosts, ['0.0.0.0', '::1'], 'another family');
  // Both were taken, and the second bind failed as "port 443 is already taken on 127.0.0.1".
  t.match(listen('0.0.0.0,127.0.0.1').problems, [
    {
      code: 'E_SETTING',
      message:
        '--listen lists 0.0.0.0, which already covers 127.0.0.1: list one of them, not "0.0.0.0,127.0.0.1"',
    },
  ]);
  t.match(listen('::1,::').problems, [{ message: /^--listen lists ::, which already covers ::1/ }]);
});

t.test('a unix socket path the system would cut short is refused (backend, admin)', async (t) => {
  const path107 = `/tmp/${'a'.repeat(97)}.sock`;
  t.equal(path107.length, 107);
  const fits = resolveSidecarSettings({ backend: path107, admin: `unix:${path107}` }, {}, machine());
  t.same(fits.problems, []);
  t.same(fits.settings.backend, { kind: 'unix', path: path107 });
  // 108 bytes and more: Node binds and connects to the first 107, another socket than the one
  // named (a backend and an admin endpoint sharing those 107 bytes answered for each other).
  const long = `${path107}x`;
  const { problems } = resolveSidecarSettings({ backend: long, admin: long }, {}, machine());
  t.match(problems, [
    { code: 'E_BACKEND', message: /^--backend is a unix socket path of 108 bytes, past the 107/ },
    { code: 'E_SETTING', message: /^--admin is a unix socket path of 108 bytes/ },
  ]);
  const wide = `/tmp/${'é'.repeat(50)}.sock`;
  t.match(
    resolveSidecarSettings({ backend: wide }, {}, machine()).problems,
    [{ message: /of 110 bytes/ }],
    'bytes, not characters',
  );
});

t.test('flags win over variables', async (t) => {
  const { settings } = resolveSidecarSettings(
    { 'drain-timeout': '500ms', admin: 'off' },
    { HARBOR_DRAIN_TIMEOUT: '3s', HARBOR_ADMIN: '127.0.0.1:1' },
    machine(),
  );
  t.equal(settings.drainTimeoutMs, 500);
  t.equal(settings.admin, 'off');
});

t.test('debug shell: --service and --int-port make one service without a platform environment', async (t) => {
  const { settings, problems } = resolveSidecarSettings(
    { service: 'shop-https', 'int-port': '4443', 'ext-port': '35000' },
    { STACKATO_SERVICES: '{"ignored": {"int_port": 1}}' },
    machine(),
  );
  t.same(problems, []);
  t.match(settings.services, [{ name: 'shop-https', intPort: 4443, port: 35000, https: true }]);
  const half = resolveSidecarSettings({ service: 'x' }, {}, machine()).problems;
  t.match(half, [{ code: 'E_SETTING', message: '--service needs --int-port as well' }]);
});

t.test('passphrase from HARBOR_KEY_PASSPHRASE or a file; instance id chain; app name', async (t) => {
  t.equal(
    resolveSidecarSettings({}, { HARBOR_KEY_PASSPHRASE: 'pw' }, machine()).settings.keyPassphrase,
    'pw',
  );
  const fromFile = resolveSidecarSettings(
    { 'key-passphrase-file': '/run/pw' },
    {},
    machine({ '/run/pw': 'secret\n' }),
  );
  t.equal(fromFile.settings.keyPassphrase, 'secret');
  const missing = resolveSidecarSettings({ 'key-passphrase-file': '/run/none' }, {}, machine());
  t.match(missing.problems, [{ code: 'E_SETTING', message: /\/run\/none cannot be read: ENOENT/ }]);
  const vcap = JSON.stringify({ instance_id: 'abc', name: 'my-app' });
  t.equal(resolveSidecarSettings({}, { VCAP_APPLICATION: vcap }, machine()).settings.instanceId, 'abc');
  t.equal(
    resolveSidecarSettings({}, { VCAP_APPLICATION: vcap, CF_INSTANCE_GUID: 'g' }, machine()).settings
      .instanceId,
    'g',
  );
  t.equal(resolveSidecarSettings({}, { VCAP_APPLICATION: vcap }, machine()).settings.appName, 'my-app');
  t.equal(
    resolveSidecarSettings({}, { VCAP_APPLICATION: vcap, STACKATO_APP_NAME: 'x' }, machine()).settings
      .appName,
    'x',
  );
  const broken = resolveSidecarSettings({}, { VCAP_APPLICATION: '{' }, machine());
  t.match(broken.problems, [{ code: 'E_ENV_JSON', message: /^VCAP_APPLICATION is not valid JSON/ }]);
});

t.test('forwards by flag or HARBOR_FORWARD_<NAME>, checked against the services', async (t) => {
  const env = {
    STACKATO_SERVICES: JSON.stringify({ 'ldap-port': { int_port: 4100 }, 'udp-dns': { int_port: 4101 } }),
    HARBOR_FORWARD_UDP_DNS: '127.0.0.1:5353',
  };
  const { settings, problems } = resolveSidecarSettings(
    { forward: ['ldap-port=127.0.0.1:389'] },
    env,
    machine(),
  );
  t.same(problems, []);
  t.same(settings.forwards, [
    { service: 'ldap-port', target: { kind: 'tcp', host: '127.0.0.1', port: 389 } },
    { service: 'udp-dns', target: { kind: 'tcp', host: '127.0.0.1', port: 5353 } },
  ]);
  const bad = resolveSidecarSettings(
    { forward: ['nope=1.2.3.4:5', 'ldap-port'] },
    { ...env, HARBOR_FORWARD_X: '1:1' },
    machine(),
  );
  t.same(
    bad.problems.map((p) => p.message),
    [
      '--forward must be NAME=HOST:PORT, not "ldap-port"',
      'HARBOR_FORWARD_X names no Harbor service (known: ldap-port, udp-dns)',
      '--forward names no Harbor service "nope" (known: ldap-port, udp-dns)',
    ],
  );
});

t.test(
  'a forward on an https service is refused where settings are resolved, unless it carries UDP',
  async (t) => {
    const env = {
      STACKATO_SERVICES: JSON.stringify({
        'web-https': { int_port: 4100 },
        'both-game-https': { int_port: 4101 },
      }),
      HARBOR_FORWARD_BOTH_GAME_HTTPS: '127.0.0.1:7000',
    };
    const { settings, problems } = resolveSidecarSettings(
      { forward: ['web-https=127.0.0.1:8080'] },
      env,
      machine(),
    );
    t.same(
      problems.map((p) => p.message),
      [
        '--forward for "web-https": the service is served by the HTTPS proxy, so a forward does not apply to it',
      ],
    );
    t.same(
      settings.forwards.map((f) => f.service),
      ['both-game-https'],
      'a both- https service keeps its UDP forward',
    );
  },
);

t.test(
  '--udp-check / HARBOR_UDP_CHECK: kept when valid, a problem naming the variable when not',
  async (t) => {
    t.equal(resolveSidecarSettings({}, { HARBOR_UDP_CHECK: 'ping' }, machine()).settings.udpCheck, 'ping');
    t.equal(resolveSidecarSettings({ 'udp-check': 'hex:0a0b' }, {}, machine()).settings.udpCheck, 'hex:0a0b');
    const { problems } = resolveSidecarSettings({}, { HARBOR_UDP_CHECK: 'hex:zz' }, machine());
    t.match(problems, [
      { code: 'E_SETTING', message: /^HARBOR_UDP_CHECK must have an even number of hex digits/ },
    ]);
  },
);

t.test('--backend-protocol: http1 by default, or h2c', async (t) => {
  t.equal(resolveSidecarSettings({}, {}, machine()).settings.backendProtocol, 'http1');
  const env = { HARBOR_BACKEND_PROTOCOL: 'h2c' };
  t.equal(resolveSidecarSettings({}, env, machine()).settings.backendProtocol, 'h2c');
  t.equal(
    resolveSidecarSettings({ 'backend-protocol': 'http1' }, env, machine()).settings.backendProtocol,
    'http1',
    'the flag wins',
  );
  const { problems } = resolveSidecarSettings({}, { HARBOR_BACKEND_PROTOCOL: 'grpc' }, machine());
  t.same(problems, [
    { code: 'E_SETTING', message: 'HARBOR_BACKEND_PROTOCOL must be one of http1, h2c, not "grpc"' },
  ]);
});

t.test('--grpc-web-origins: origins or *, with h2c only; a problem naming what is wrong', async (t) => {
  const h2c = { HARBOR_BACKEND_PROTOCOL: 'h2c' };
  const origins = (value: string, env: Record<string, string> = h2c) =>
    resolveSidecarSettings({ 'grpc-web-origins': value }, env, machine());
  t.same(resolveSidecarSettings({}, h2c, machine()).settings.grpcWebOrigins, [], 'none by default');
  t.same(
    origins(' https://App.Example.com , http://localhost:3000/').settings.grpcWebOrigins,
    ['https://app.example.com', 'http://localhost:3000'],
    'as a browser sends them in Origin',
  );
  t.same(origins('*').settings.grpcWebOrigins, ['*']);
  t.same(
    resolveSidecarSettings({}, { ...h2c, HARBOR_GRPC_WEB_ORIGINS: 'https://a.example' }, machine()).settings
      .grpcWebOrigins,
    ['https://a.example'],
  );
  for (const bad of ['app.example.com', 'https://a.example/app', 'ftp://a.example', 'https://a.example?x']) {
    t.match(
      origins(bad).problems,
      [
        {
          code: 'E_SETTING',
          message: `--grpc-web-origins "${bad}" is not an origin: scheme://host[:port], such as https://app.example.com, or *`,
        },
      ],
      bad,
    );
  }
  t.match(origins('*, https://a.example').problems, [{ message: /lists \* beside origins/ }]);
  t.match(origins(' , ').problems, [{ message: /must name an origin/ }]);
  t.same(origins('https://a.example', {}).problems, [
    {
      code: 'E_SETTING',
      message:
        '--grpc-web-origins needs --backend-protocol h2c: gRPC-Web is translated for an h2c backend only',
    },
  ]);
});

t.test('--hsts: the header value, or a problem naming what is wrong', async (t) => {
  const hsts = (value: string) => resolveSidecarSettings({ hsts: value }, {}, machine());
  t.equal(hsts('31536000').settings.hsts, 'max-age=31536000');
  t.equal(hsts('8760h,includeSubDomains').settings.hsts, 'max-age=31536000; includeSubDomains');
  t.equal(
    resolveSidecarSettings({}, { HARBOR_HSTS: '63072000, includeSubDomains, preload' }, machine()).settings
      .hsts,
    'max-age=63072000; includeSubDomains; preload',
  );
  t.equal(resolveSidecarSettings({}, {}, machine()).settings.hsts, undefined, 'off by default');
  t.equal(
    hsts('365d,includeSubDomains,preload').settings.hsts,
    'max-age=31536000; includeSubDomains; preload',
  );
  t.equal(hsts('0').settings.hsts, 'max-age=0', '0: browsers forget the policy');
  t.match(hsts('1y').problems, [
    { message: /^--hsts max-age "1y" must be seconds \(31536000\) or a duration \(365d\)/ },
  ]);
  t.match(hsts('300,preload').problems, [
    { message: /preload needs includeSubDomains and a max-age of a year/ },
  ]);
  t.match(hsts('300,sometimes').problems, [{ message: /"sometimes" is not includeSubDomains or preload/ }]);
});

t.test(
  '--node-ca (HARBOR_NODE_CA): read at start; a file that cannot be read or holds no certificate is named',
  async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'node-ca-'));
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
    const factory = new OpensslFactory(scratch);
    const keyFile = factory.key();
    const pem = readFileSync(factory.cert({ cn: 'CA', keyFile, ca: true }), 'utf8');
    const files = { '/ca.pem': pem, '/key.pem': readFileSync(keyFile, 'utf8') };
    t.equal(
      resolveSidecarSettings({}, {}, machine(files)).settings.nodeCa,
      undefined,
      "the system's roots by default",
    );
    t.equal(resolveSidecarSettings({}, { HARBOR_NODE_CA: '/ca.pem' }, machine(files)).settings.nodeCa, pem);
    const missing = resolveSidecarSettings({ 'node-ca': '/none.pem' }, {}, machine(files));
    t.match(missing.problems, [
      { code: 'E_SETTING', message: '--node-ca /none.pem: cannot be read (ENOENT)' },
    ]);
    const key = resolveSidecarSettings({}, { HARBOR_NODE_CA: '/key.pem' }, machine(files));
    t.match(key.problems, [
      { code: 'E_SETTING', message: 'HARBOR_NODE_CA /key.pem: holds no PEM CA certificate that parses' },
    ]);
  },
);
