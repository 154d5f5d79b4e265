// Ports the sidecar would listen on twice, or where what it forwards to listens, refused when the
// settings are resolved (so `check` says it), and a real `check` and `run` exiting 78 for one.
import t from 'tap';
import { type Machine, resolveSidecarSettings } from '../../src/config/settings.js';
import { runSidecar } from '../helpers/cli.js';

const machine: Machine = {
  cwd: '/srv/app',
  hostname: 'container-7',
  readFile: () => {
    throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  },
  stdoutIsTerminal: false,
};
const resolve = (
  services: Record<string, unknown>,
  flags: Record<string, string | string[]> = {},
  env = {},
) => resolveSidecarSettings(flags, { STACKATO_SERVICES: JSON.stringify(services), ...env }, machine).problems;

t.test('two services the sidecar listens for on one int_port', async (t) => {
  t.match(resolve({ 'a-https': { int_port: 4100 }, 'b-https': { int_port: 4100 } }, {}, { PORT: '8080' }), [
    {
      code: 'E_SETTING',
      message:
        'services "a-https" and "b-https" both have int_port 4100 (tcp): the sidecar cannot listen on it twice',
    },
  ]);
  // A service the app serves itself (no https, no forward) is not the sidecar's to listen for.
  t.same(resolve({ 'a-https': { int_port: 4100 }, 'tcp-x': { int_port: 4100 } }, {}, { PORT: '8080' }), []);
  // TCP and UDP of one number are two listeners.
  t.same(
    resolve(
      { 'a-https': { int_port: 4100 }, 'udp-x': { int_port: 4100 } },
      { forward: 'udp-x=127.0.0.1:5353' },
      { PORT: '8080' },
    ),
    [],
  );
  t.match(
    resolve(
      { 'udp-a': { int_port: 4100 }, 'udp-b': { int_port: 4100 } },
      { forward: ['udp-a=127.0.0.1:5353', 'udp-b=127.0.0.1:5354'] },
    ),
    [{ message: /^services "udp-a" and "udp-b" both have int_port 4100 \(udp\)/ }],
  );
});

t.test("an HTTPS int_port that is the backend's own port", async (t) => {
  const clash = resolve({ 'shop-https': { int_port: 8080 } }, {}, { PORT: '8080' });
  t.match(clash, [
    {
      code: 'E_SETTING',
      message:
        'service "shop-https" has int_port 8080, the backend\'s port (127.0.0.1:8080): the sidecar listens where the app would; the app must listen on another port',
    },
  ]);
  t.same(resolve({ 'shop-https': { int_port: 8080 } }, { backend: '10.1.2.3:8080' }), [], 'another machine');
  t.same(resolve({ 'shop-https': { int_port: 8080 } }, { backend: '10.1.2.3:8080', listen: '10.1.2.4' }), []);
  t.match(resolve({ 'shop-https': { int_port: 8080 } }, { backend: '10.1.2.4:8080', listen: '10.1.2.4' }), [
    { message: /the backend's port \(10\.1\.2\.4:8080\)/ },
  ]);
});

t.test('a forward to the sidecar itself', async (t) => {
  t.match(resolve({ 'tcp-debug': { int_port: 4100 } }, { forward: 'tcp-debug=127.0.0.1:4100' }), [
    {
      code: 'E_SETTING',
      message:
        '--forward for "tcp-debug" goes to 127.0.0.1:4100, where the sidecar itself listens (int_port of "tcp-debug"): it must go to the app\'s own port',
    },
  ]);
  t.same(resolve({ 'tcp-debug': { int_port: 4100 } }, { forward: 'tcp-debug=127.0.0.1:5100' }), []);
  t.same(
    resolve({ 'tcp-debug': { int_port: 4100 } }, { forward: 'tcp-debug=127.0.0.1:4100', listen: '10.1.2.4' }),
    [],
    'listening on another address only: loopback does not reach it',
  );
  // An HTTPS service's TCP is the proxy's; its forward carries UDP only, to the same number elsewhere.
  t.same(
    resolve(
      { 'multi-https': { int_port: 4100 } },
      { forward: 'multi-https=127.0.0.1:4200' },
      { PORT: '8080' },
    ),
    [],
  );
});

t.test('check and run: exit 78, naming both services', async (t) => {
  const env = {
    STACKATO_SERVICES: JSON.stringify({ 'a-https': { int_port: 4100 }, 'b-https': { int_port: 4100 } }),
  };
  const check = runSidecar(['check', '--backend', '127.0.0.1:1'], env);
  t.equal(check.status, 78);
  t.match(check.stdout, /services "a-https" and "b-https" both have int_port 4100/);
  const run = runSidecar(['run', '--backend', '127.0.0.1:1', '--admin', 'off'], env);
  t.equal(run.status, 78);
  t.match(run.stderr, /^error: services "a-https" and "b-https" both have int_port 4100 .*\[E_SETTING\]$/m);
});
