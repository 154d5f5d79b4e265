// Runs h2load (Debian's nghttp2-client) for a fixed time and reads its report:
// requests done and failed, requests/s. HTTP/2 over TLS (ALPN h2), C
// connections with M streams in flight on each.
import { runCommand } from './proc.mjs';

export function parseH2load(out) {
  const result = { requests: 0, succeeded: 0, failed: 0, errored: 0, timeout: 0, rps: 0, seconds: 0 };
  const finished = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  if (finished) {
    result.seconds = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
    result.rps = Number(finished[3]);
  }
  const requests =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  if (requests) {
    result.requests = Number(requests[3]);
    result.succeeded = Number(requests[4]);
    result.failed = Number(requests[5]);
    result.errored = Number(requests[6]);
    result.timeout = Number(requests[7]);
  }
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  result.non2xx = status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : 0;
  return result;
}

/**
 * h2load -D seconds -c C -m M URL; throws when it cannot run or negotiates no h2. `h1`: HTTP/1.1
 * instead (--h1, one request in flight per connection); `rps`: at most that many requests per
 * second from each connection (a fixed offered load rather than as fast as the server answers).
 */
export async function runH2load(url, { connections = 10, streams = 10, seconds = 5, h1 = false, rps } = {}) {
  const args = ['-D', String(seconds), '-c', String(connections), '-m', String(h1 ? 1 : streams), '-t', '1'];
  if (h1) args.push('--h1');
  if (rps !== undefined) args.push(`--rps=${rps}`);
  args.push(url);
  const { code, stdout, stderr } = await runCommand('h2load', args, { timeoutMs: (seconds + 20) * 1000 });
  if (code !== 0 || !/finished in/.test(stdout) || /No protocol negotiated/.test(stdout)) {
    throw new Error(`h2load ${args.join(' ')} failed (exit ${code}): ${(stderr || stdout).slice(-500)}`);
  }
  const result = parseH2load(stdout);
  return { ...result, failed: result.failed + result.errored + result.timeout + result.non2xx };
}
