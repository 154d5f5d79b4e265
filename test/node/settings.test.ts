import t from 'tap';
import { NODE_SETTINGS, nodeHelpText, resolveNodeSettings } from '../../src/node/settings.js';

const context = { firstAddress: '10.0.0.5', stdoutIsTerminal: false, machineName: 'edge-1' };

t.test('defaults', async (t) => {
  const { settings, problems } = resolveNodeSettings({}, {}, context);
  t.same(problems, []);
  t.match(settings, {
    ports: { first: 35000, last: 40000 },
    api: { host: '127.0.0.1', port: 9700 },
    state: undefined,
    nodeId: 'harbor_node_1',
    member: 'edge-1/10.0.0.5',
    hostname: '10.0.0.5',
    host: '10.0.0.5',
    extHostname: undefined,
    extHost: undefined,
    listen: undefined,
    udpIdleTimeoutMs: 60_000,
    token: undefined,
    logLevel: 'info',
    pretty: false,
  });
  t.equal(
    resolveNodeSettings({}, {}, { firstAddress: undefined, stdoutIsTerminal: true, machineName: 'edge-1' })
      .settings?.host,
    '127.0.0.1',
  );
});

t.test('every setting from its variable; flags win over variables', async (t) => {
  const env = {
    HARBOR_NODE_PORTS: '30000-30010',
    HARBOR_NODE_API: '127.0.0.1:9800',
    HARBOR_NODE_STATE: '/var/lib/harbor/state.json',
    HARBOR_NODE_ID: 'harbor_node_2',
    HARBOR_NODE_HOSTNAME: 'node.internal',
    HARBOR_NODE_HOST: '10.0.0.9',
    HARBOR_NODE_EXT_HOSTNAME: 'ports.example.com',
    HARBOR_NODE_EXT_HOST: '203.0.113.4',
    HARBOR_NODE_LISTEN: '127.0.0.1',
    HARBOR_NODE_UDP_IDLE_TIMEOUT: '90s',
    HARBOR_NODE_TOKEN: 't',
    HARBOR_LOG_LEVEL: 'debug',
  };
  const fromEnv = resolveNodeSettings({}, env, context).settings;
  t.match(fromEnv, {
    ports: { first: 30000, last: 30010 },
    api: { port: 9800 },
    state: '/var/lib/harbor/state.json',
    nodeId: 'harbor_node_2',
    hostname: 'node.internal',
    host: '10.0.0.9',
    extHostname: 'ports.example.com',
    extHost: '203.0.113.4',
    listen: '127.0.0.1',
    udpIdleTimeoutMs: 90_000,
    token: 't',
    logLevel: 'debug',
  });
  const flags = {
    ports: '31000-31001',
    'node-id': 'flagged',
    'udp-idle-timeout': '5s',
    listen: '::1',
    host: '10.9.9.9',
  };
  t.match(resolveNodeSettings(flags, env, context).settings, {
    ports: { first: 31000, last: 31001 },
    nodeId: 'flagged',
    udpIdleTimeoutMs: 5000,
    listen: '::1',
    host: '10.9.9.9',
    hostname: 'node.internal',
  });
});

t.test('durations: days allowed; longer than 0 and no longer than a timer can wait', async (t) => {
  const resolve = (flags: Record<string, string>) => resolveNodeSettings(flags, {}, context);
  const ok = resolve({ 'udp-idle-timeout': '2d', 'tcp-idle-timeout': '0', 'drain-timeout': '596h' });
  t.equal(ok.settings?.udpIdleTimeoutMs, 2 * 86_400_000);
  t.equal(ok.settings?.tcpIdleTimeoutMs, 0, '--tcp-idle-timeout 0: never');
  t.equal(ok.settings?.drainTimeoutMs, 596 * 3_600_000);
  for (const flag of ['udp-idle-timeout', 'tcp-idle-timeout', 'drain-timeout', 'check-interval']) {
    const { settings, problems } = resolve({ [flag]: '25d' });
    t.equal(settings, undefined, flag);
    t.match(problems, [
      {
        code: 'E_SETTING',
        message: `--${flag} "25d": must be at most 596h (about 24.8 days, the longest a timer can wait)`,
      },
    ]);
  }
  for (const flag of ['udp-idle-timeout', 'drain-timeout', 'check-interval']) {
    t.match(resolve({ [flag]: '0s' }).problems, [{ message: `--${flag} "0s": must be longer than 0` }], flag);
  }
});

