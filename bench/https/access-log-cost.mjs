// The access log's own code in a loop of its own (bench/https/access-log.mjs): capture, format,
// encode and write, per line, against this checkout's dist. test/bench/access-log-cost.test.ts
// runs it small, so the benchmark keeps up with the log's API.
import { SMALL_PATH } from './targets.mjs';

/**
 * CPU per line, in us, of AccessLog.write: `lines` lines of a keep-alive GET (200,000 by
 * default) to `file`, batches formatted and written as they fill.
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
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) {
    const endedAt = performance.now();
    entry.startedAt = endedAt - 0.3 - (i % 1000) / 997;
    entry.backendAt = entry.startedAt + 0.2;
    log.write(entry, endedAt);
    if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve)); // let written batches complete
  }
  await log.close();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / lines;
}
