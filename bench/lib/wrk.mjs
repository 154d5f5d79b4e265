// Runs wrk and reads its report: requests, requests/s, latency percentiles,
// bytes, and every kind of failure (non-2xx/3xx, socket errors).
import { runCommand } from './proc.mjs';

const UNITS = { '': 1, B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const TIME = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "1.23ms" -> 1.23 (milliseconds). */
export function parseDurationMs(text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!match) return Number.NaN;
  return Number(match[1]) * TIME[match[2]];
}

/** "5.12GB" -> bytes. */
export function parseBytes(text) {
  const match = /^([\d.]+)([KMGT]?B)?$/.exec(text.trim());
  if (!match) return Number.NaN;
  return Number(match[1]) * UNITS[match[2] ?? ''];
}

export function parseWrk(out) {
  const result = {
    requests: 0,
    seconds: 0,
    bytes: 0,
    rps: 0,
    latencyMs: {},
    non2xx: 0,
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
  };
  const total = /(\d+) requests in ([\d.]+\w+), ([\d.]+\w*B) read/.exec(out);
  if (total) {
    result.requests = Number(total[1]);
    result.seconds = parseDurationMs(total[2]) / 1000;
    result.bytes = parseBytes(total[3]);
  }
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps) result.rps = Number(rps[1]);
  for (const match of out.matchAll(/^\s+(50|75|90|99)(?:\.000)?%\s+([\d.]+\w+)/gm)) {
    result.latencyMs[`p${match[1]}`] = parseDurationMs(match[2]);
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) result.non2xx = Number(non2xx[1]);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (errors) {
    result.socketErrors = {
      connect: Number(errors[1]),
      read: Number(errors[2]),
      write: Number(errors[3]),
      timeout: Number(errors[4]),
    };
  }
  const e = result.socketErrors;
  result.failed = result.non2xx + e.connect + e.read + e.write + e.timeout;
  result.mibPerSecond = result.seconds > 0 ? result.bytes / 1024 ** 2 / result.seconds : 0;
  return result;
}

/**
 * wrk -t1 -cC -dDs --latency URL [-H header...]. Throws when wrk cannot run at
 * all; failed requests are counted, not thrown.
 */
export async function runWrk(url, { connections = 50, seconds = 5, headers = [], threads = 1 } = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency'];
  for (const header of headers) args.push('-H', header);
  args.push(url);
  const { code, stdout, stderr } = await runCommand('wrk', args, { timeoutMs: (seconds + 20) * 1000 });
  if (code !== 0 || !/requests in/.test(stdout)) {
    throw new Error(`wrk ${args.join(' ')} failed (exit ${code}): ${stderr || stdout}`);
  }
  return { ...parseWrk(stdout), raw: stdout };
}
