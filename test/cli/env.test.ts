import { execFileSync } from 'node:child_process';
import t from 'tap';
import { cleanEnv, runSidecar, SIDECAR_BIN } from '../helpers/cli.js';

const services = JSON.stringify({
  'udp-my-app': { int_port: 4100, port: 35001, name: 'u1' },
  'tcp-my-app': { int_port: 4101, port: 35002, name: 'u2' },
  mysql: { host: 'db', port: 3306 },
});

t.test(
  'env output evaluated by a real bash, with the seed indirection through STACKATO_APP_NAME_UPCASE',
  async (t) => {
    const script = `
    eval "$(node ${SIDECAR_BIN} env)" || exit 9
    UDP_SERVICE_NAME=STACKATO_HARBOR_UDP_\${STACKATO_APP_NAME_UPCASE}
    UDP_SERVICE_PORT=\${!UDP_SERVICE_NAME}
    echo "udp=$UDP_SERVICE_PORT tcp=$STACKATO_HARBOR_TCP_MY_APP single=\${STACKATO_HARBOR-unset} upcase=$STACKATO_APP_NAME_UPCASE"`;
    const out = execFileSync('bash', ['-c', script], {
      env: cleanEnv({ STACKATO_SERVICES: services, STACKATO_APP_NAME: 'my-app' }),
      encoding: 'utf8',
    });
    t.equal(out.trim(), 'udp=4100 tcp=4101 single=unset upcase=MY_APP');
  },
);

t.test("the seed's indirection for an app whose name starts with a digit, in a real bash", async (t) => {
  const script = `
    eval "$(node ${SIDECAR_BIN} env)" || exit 9
    NAME=STACKATO_HARBOR_UDP_\${STACKATO_APP_NAME_UPCASE}
    echo "upcase=$STACKATO_APP_NAME_UPCASE port=\${!NAME-unset}"`;
  const out = execFileSync('bash', ['-c', script], {
    env: cleanEnv({
      STACKATO_SERVICES: JSON.stringify({ 'udp-9lives': { int_port: 4100 } }),
      STACKATO_APP_NAME: '9lives',
    }),
    encoding: 'utf8',
  });
  t.equal(out.trim(), 'upcase=9LIVES port=4100');
});

t.test('one service exports STACKATO_HARBOR and its own variable; dotenv and json formats', async (t) => {
  const env = {
    VCAP_SERVICES: JSON.stringify({ harbor: [{ name: 'debug-port', credentials: { int_port: '4100' } }] }),
  };
  const shell = runSidecar(['env'], env);
  t.equal(shell.status, 0);
  t.equal(shell.stdout, "export STACKATO_HARBOR='4100'\nexport STACKATO_HARBOR_DEBUG_PORT='4100'\n");
  t.equal(
    runSidecar(['env', '--format', 'dotenv'], env).stdout,
    'STACKATO_HARBOR=4100\nSTACKATO_HARBOR_DEBUG_PORT=4100\n',
  );
  t.same(JSON.parse(runSidecar(['env'], { ...env, HARBOR_ENV_FORMAT: 'json' }).stdout), {
    STACKATO_HARBOR: '4100',
    STACKATO_HARBOR_DEBUG_PORT: '4100',
  });
});

