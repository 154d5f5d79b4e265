// Running Debian's `nft` and `conntrack` programs: a script read from stdin as
// one transaction (`nft -f -`; all of it or none), its check (`-c`), the
// table's counters as JSON, and conntrack listings and deletions. Shelling out,
// as kube-proxy does through knftables: no npm netlink library speaks nf_tables.
import { execFile, spawn } from 'node:child_process';
import { HarborError } from '../../errors/index.js';
import { type CounterMap, FAMILIES, type Family, TABLE } from './rules.js';

/**
 * How long one run of nft or conntrack may take before it is killed and its change counted as
 * failed. The node's transactions are serialized: one run that never returns would hold every
 * later change. A killed `nft -f` applies nothing (the kernel commits a transaction whole).
 */
export const PROGRAM_TIMEOUT_MS = 10_000;

/** Runs `nft -f -` (with `-c`: only checks); rejects with the first line nft printed. */
export function runNft(script: string, check = false, timeoutMs = PROGRAM_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', check ? ['-c', '-f', '-'] : ['-f', '-'], {
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', (error) => reject(missingProgram('nft', error)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else if (signal !== null)
        reject(
          new HarborError(
            'E_DATAPLANE',
            `nft ${check ? '--check ' : ''}did not finish within ${timeoutMs} ms`,
          ),
        );
      else
        reject(
          new HarborError(
            'E_DATAPLANE',
            `nft ${check ? '--check ' : ''}refused the rule set: ${firstLine(stderr)}`,
          ),
        );
    });
    child.stdin.on('error', () => {});
    child.stdin.end(script);
  });
}

/** One element's counter, or one way of a conntrack flow: whole packets, headers included. */
export interface Counter {
  readonly packets: number;
  readonly bytes: number;
}

export const NO_COUNT: Counter = { packets: 0, bytes: 0 };

/** `a` and `b` together; a missing one counts nothing. */
export function addCounts(a: Counter | undefined, b: Counter | undefined): Counter {
  const x = a ?? NO_COUNT;
  const y = b ?? NO_COUNT;
  return { packets: x.packets + y.packets, bytes: x.bytes + y.bytes };
}

/** Element counters by map, then by element key (rules.ts `counterKey`), per family whose table is there. */
export type CounterReading = Map<Family, Map<CounterMap, Map<string, Counter>>>;

/**
 * The element counters of these maps in each family's harbor table (of `families`); a family
 * whose table is not there is absent. One `nft -j list map` per map: nft 1.0.6 cannot list two
 * in one run.
 */
export async function readCounters(
  maps: readonly CounterMap[],
  families: readonly Family[] = FAMILIES,
): Promise<CounterReading> {
  const tables: CounterReading = new Map();
  for (const family of families) {
    const texts = await Promise.all(
      maps.map((name) =>
        run('nft', ['-j', 'list', 'map', family, TABLE, name]).catch((error: Error) => {
          if (/No such file or directory/.test(error.message)) return null;
          throw error;
        }),
      ),
    );
    if (texts.some((text) => text === null)) continue;
    tables.set(family, new Map(maps.map((name, i) => [name, elementCounters(texts[i]!)])));
  }
  return tables;
}

type ElementValue = string | number | { concat: (string | number)[] };
interface ListedMap {
  nftables?: {
    map?: {
      elem?: [{ elem?: { val: ElementValue; counter?: Counter } }, unknown][];
    };
  }[];
}

/** The counters of one listed map's elements, keyed by the element's key parts ("original tcp 8080"). */
function elementCounters(text: string): Map<string, Counter> {
  const counters = new Map<string, Counter>();
  const parsed = JSON.parse(text) as ListedMap;
  for (const item of parsed.nftables ?? []) {
    for (const [key] of item.map?.elem ?? []) {
      const element = key.elem;
      if (element?.counter === undefined) continue;
      const val = element.val;
      const parts = typeof val === 'object' ? val.concat : [val];
      counters.set(parts.join(' '), { packets: element.counter.packets, bytes: element.counter.bytes });
    }
  }
  return counters;
}

