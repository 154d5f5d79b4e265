// The rule set's scripts against a real kernel, in a network namespace of its
// own: a service's life (added, instances changed, a UDP failover, a remote
// instance, no target at all, removed) as the node sends it, one transaction
// per step. nft refuses a transaction that deletes an element that is not
// there, so each step also proves that the script's diff matches what the
// table holds; the listings show what each step left.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  addServiceScript,
  programScript,
  removeServiceScript,
  type ServicePlan,
  type Target,
  tableScript,
} from '../../../src/node/dataplane/rules.js';
import { inNetworkNamespace, netnsUnavailable } from './netns.js';

const unavailable = netnsUnavailable();
if (unavailable === false) inNetworkNamespace(import.meta.url);

function apply(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: `${script}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}

function listed(kind: 'set' | 'map' | 'chain', name: string, family = 'ip'): string {
  return execFileSync('nft', ['list', kind, family, 'harbor', name], { encoding: 'utf8' });
}

/** The elements of a set or map as nft lists them, one string per element. */
function elements(kind: 'set' | 'map', name: string, family = 'ip'): string[] {
  const match = /elements = \{([^}]*)\}/.exec(listed(kind, name, family).replace(/\s+/g, ' '));
  return match === null
    ? []
    : match[1]!
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '')
        .sort();
}

const local = (port: number, host = '127.0.0.1'): Target => ({ host, port, local: true });
const remote = (port: number, host: string): Target => ({ host, port, local: false });

t.test("a service's life, one transaction per change", { skip: unavailable }, async (t) => {
  const acct = '/proc/sys/net/netfilter/nf_conntrack_acct';
  t.equal(readFileSync(acct, 'utf8').trim(), '0', 'conntrack accounting is off in a new namespace');
  apply(tableScript('ip', undefined, ['127.0.0.0/8'], []));
  t.equal(readFileSync(acct, 'utf8').trim(), '1', 'the table turns it on (UDP bytes are its counts)');
  const first: ServicePlan = {
    port: 7000,
    tcp: true,
    udp: true,
    tcpTargets: [local(7101)],
    udpTarget: local(7201),
  };
  apply(addServiceScript('ip', first));
  t.match(listed('chain', 's7000_tcp'), /dnat to 127\.0\.0\.1:7101/);
  t.same(elements('map', 'udp_primary'), ['7000 : 127.0.0.1 . 7201']);
  t.same(elements('set', 'userspace'), [], 'the kernel takes every client');
  t.same(
    elements('map', 'bytes').map((e) => e.replace(/ counter .*/, '')),
    ['original . 7000', 'reply . 7000'],
    'bytes counted by rule for TCP only (UDP flows: by conntrack)',
  );

  // A second and third TCP instance (one on another machine), the UDP primary fails over.
  const second: ServicePlan = {
    ...first,
    tcpTargets: [local(7101), local(7102), remote(7103, '10.9.0.3')],
    udpTarget: local(7202),
  };
  apply(programScript('ip', second, first));
  t.match(
    listed('chain', 's7000_tcp'),
    /numgen inc mod 3 map \{ 0 : 127\.0\.0\.1 \. 7101, 1 : 127\.0\.0\.1 \. 7102, 2 : 10\.9\.0\.3 \. 7103 \}/,
  );
  t.same(elements('map', 'udp_primary'), ['7000 : 127.0.0.1 . 7202'], 'the new primary, the old one gone');
  t.same(elements('set', 'remote'), ['7000 . 10.9.0.3'], 'flows to the remote instance are masqueraded');
  t.same(elements('set', 'userspace_loopback'), ['tcp . 7000'], 'loopback clients of TCP stay in userspace');

  // The UDP primary moves to the remote machine; TCP keeps its targets (its chain is left alone).
  const third: ServicePlan = { ...second, udpTarget: remote(7203, '10.9.0.4') };
  const script = programScript('ip', third, second);
  t.notMatch(script, /s7000_tcp/, 'an unchanged TCP rotation is not rewritten');
  apply(script);
  t.same(elements('set', 'remote'), ['7000 . 10.9.0.3', '7000 . 10.9.0.4']);
  t.same(elements('set', 'userspace_loopback'), ['tcp . 7000', 'udp . 7000']);
  t.equal(programScript('ip', third, third), '', 'no change, no script');

  // Every instance down: the userspace listener takes every client.
  const none: ServicePlan = { ...third, tcpTargets: [], udpTarget: null };
  apply(programScript('ip', none, third));
  t.notMatch(listed('chain', 's7000_tcp'), /dnat/);
  t.same(elements('set', 'userspace'), ['tcp . 7000', 'udp . 7000']);
  t.same(elements('set', 'remote'), []);
  t.same(elements('set', 'userspace_loopback'), []);
  t.same(elements('map', 'udp_primary'), []);

  // Back, then removed: nothing of the service is left.
  apply(programScript('ip', first, none));
  t.same(elements('set', 'userspace'), []);
  t.match(listed('chain', 's7000_tcp'), /dnat to 127\.0\.0\.1:7101/);
  apply(removeServiceScript('ip', first));
  for (const [kind, name] of [
    ['map', 'dispatch'],
    ['map', 'udp_primary'],
    ['map', 'bytes'],
    ['map', 'unreachable'],
    ['set', 'userspace'],
    ['set', 'userspace_loopback'],
    ['set', 'remote'],
  ] as const)
    t.same(elements(kind, name), [], `${name} is empty`);
  t.throws(() => listed('chain', 's7000_tcp'), 'the chain is gone');
});

t.test('IPv6: the same service in the ip6 table', { skip: unavailable }, async (t) => {
  apply(tableScript('ip6', undefined, ['::1/128'], []));
  const plan: ServicePlan = {
    port: 7000,
    tcp: true,
    udp: true,
    tcpTargets: [local(7101, '::1'), remote(7102, 'fd00::2')],
    udpTarget: remote(7201, 'fd00::3'),
  };
  apply(addServiceScript('ip6', plan));
  t.match(
    listed('chain', 's7000_tcp', 'ip6'),
    /numgen inc mod 2 map \{ 0 : ::1 \. 7101, 1 : fd00::2 \. 7102 \}/,
  );
  t.same(elements('map', 'udp_primary', 'ip6'), ['7000 : fd00::3 . 7201']);
  t.same(elements('set', 'remote', 'ip6'), ['7000 . fd00::2', '7000 . fd00::3']);
  apply(removeServiceScript('ip6', plan));
  t.same(elements('set', 'remote', 'ip6'), []);
});