t.test('bad input: one line naming the variable, exit 78; usage errors exit 2', async (t) => {
  const json = runSidecar(['env'], { STACKATO_SERVICES: '{"a": ' });
  t.equal(json.status, 78);
  t.equal(json.stdout, '');
  t.match(
    json.stderr,
    /^error: STACKATO_SERVICES is not valid JSON \(at the end: the text ends early\) \[E_ENV_JSON\]\n$/,
  );
  const port = runSidecar(['env'], { STACKATO_SERVICES: JSON.stringify({ p: { int_port: 70000 } }) });
  t.equal(port.status, 78);
  t.match(port.stderr, /service "p" \(STACKATO_SERVICES\): int_port must be an integer 1-65535, not 70000/);
  const clash = runSidecar(['env'], {
    STACKATO_SERVICES: JSON.stringify({ 'a-b': { int_port: 1 }, a_b: { int_port: 2 } }),
  });
  t.equal(clash.status, 78);
  t.match(clash.stderr, /"a-b" and "a_b" both map to STACKATO_HARBOR_A_B/);
  const format = runSidecar(['env', '--format', 'yaml']);
  t.equal(format.status, 78);
  t.match(format.stderr, /--format must be one of shell, dotenv, json, not "yaml"/);
  const flag = runSidecar(['env', '--bogus']);
  t.equal(flag.status, 2);
  t.match(flag.stderr, /unknown flag --bogus \[E_USAGE\]/);
  const command = runSidecar(['frobnicate']);
  t.equal(command.status, 2);
  t.match(command.stderr, /unknown command "frobnicate"/);
});

t.test('a setting only `run` reads does not stop env or exec; check and run still refuse it', async (t) => {
  const services = { STACKATO_SERVICES: JSON.stringify({ p: { int_port: 4100 } }) };
  const bad: Record<string, [string, RegExp]> = {
    HARBOR_NODE_URL: ['bogus', /HARBOR_NODE_URL must be a URL, not "bogus"/],
    HARBOR_NODE_CA: [
      '/nonexistent/ca.pem',
      /HARBOR_NODE_CA \/nonexistent\/ca\.pem: cannot be read \(ENOENT\)/,
    ],
    HARBOR_ACCESS_LOG: ['loud', /HARBOR_ACCESS_LOG must be one of off, json, combined, not "loud"/],
    HARBOR_BACKEND_PROTOCOL: ['h2', /HARBOR_BACKEND_PROTOCOL must be one of http1, h2c, not "h2"/],
    HARBOR_FORWARD_P: ['nowhere', /HARBOR_FORWARD_P/],
  };
  for (const [name, [value, message]] of Object.entries(bad)) {
    const env = { ...services, [name]: value };
    const exported = runSidecar(['env'], env);
    t.equal(exported.status, 0, `env with a bad ${name}`);
    t.equal(exported.stdout, "export STACKATO_HARBOR='4100'\nexport STACKATO_HARBOR_P='4100'\n");
    t.equal(exported.stderr, '', `env says nothing of ${name}`);
    const ran = runSidecar(['exec', '--', 'sh', '-c', 'echo "$STACKATO_HARBOR_P"'], env);
    t.equal(ran.status, 0, `exec with a bad ${name}`);
    t.equal(ran.stdout, '4100\n');
    const checked = runSidecar(['check'], env);
    t.equal(checked.status, 78, `check refuses a bad ${name}`);
    t.match(checked.stdout, message);
    const served = runSidecar(['run'], env);
    t.equal(served.status, 78, `run refuses a bad ${name}`);
    t.match(served.stderr, message);
  }
  const help = runSidecar(['check', '--help']).stdout;
  t.match(help, 'HARBOR_NODE_URL', 'check lists the settings it checks for run');
  t.notMatch(runSidecar(['env', '--help']).stdout, 'HARBOR_NODE_URL');
});

t.test('warnings go to stderr and do not change the output or the status', async (t) => {
  const env = {
    STACKATO_SERVICES: JSON.stringify({ p: { int_port: 4100 } }),
    VCAP_SERVICES: JSON.stringify({ harbor: [{ name: 'p', credentials: { int_port: 4200 } }] }),
  };
  const result = runSidecar(['env'], env);
  t.equal(result.status, 0);
  t.match(result.stdout, "STACKATO_HARBOR='4100'");
  t.match(result.stderr, /warning: service "p": STACKATO_SERVICES and VCAP_SERVICES disagree on int_port/);
});

t.test('--help lists every command and setting', async (t) => {
  const help = runSidecar(['--help']);
  t.equal(help.status, 0);
  for (const word of ['env', 'exec', '--backend', 'HARBOR_BACKEND', '--certs-dir', 'HARBOR_DRAIN_TIMEOUT']) {
    t.match(help.stdout, word);
  }
});
