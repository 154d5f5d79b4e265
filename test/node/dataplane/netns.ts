// Runs a test file inside its own network namespace (`unshare -n -m`, root) with
// its loopback up, so that the nftables rules it makes touch nothing else: the
// file calls `inNetworkNamespace()` first; outside, that re-runs the file in
// the namespace (its TAP output passes through) and exits with its status.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

const MARK = 'HARBOR_TEST_NETNS';

/** Why the namespace cannot be had here, or false when it can. */
export function netnsUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root for a network namespace (unshare -n), as in CI';
  if (spawnSync('unshare', ['-n', '-m', 'true']).status !== 0) return 'unshare -n -m is not permitted here';
  for (const program of ['nft', 'conntrack', 'ip']) {
    if (
      spawnSync(program, ['--version']).error !== undefined &&
      spawnSync(program, ['-V']).error !== undefined
    )
      return `needs ${program} (Debian: nftables, conntrack, iproute2), as in CI`;
  }
  return false;
}

/** In the namespace: returns. Outside: runs `fileUrl` in one and exits with its status. */
export function inNetworkNamespace(fileUrl: string): void {
  if (process.env[MARK] === '1') return;
  const file = fileURLToPath(fileUrl);
  const result = spawnSync(
    'unshare',
    // A mount namespace too, with its own /run: `ip netns add` (a second namespace) mounts there.
    [
      '-n',
      '-m',
      '--',
      'sh',
      '-c',
      'mount -t tmpfs harbor-run /run && ip link set lo up && exec "$@"',
      'sh',
      process.execPath,
      ...process.execArgv,
      file,
    ],
    { stdio: 'inherit', env: { ...process.env, [MARK]: '1' } },
  );
  process.exit(result.status ?? 1);
}

/** This namespace's side of the link `linkNamespaces` makes, and the peer's. */
export const HERE = '127.10.0.1';
export const PEER = '127.10.0.2';

/**
 * A second namespace, `peer`, joined to this one by a veth pair, every address in 127.0.0.0/8:
 * lo keeps only 127.0.0.1, the link is 127.10.0.0/24, route_localnet lets such addresses cross
 * it, and they have scope global (the kernel gives a 127 address host scope, and masquerade
 * then finds no address to use). The peer forwards (a node there may have remote instances).
 */
export function linkNamespaces(t: Test): void {
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  sh(`ip netns add peer
    ip link add h0 type veth peer name p0 netns peer
    for ns in "" "ip netns exec peer"; do
      $ns sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.default.route_localnet=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
      $ns ip link set lo up
      $ns ip addr del 127.0.0.1/8 dev lo
      $ns ip addr add 127.0.0.1/32 dev lo
    done
    ip link set h0 up && ip netns exec peer ip link set p0 up
    sysctl -qw net.ipv4.conf.h0.route_localnet=1 net.ipv4.conf.h0.rp_filter=0
    ip netns exec peer sysctl -qw net.ipv4.conf.p0.route_localnet=1 net.ipv4.conf.p0.rp_filter=0 net.ipv4.ip_forward=1
    ip addr add ${HERE}/24 dev h0 scope global
    ip netns exec peer ip addr add ${PEER}/24 dev p0 scope global`);
  t.teardown(() => sh('ip netns del peer'));
}
