// What the nftables data plane needs before the node starts with it, each
// missing piece one line naming it (E_DATAPLANE, exit 78): CAP_NET_ADMIN, the
// nft and conntrack programs, IP forwarding when instances are remote. The
// conntrack table's headroom is a warning (W_DATAPLANE) with the sysctl fix.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { HarborError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';

/** Bit 12 of the effective capabilities. */
const CAP_NET_ADMIN = 12n;
/** Below this many conntrack entries the table fills at a few thousand new flows a second. */
const CONNTRACK_FLOOR = 65_536;

export interface PreflightFacts {
  /** /proc/self/status as text (tests give their own). */
  readonly status?: string;
  /** Whether an instance the node knows now is on another machine. */
  readonly remoteInstances: boolean;
}

/** Throws E_DATAPLANE for the first thing missing. */
export async function preflight(facts: PreflightFacts): Promise<void> {
  const status = facts.status ?? readFileSync('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)/im.exec(status)?.[1];
  if (capEff === undefined || ((BigInt(`0x${capEff}`) >> CAP_NET_ADMIN) & 1n) === 0n) {
    throw new HarborError(
      'E_DATAPLANE',
      '--dataplane nftables needs CAP_NET_ADMIN (run as root, or grant it: setcap, or AmbientCapabilities=CAP_NET_ADMIN in systemd)',
    );
  }
  await program('nft', ['--version'], 'nftables');
  await program('conntrack', ['--version'], 'conntrack');
  if (facts.remoteInstances && readSysctl('net/ipv4/ip_forward') !== '1') {
    throw new HarborError(
      'E_DATAPLANE',
      'instances on other machines need IP forwarding for --dataplane nftables: sysctl -w net.ipv4.ip_forward=1',
    );
  }
}

/** Warns when the conntrack table is small or nearly full (read once the nat table loaded conntrack). */
export function warnConntrackHeadroom(logger: Logger): void {
  const max = Number(readSysctl('net/netfilter/nf_conntrack_max') ?? Number.NaN);
  const count = Number(readSysctl('net/netfilter/nf_conntrack_count') ?? Number.NaN);
  if (Number.isNaN(max)) return;
  if (max < CONNTRACK_FLOOR || count > max * 0.8) {
    logger.warn(
      { code: 'W_DATAPLANE', nf_conntrack_max: max, nf_conntrack_count: count },
      `conntrack table: ${count} of ${max} entries in use; every forwarded flow takes one (new flows are dropped when full): sysctl -w net.netfilter.nf_conntrack_max=${Math.max(CONNTRACK_FLOOR * 4, max * 2)}`,
    );
  }
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${path}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function program(name: string, args: string[], debianPackage: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(name, args, { timeout: 10_000 }, (error) => {
      if (error === null) resolve();
      else
        reject(
          new HarborError(
            'E_DATAPLANE',
            (error as NodeJS.ErrnoException).code === 'ENOENT'
              ? `--dataplane nftables needs the ${name} program (Debian: apt-get install ${debianPackage})`
              : `${name} ${args.join(' ')} failed: ${error.message}`,
          ),
        );
    });
  });
}
