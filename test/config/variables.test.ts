import { execFileSync } from 'node:child_process';
import t from 'tap';
import type { HarborService } from '../../src/config/types.js';
import {
  formatVariables,
  mangleName,
  portVariables,
  variableForService,
} from '../../src/config/variables.js';

const service = (name: string, intPort: number): HarborService => ({
  name,
  instanceId: '',
  nodeId: '',
  hostname: '',
  host: '',
  port: undefined,
  intPort,
  extHostname: '',
  extHost: '',
  transport: 'tcp',
  https: false,
  variable: variableForService(name),
});

t.test('names: upper-cased, hyphens and other characters become _, a leading digit kept', async (t) => {
  t.equal(mangleName('udp-port'), 'UDP_PORT');
  t.equal(mangleName('my.app name'), 'MY_APP_NAME');
  // It always follows a prefix; a `_` added before the digit broke the seed's indirection
  // STACKATO_HARBOR_UDP_${STACKATO_APP_NAME_UPCASE} for an app named 9lives.
  t.equal(mangleName('9lives'), '9LIVES');
  t.equal(variableForService('9lives'), 'STACKATO_HARBOR_9LIVES');
  t.equal(mangleName('ldap_port'), 'LDAP_PORT');
  t.equal(variableForService('tcp-port'), 'STACKATO_HARBOR_TCP_PORT');
});

t.test('one service: STACKATO_HARBOR and its own variable; several: only their own', async (t) => {
  const one = portVariables([service('debug-port', 4100)], { upcaseAlreadySet: false });
  t.same(Object.fromEntries(one), { STACKATO_HARBOR: '4100', STACKATO_HARBOR_DEBUG_PORT: '4100' });
  const two = portVariables([service('udp-port', 4100), service('tcp-port', 4101)], {
    upcaseAlreadySet: false,
  });
  t.same(Object.fromEntries(two), { STACKATO_HARBOR_UDP_PORT: '4100', STACKATO_HARBOR_TCP_PORT: '4101' });
  t.same(Object.fromEntries(portVariables([], { upcaseAlreadySet: false })), {});
});

t.test('STACKATO_APP_NAME_UPCASE only where not already set', async (t) => {
  t.equal(
    portVariables([], { name: 'my-app', upcaseAlreadySet: false }).get('STACKATO_APP_NAME_UPCASE'),
    'MY_APP',
  );
  t.equal(
    portVariables([], { name: 'my-app', upcaseAlreadySet: true }).has('STACKATO_APP_NAME_UPCASE'),
    false,
  );
});

t.test('shell format is safe to eval in a real bash, whatever the value', async (t) => {
  const tricky = new Map([
    ['A', 'it\'s $(touch /nonexistent) `x` \\ "q"'],
    ['B', '4100'],
  ]);
  const script = `${formatVariables(tricky, 'shell')}printf '%s|%s' "$A" "$B"`;
  t.equal(execFileSync('bash', ['-c', script], { encoding: 'utf8' }), `${tricky.get('A')}|4100`);
});

t.test('dotenv and json formats', async (t) => {
  const vars = new Map([
    ['STACKATO_HARBOR', '4100'],
    ['X', 'a b'],
  ]);
  t.equal(formatVariables(vars, 'dotenv'), 'STACKATO_HARBOR=4100\nX="a b"\n');
  t.same(JSON.parse(formatVariables(vars, 'json')), { STACKATO_HARBOR: '4100', X: 'a b' });
});
