// Runs a test file inside its own network namespace (`unshare -n -m`, root) with
// its loopback up, so that the nftables rules it makes touch nothing else: the
// file calls `inNetworkNamespace()` first; outside, that re-runs the file in
// the namespace (its TAP output passes through) and exits with its status.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
