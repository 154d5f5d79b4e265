// Which process holds a TCP or UDP port of this machine (Linux /proc): named
// when an address the program wanted is taken, so that the operator knows
// whom to look at (this process itself, when two of its own listeners want one
// port). Undefined when it cannot be told (another user's process, no /proc).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface PortOwner {
  readonly pid: number;
  /** Its command line, shortened. */
  readonly command: string;
}

/**
 * The inode of the socket that holds `port` from /proc/net: a listening one for TCP (state
 * 0A), an unconnected bound one for UDP (07).
 */
function listeningInode(port: number, transport: 'tcp' | 'udp'): string | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const state = transport === 'tcp' ? '0A' : '07';
  for (const table of [`/proc/net/${transport}`, `/proc/net/${transport}6`]) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; then the state; the inode is the tenth field.
      if (fields[1]?.endsWith(`:${hex}`) && fields[3] === state && fields[9] !== undefined) return fields[9];
    }
  }
  return undefined;
}

export function portOwner(port: number, transport: 'tcp' | 'udp' = 'tcp'): PortOwner | undefined {
  const inode = listeningInode(port, transport);
  if (inode === undefined) return undefined;
  const target = `socket:[${inode}]`;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link !== target) continue;
      return { pid: Number(pid), command: processCommand(Number(pid)) };
    }
  }
  return undefined;
}

/** A process's command line for a message (cut at 120 characters); '' when it is gone or hidden. */
export function processCommand(pid: number): string {
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    // gone meanwhile: the pid alone
  }
  return command.length > 120 ? `${command.slice(0, 117)}...` : command;
}

/** `pid N (command)`, or `pid N` when its command line is not known: a process, for a message. */
export function describeProcess(pid: number, command: string = processCommand(pid)): string {
  return `pid ${pid}${command === '' ? '' : ` (${command})`}`;
}

/**
 * Answers of the last minute, by transport and port: harbor-node tries a conflicting port again
 * every few seconds, and a scan reads every socket table and every process's descriptors.
 */
const recent = new Map<string, { readonly at: number; readonly text: string }>();
const RECENT_MS = 60_000;

/** " by pid N (command)", " by this process" or "" (unknown): who holds `port`, for a message. */
export function heldBy(port: number, transport: 'tcp' | 'udp' = 'tcp'): string {
  const key = `${transport}:${port}`;
  const now = Date.now();
  const known = recent.get(key);
  if (known !== undefined && now - known.at < RECENT_MS) return known.text;
  const owner = portOwner(port, transport);
  const text =
    owner === undefined
      ? ''
      : owner.pid === process.pid
        ? ' by this process (another of its own listeners)'
        : ` by ${describeProcess(owner.pid, owner.command)}`;
  if (recent.size >= 1024) recent.clear();
  recent.set(key, { at: now, text });
  return text;
}
