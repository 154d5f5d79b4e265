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

/** One element's counter. */
export interface Counter {
  readonly packets: number;
  readonly bytes: number;
}

/** Element counters by map, then by element key (rules.ts `counterKey`), per family whose table is there. */
export type CounterReading = Map<Family, Map<CounterMap, Map<string, Counter>>>;

/**
 * The element counters of these maps in each family's harbor table; a family whose table is
 * not there is absent. One `nft -j list map` per map: nft 1.0.6 cannot list two in one run.
 */
export async function readCounters(maps: readonly CounterMap[]): Promise<CounterReading> {
  const tables: CounterReading = new Map();
  for (const family of FAMILIES) {
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

/** One UDP conntrack entry: its original tuple and where replies come from (the DNAT target). */
export interface UdpFlow {
  readonly dport: number;
  readonly dst: string;
  readonly replySrc: string;
  readonly replySport: number;
}

/** The UDP conntrack entries of one family (`conntrack -L`). */
export async function listUdpFlows(family: Family): Promise<UdpFlow[]> {
  const text = await run('conntrack', ['-L', '-p', 'udp', '-f', family === 'ip' ? 'ipv4' : 'ipv6']);
  const flows: UdpFlow[] = [];
  for (const line of text.split('\n')) {
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (src.length < 2 || dst.length < 1 || sport.length < 2 || dport.length < 1) continue;
    flows.push({ dport: dport[0]!, dst: dst[0]!, replySrc: src[1]!, replySport: sport[1]! });
  }
  return flows;
}

/** Deletes the UDP entries of service port `port` whose replies come from `host:hostPort`; answers how many. */
export async function deleteUdpFlows(
  family: Family,
  port: number,
  host: string,
  hostPort: number,
  timeoutMs = PROGRAM_TIMEOUT_MS,
): Promise<number> {
  const args = ['-D', '-p', 'udp', '-f', family === 'ip' ? 'ipv4' : 'ipv6', '--orig-port-dst', String(port)];
  args.push('--reply-src', host, '--reply-port-src', String(hostPort));
  // conntrack exits 1 when nothing matched: that is not a failure here.
  const text = await run('conntrack', args, true, timeoutMs);
  const match = /(\d+) flow entries have been deleted/.exec(text);
  return match ? Number(match[1]) : 0;
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