t.test('bad values: every problem at once, each naming its flag or variable', async (t) => {
  const { settings, problems } = resolveNodeSettings(
    { ports: '40000-35000', 'udp-idle-timeout': 'soon' },
    { HARBOR_NODE_API: 'nowhere', HARBOR_NODE_LISTEN: 'eth0', HARBOR_LOG_LEVEL: 'loud' },
    context,
  );
  t.equal(settings, undefined);
  t.equal(problems.length, 5);
  t.ok(problems.every((p) => p.code === 'E_SETTING'));
  const text = problems.map((p) => p.message).join('\n');
  t.match(text, /--ports "40000-35000"/);
  t.match(text, /--udp-idle-timeout "soon"/);
  t.match(text, /HARBOR_NODE_API "nowhere"/);
  t.match(text, /HARBOR_NODE_LISTEN "eth0": must be an IP address/);
  t.match(text, /HARBOR_LOG_LEVEL "loud"/);
});

t.test('an API off loopback needs a token', async (t) => {
  const refused = resolveNodeSettings({ api: '0.0.0.0:9700' }, {}, context);
  t.equal(refused.settings, undefined);
  t.match(
    refused.problems[0]?.message,
    /--api "0.0.0.0:9700": the API is not on a loopback address and HARBOR_NODE_TOKEN is not set/,
  );
  t.ok(resolveNodeSettings({ api: '0.0.0.0:9700' }, { HARBOR_NODE_TOKEN: 'x' }, context).settings);
  t.ok(resolveNodeSettings({ api: '[::1]:9700' }, {}, context).settings);
});

t.test('--api-cert and --api-key: both serve HTTPS; one alone is refused, naming the other', async (t) => {
  t.equal(resolveNodeSettings({}, {}, context).settings?.apiTls, undefined, 'plain HTTP by default');
  t.same(
    resolveNodeSettings({}, { HARBOR_NODE_API_CERT: '/c.pem', HARBOR_NODE_API_KEY: '/k.pem' }, context)
      .settings?.apiTls,
    { certFile: '/c.pem', keyFile: '/k.pem' },
  );
  const certOnly = resolveNodeSettings({ 'api-cert': '/c.pem' }, {}, context);
  t.equal(certOnly.settings, undefined);
  t.match(certOnly.problems, [
    { code: 'E_SETTING', message: '--api-cert "/c.pem": needs --api-key (HARBOR_NODE_API_KEY) too' },
  ]);
  const keyOnly = resolveNodeSettings({}, { HARBOR_NODE_API_KEY: '/k.pem' }, context);
  t.match(keyOnly.problems, [
    { message: /^HARBOR_NODE_API_KEY "\/k.pem": needs --api-cert \(HARBOR_NODE_API_CERT\) too/ },
  ]);
});

