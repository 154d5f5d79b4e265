// The access log's own code in a loop of its own (bench/https/access-log.mjs): capture, format,
// encode and write, per line, against this checkout's dist. test/bench/access-log-cost.test.ts
// runs it small, so the benchmark keeps up with the log's API.
import { readFileSync } from 'node:fs';
import { SMALL_PATH } from './targets.mjs';

/** Lines written between two waits for the log's thread (its ring holds 16,384). */
const PACE = 4096;

/**
 * CPU per line, in us, of AccessLog.write: `lines` lines of a keep-alive GET (200,000 by
 * default) to `file`, formatted and written by the log's thread as they come. `serving`: the
 * calling thread's alone (copying the fields into the ring); `process`: every thread's (the
 * log's thread formatting and writing included).
 */
export async function lineCost(file, format, lines = 200_000) {
  const { AccessLog } = await import('../../dist/https/access-log.js');
  const { Head } = await import('../../dist/https/head.js');
  const { parseRequestHead } = await import('../../dist/https/head-parser.js');
  const log = new AccessLog({ format, file, keepQuery: false });
  const head = new Head();
  const raw = Buffer.from(
    `GET ${SMALL_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\n\r\n`,
    'latin1',
  );
  parseRequestHead(head, raw, 0, raw.length);
  const entry = {
    service: 'web-https',
    client: '127.0.0.1',
    head,
    protocol: 'HTTP/1.1',
    status: 200,
    bytesIn: 80,
    bytesOut: 250,
    headBytesOut: 150,
    startedAt: 0,
    backendAt: 0,
    tls: 'TLSv1.3',
    requestId: '0f8e2c1a-5b1d-4c0e-9d7e-1b2c3d4e5f60',
    reason: undefined,
    grpcStatus: -1,
  };
  const serving0 = servingThreadNs();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) {
    const endedAt = performance.now();
    entry.startedAt = endedAt - 0.3 - (i % 1000) / 997;
    entry.backendAt = entry.startedAt + 0.2;
    log.write(entry, endedAt);
    // The log's thread keeps up with a proxy's requests, not with a loop that does nothing else.
    if (i % PACE === PACE - 1) await log.flush();
  }
  const serving = (servingThreadNs() - serving0) / 1000 / lines;
  await log.close();
  const cpu = process.cpuUsage(cpu0);
  return { serving, process: (cpu.user + cpu.system) / lines };
}

/** CPU time of this process's main thread, in ns (the scheduler's own count: no tick rounding). */
function servingThreadNs() {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
}