/** One UDP conntrack entry: its original tuple, where replies come from (the DNAT target), its counts. */
export interface UdpFlow {
  /** The entry's own id and client tuple: what tells one flow from another across readings. */
  readonly key: string;
  readonly dport: number;
  readonly dst: string;
  readonly replySrc: string;
  readonly replySport: number;
  /**
   * Conntrack's own counts each way (`nf_conntrack_acct`, which the table turns on); null
   * for an entry made while accounting was off.
   */
  readonly original: Counter | null;
  readonly reply: Counter | null;
}

/** The UDP conntrack entries of one family (`conntrack -L`). */
export async function listUdpFlows(family: Family): Promise<UdpFlow[]> {
  return parseUdpFlows(await run('conntrack', ['-L', '-p', 'udp', '-f', familyName(family), '-o', 'id']));
}

/**
 * Deletes the UDP entries of service port `port` whose replies come from `host:hostPort`;
 * answers them as they were at deletion (their last counts).
 */
export async function deleteUdpFlows(
  family: Family,
  port: number,
  host: string,
  hostPort: number,
  timeoutMs = PROGRAM_TIMEOUT_MS,
): Promise<UdpFlow[]> {
  const args = ['-D', '-p', 'udp', '-f', familyName(family), '--orig-port-dst', String(port)];
  args.push('--reply-src', host, '--reply-port-src', String(hostPort), '-o', 'id');
  // conntrack exits 1 when nothing matched: that is not a failure here.
  return parseUdpFlows(await run('conntrack', args, true, timeoutMs));
}

/**
 * One entry as conntrack prints it: the original tuple (and its counts with accounting on),
 * flags, the reply tuple (and counts), then mark, use and id:
 * `udp 17 29 src=A dst=B sport=1 dport=2 packets=1 bytes=34 [UNREPLIED] src=B dst=A sport=2 dport=1 packets=0 bytes=0 mark=0 use=1 id=7`
 */
const UDP_ENTRY =
  /\bsrc=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) (?:packets=(\d+) bytes=(\d+) )?.*?\bsrc=(\S+) dst=\S+ sport=(\d+) dport=\d+ (?:packets=(\d+) bytes=(\d+) )?.*?\bid=(\d+)/;

function parseUdpFlows(text: string): UdpFlow[] {
  const flows: UdpFlow[] = [];
  for (const line of text.split('\n')) {
    const m = UDP_ENTRY.exec(line);
    if (m === null) continue;
    flows.push({
      key: `${m[11]} ${m[1]} ${m[3]}`,
      dport: Number(m[4]),
      dst: m[2]!,
      replySrc: m[7]!,
      replySport: Number(m[8]),
      original: m[5] === undefined ? null : { packets: Number(m[5]), bytes: Number(m[6]) },
      reply: m[9] === undefined ? null : { packets: Number(m[9]), bytes: Number(m[10]) },
    });
  }
  return flows;
}

function familyName(family: Family): string {
  return family === 'ip' ? 'ipv4' : 'ipv6';
}

function run(
  program: string,
  args: string[],
  anyStatus = false,
  timeoutMs = PROGRAM_TIMEOUT_MS,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' as const };
    execFile(program, args, options, (error, stdout, stderr) => {
      const code = (error as NodeJS.ErrnoException | null)?.code;
      if (code === 'ENOENT') reject(missingProgram(program, error!));
      // Killed (the time limit): whatever it printed is not an answer, whatever its status.
      else if (error?.killed)
        reject(new Error(`${program} ${args.join(' ')}: did not finish within ${timeoutMs} ms`));
      else if (error && !anyStatus)
        reject(new Error(`${program} ${args.join(' ')}: ${firstLine(stderr) || error.message}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

function missingProgram(program: string, error: Error): HarborError {
  const code = (error as NodeJS.ErrnoException).code;
  const fix = program === 'nft' ? 'apt-get install nftables' : 'apt-get install conntrack';
  return new HarborError(
    'E_DATAPLANE',
    code === 'ENOENT' ? `${program} not found on PATH (${fix})` : `${program} cannot run: ${error.message}`,
  );
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? ''
  );
}