t.test('--store: each kind; --state is its short form; the password never shows', async (t) => {
  const store = (flags: Record<string, string>, env: Record<string, string> = {}) =>
    resolveNodeSettings(flags, env, context);
  t.match(store({}).settings?.store, { kind: 'memory' });
  t.match(store({ state: '/s.json' }).settings?.store, { kind: 'file', path: '/s.json' });
  t.match(store({ store: 'file:/s.json', state: '/s.json' }).settings?.store, {
    kind: 'file',
    path: '/s.json',
  });
  t.match(store({ store: 'redis://10.0.0.7:6380/2' }).settings?.store, {
    kind: 'redis',
    endpoints: [{ host: '10.0.0.7', port: 6380 }],
    db: 2,
    tls: false,
    sentinelMaster: undefined,
  });
  t.match(store({ store: 'rediss://cache.example' }).settings?.store, {
    tls: true,
    endpoints: [{ host: 'cache.example', port: 6379 }],
  });
  t.match(store({ store: 'redis-sentinel://127.0.0.1:26379,[::1]/harbor' }).settings?.store, {
    endpoints: [
      { host: '127.0.0.1', port: 26379 },
      { host: '::1', port: 26379 },
    ],
    sentinelMaster: 'harbor',
  });
  const withSecret = store({ store: 'redis://app:s3cret@10.0.0.7:6379' }).settings?.store;
  t.match(withSecret, { username: 'app', password: 's3cret', description: 'redis://app@10.0.0.7:6379' });
  t.notMatch(withSecret?.description, /s3cret/);
  t.match(store({ store: 'redis://10.0.0.7' }, { HARBOR_NODE_STORE_PASSWORD: 'fromenv' }).settings?.store, {
    password: 'fromenv',
  });
  for (const [value, reason] of [
    ['mysql://x', /must be file:PATH, memory, redis:\/\//],
    ['redis://a:1,b:2', /one host/],
    ['redis-sentinel://127.0.0.1:26379', /master name/],
    ['redis://h:99999', /port 99999/],
    ['redis://h/16', /database/],
    ['file:', /needs a path/],
  ] as const) {
    const { settings, problems } = store({ store: value });
    t.equal(settings, undefined, value);
    t.match(problems[0]?.message, reason, value);
    t.match(problems[0]?.message, /^--store /, 'names the flag');
  }
  const bad = store({ store: 'redis://u:hunter2@h:99999' });
  t.notMatch(bad.problems[0]?.message, /hunter2/, 'a refused URL is shown without its password');
  t.match(store({ store: 'memory', state: '/s.json' }).problems[0]?.message, /another store than --state/);
});

t.test('--cluster-host and --cluster-hostname win in the credentials', async (t) => {
  const { settings } = resolveNodeSettings(
    { host: '10.0.0.21', 'cluster-host': '10.0.0.100', 'cluster-hostname': 'ports.example.com' },
    {},
    context,
  );
  t.match(settings, { host: '10.0.0.100', hostname: 'ports.example.com' });
  t.match(resolveNodeSettings({ 'cluster-host': '10.0.0.100' }, {}, context).settings, {
    host: '10.0.0.100',
    hostname: '10.0.0.100',
  });
});

t.test(
  '--member names this node among a cluster; by default the machine and its listen address',
  async (t) => {
    t.equal(resolveNodeSettings({ listen: '10.0.0.7' }, {}, context).settings?.member, 'edge-1/10.0.0.7');
    t.equal(
      resolveNodeSettings({ 'cluster-host': '10.0.0.100', host: '10.0.0.8' }, {}, context).settings?.member,
      'edge-1/10.0.0.8',
      'its own address, not the cluster one',
    );
    t.equal(resolveNodeSettings({}, { HARBOR_NODE_MEMBER: 'edge-b' }, context).settings?.member, 'edge-b');
    const { problems } = resolveNodeSettings({ member: 'two words' }, {}, context);
    t.match(problems, [{ code: 'E_SETTING', message: /^--member "two words": must be 1-128 printable/ }]);
  },
);

t.test('--api-connections and --udp-sessions-per-source: counts, checked', async (t) => {
  t.match(resolveNodeSettings({}, {}, context).settings, { apiConnections: 64, udpSessionsPerSource: 256 });
  t.match(
    resolveNodeSettings({ 'api-connections': '200' }, { HARBOR_NODE_UDP_SESSIONS_PER_SOURCE: '16' }, context)
      .settings,
    { apiConnections: 200, udpSessionsPerSource: 16 },
  );
  const { problems } = resolveNodeSettings({ 'api-connections': '0' }, {}, context);
  t.match(problems, [{ message: /^--api-connections "0": must be a positive integer/ }]);
});

t.test('--help: every setting in one row, its variable and its help each in one column', async (t) => {
  const rows = nodeHelpText()
    .split('\n')
    .filter((line) => /^ {2}(--|\s+HARBOR_)/.test(line));
  const settings = Object.values(NODE_SETTINGS);
  t.equal(rows.length, settings.length + 3, 'the settings, --pretty and the two secret variables');
  const helpColumn = (line: string) => /^ {2}\S*\s+\S+\s{2,}/.exec(line)?.[0].length;
  for (const d of settings) {
    const row = rows.find((line) => line.startsWith(`  --${d.flag} `));
    t.ok(row, `--${d.flag} has a row`);
    t.equal(
      row?.indexOf(d.env[0] as string),
      rows[0]?.indexOf('HARBOR_'),
      `--${d.flag}: its variable in line`,
    );
    t.equal(helpColumn(row ?? ''), helpColumn(rows[0] as string), `--${d.flag}: its help in line`);
  }
});
