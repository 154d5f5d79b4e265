// Parsers for setting values. Each returns the value or a one-line reason
// (without the setting's name; the caller adds where the value came from).
import { BlockList, isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import type { Address } from './types.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (reason: string): Parsed<never> => ({ ok: false, reason });

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  '': 1000,
};

/** `10s`, `500ms`, `2m`, `1h`, `7d`, or a plain number of seconds; in milliseconds. */
export function parseDuration(text: string): Parsed<number> {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$/.exec(text);
  if (!match) return bad(`must be a duration such as 10s, 500ms, 2m or 1d, not "${text}"`);
  return ok(Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? ''] ?? 1000)));
}

/**
 * The longest a Node timer waits: 2^31-1 ms, about 24.8 days. A longer one fires after 1 ms
 * (with a TimeoutOverflowWarning on stderr), so a timeout set longer would cut at once.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A duration that a timer waits (a timeout, a TTL, an interval): longer than 0, at most
 * `max` (MAX_TIMER_MS unless the setting's own limit is lower, stated as `maxText`).
 */
export function parseTimeout(
  text: string,
  max: number = MAX_TIMER_MS,
  maxText = '596h (about 24.8 days, the longest a timer can wait)',
): Parsed<number> {
  const parsed = parseDuration(text);
  if (!parsed.ok) return parsed;
  if (parsed.value <= 0) return bad(`must be longer than 0, not "${text}"`);
  if (parsed.value > max) return bad(`must be at most ${maxText}, not "${text}"`);
  return parsed;
}

export function parsePositiveInteger(text: string): Parsed<number> {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1) return bad(`must be a positive integer, not "${text}"`);
  return ok(Number(text));
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes: `1048576`, `512k`, `64m`, `1g` (powers of 1024). */
export function parseSize(text: string): Parsed<number> {
  const match = /^\s*(\d+)\s*([kmg]?)i?b?\s*$/i.exec(text);
  const value = match ? Number(match[1]) * (SIZE_UNITS[(match[2] ?? '').toLowerCase()] ?? 1) : 0;
  if (!match || value < 1 || !Number.isSafeInteger(value))
    return bad(`must be a size such as 512k, 64m or 1g, not "${text}"`);
  return ok(value);
}

export function parsePortNumber(text: string): Parsed<number> {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > 65535)
    return bad(`must be an integer 1-65535, not "${text}"`);
  return ok(n);
}

export function parseChoice<T extends string>(text: string, choices: readonly T[]): Parsed<T> {
  const lower = text.toLowerCase() as T;
  return choices.includes(lower) ? ok(lower) : bad(`must be one of ${choices.join(', ')}, not "${text}"`);
}

export function parseBoolean(text: string): Parsed<boolean> {
  const lower = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return ok(true);
  if (['0', 'false', 'no', 'off', ''].includes(lower)) return ok(false);
  return bad(`must be true or false, not "${text}"`);
}

/**
 * A TCP `host:port` (`[::1]:8080` for IPv6), a bare port (loopback), or a unix
 * socket path (absolute, `./relative`, or `unix:/path`).
 */
export function parseAddress(text: string, defaultHost = '127.0.0.1'): Parsed<Address> {
  const trimmed = text.trim();
  if (trimmed.startsWith('unix:')) {
    const path = trimmed.slice('unix:'.length);
    return path ? unixAddress(path) : bad('must name a socket path after "unix:"');
  }
  if (isAbsolute(trimmed) || trimmed.startsWith('./') || trimmed.startsWith('../')) {
    return unixAddress(trimmed);
  }
  if (/^\d+$/.test(trimmed)) {
    const port = parsePortNumber(trimmed);
    return port.ok ? ok({ kind: 'tcp', host: defaultHost, port: port.value }) : port;
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d+)$/.exec(trimmed);
  if (!match) return bad(`must be host:port, [ipv6]:port or a unix socket path, not "${text}"`);
  const port = parsePortNumber(match[3] ?? '');
  if (!port.ok) return bad(`has a port that ${port.reason}`);
  return ok({ kind: 'tcp', host: match[1] ?? match[2] ?? defaultHost, port: port.value });
}

/**
 * The longest unix socket path, in bytes: sun_path holds 108 with its NUL. Node binds and
 * connects to a longer one cut short, silently: another socket than the one named.
 */
const MAX_SOCKET_PATH_BYTES = 107;

function unixAddress(path: string): Parsed<Address> {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return bad(
      `is a unix socket path of ${bytes} bytes, past the ${MAX_SOCKET_PATH_BYTES} a socket address holds (the system would use another path, cut short); use a shorter or relative one`,
    );
  }
  return ok({ kind: 'unix', path });
}

/** A BlockList of the given addresses and CIDRs; undefined when one is neither. */
export function trustBlockList(entries: readonly string[]): BlockList | undefined {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address);
    if (family === 0) return undefined;
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const bits = Number(prefix);
    if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) return undefined;
    list.addSubnet(address, bits, type);
  }
  return list;
}

/** A year in seconds: what the HSTS preload list asks of max-age. */
const HSTS_PRELOAD_MIN_SECONDS = 31_536_000;

/**
 * `--hsts MAX-AGE[,includeSubDomains][,preload]` as the header value: MAX-AGE in seconds or a
 * duration (365d, 8760h; 0 tells browsers to forget the policy); preload needs
 * includeSubDomains and a year or more (the preload list refuses anything less).
 */
export function parseHsts(text: string): Parsed<string> {
  const [age = '', ...flags] = text.split(',').map((part) => part.trim());
  const seconds = /^\d+$/.test(age) ? ok(Number(age) * 1000) : parseDuration(age);
  if (!seconds.ok)
    return bad(`max-age ${JSON.stringify(age)} must be seconds (31536000) or a duration (365d)`);
  let value = `max-age=${Math.floor(seconds.value / 1000)}`;
  const known = new Set(['includesubdomains', 'preload']);
  const given = new Set<string>();
  for (const flag of flags) {
    if (!known.has(flag.toLowerCase()))
      return bad(`${JSON.stringify(flag)} is not includeSubDomains or preload`);
    given.add(flag.toLowerCase());
  }
  if (given.has('includesubdomains')) value += '; includeSubDomains';
  if (given.has('preload')) {
    if (!given.has('includesubdomains') || seconds.value / 1000 < HSTS_PRELOAD_MIN_SECONDS) {
      return bad('preload needs includeSubDomains and a max-age of a year (31536000) or more');
    }
    value += '; preload';
  }
  return ok(value);
}

/**
 * `--grpc-web-origins https://app.example.com,http://localhost:3000` or `*`: page origins
 * (scheme, host and port; no path), as a browser sends them in `Origin`.
 */
export function parseOrigins(text: string): Parsed<readonly string[]> {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) return bad('must name an origin (https://app.example.com) or *');
  const origins: string[] = [];
  for (const entry of entries) {
    if (entry === '*') {
      origins.push(entry);
      continue;
    }
    const url = URL.canParse(entry) ? new URL(entry) : undefined;
    if (
      url === undefined ||
      (url.protocol !== 'https:' && url.protocol !== 'http:') ||
      url.pathname !== '/' ||
      url.search !== '' ||
      url.hash !== '' ||
      url.username !== '' ||
      entry.endsWith('?') ||
      entry.endsWith('#')
    ) {
      return bad(
        `${JSON.stringify(entry)} is not an origin: scheme://host[:port], such as https://app.example.com, or *`,
      );
    }
    origins.push(url.origin);
  }
  if (origins.includes('*') && origins.length > 1)
    return bad('lists * beside origins: * allows every origin, give one or the other');
  return ok(origins);
}
