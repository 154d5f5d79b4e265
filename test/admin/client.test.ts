import { createServer } from 'node:http';
import t, { type Test } from 'tap';
import {
  countersOf,
  createAdminServer,
  fetchReadiness,
  fetchStatus,
  formatStatusTable,
  readinessExitStatus,
  runStatusCommand,
  type StatusReport,
} from '../../src/admin/index.js';
import type { Address } from '../../src/config/types.js';
import { isHarborError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/log/index.js';
import { countRequestTimes, countResponse, createServiceStats } from '../../src/stats/index.js';
import { refusingPort } from '../helpers/net.js';

const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);
const DAY = 86_400_000;

const webStats = createServiceStats();
webStats.connectionsOpen = 2;
webStats.connectionsTotal = 153;
countResponse(webStats, 200);
// 99 answers of 2 ms and one of 3 s: the median is a few milliseconds, the 99th percentile not.
for (let i = 0; i < 99; i++) countRequestTimes(webStats, 200, 1000, 1001, 1002);
countRequestTimes(webStats, 503, 1000, 0, 4000);
webStats.handshakeErrors.set('no shared cipher', 4);

const report: StatusReport = {
  program: 'harbor-sidecar',
  version: '0.1.0',
  pid: 4242,
  startedAt: new Date(NOW - 3600_000).toISOString(),
  state: 'listening',
  services: [
    {
      name: 'custom-cert-https',
      protocol: 'https',
      int_port: 4100,
      port: 35048,
      backend: '127.0.0.1:8080',
      pair: {
        certFile: '/app/certs/custom-cert-https.crt',
        keyFile: '/app/certs/custom-cert-https.key',
        reason: 'per-service pair',
        inspection: {
          subject: 'CN=shop.example.com',
          sans: ['DNS:shop.example.com'],
          issuer: 'CN=Example CA',
          notBefore: new Date(NOW - 30 * DAY).toISOString(),
          notAfter: new Date(NOW + 42 * DAY + 3600_000).toISOString(),
          fingerprint256: 'AB:CD',
          keyType: 'EC P-256',
          selfSigned: false,
        },
      },
      lastReload: { at: '2026-11-24T11:30:05.123Z', ok: true, error: null },
      counters: countersOf(webStats),
    },
    {
      name: 'old-https',
      protocol: 'https',
      int_port: 4101,
      port: null,
      backend: '127.0.0.1:8080',
      pair: {
        certFile: '/app/certs/harbor.crt',
        keyFile: '/app/certs/harbor.key',
        reason: 'harbor.crt fallback (no old-https.crt)',
        inspection: {
          subject: 'CN=old.example.com',
          sans: [],
          issuer: 'CN=old.example.com',
          notBefore: new Date(NOW - 400 * DAY).toISOString(),
          notAfter: new Date(NOW - 2 * DAY).toISOString(),
          fingerprint256: 'EF:01',
          keyType: 'RSA 2048',
          selfSigned: true,
        },
      },
      lastReload: {
        at: '2026-11-24T11:59:00.000Z',
        ok: false,
        error: 'certs/old-https.key does not match certs/old-https.crt',
      },
      counters: countersOf(createServiceStats()),
    },
    {
      name: 'new-https',
      protocol: 'https',
      int_port: 4102,
      port: 35050,
      backend: '127.0.0.1:8080',
      pair: {
        certFile: '/app/certs/harbor.crt',
        keyFile: '/app/certs/harbor.key',
        reason: 'none',
        inspection: null,
      },
      lastReload: null,
      counters: countersOf(createServiceStats()),
    },
    {
      name: 'udp-game',
      protocol: 'udp',
      int_port: 4103,
      port: 35051,
      backend: null,
      pair: null,
      lastReload: null,
      counters: countersOf(createServiceStats()),
    },
  ],
};

t.test('countersOf turns ServiceStats into JSON counters', async (t) => {
  const counters = countersOf(webStats);
  t.same(counters.handshakeErrors, { 'no shared cipher': 4 });
  t.equal(counters.requests['2xx'], 1);
  t.equal(counters.requestSeconds?.count, 100, 'times over every status class');
  t.ok(
    counters.requestSeconds!.p50 > 0.001 && counters.requestSeconds!.p50 <= 0.0025,
    'p50 in the 2 ms bucket',
  );
  t.ok(counters.requestSeconds!.p90 <= 0.0025, 'so is p90');
  t.ok(counters.requestSeconds!.p99 <= 0.0025, 'p99: the 99th of 100 is still a fast one');
  t.equal(countersOf(createServiceStats()).requestSeconds, undefined, 'no request, no times');
  t.same(JSON.parse(JSON.stringify(counters)), counters, 'survives JSON');
});

t.test('formatStatusTable: one aligned line per service, failed reloads spelled out', async (t) => {
  const table = formatStatusTable(report, NOW);
  const lines = table.trimEnd().split('\n');
  t.match(
    lines[0],
    /^SERVICE +PROTOCOL +INT_PORT +PORT +CERTIFICATE +DAYS LEFT +CONNS +REQUESTS +P50\/P99 +LAST RELOAD$/,
  );
  const columnOf = (header: string) => lines[0]?.indexOf(header) ?? -1;
  const web = lines[1] ?? '';
  t.match(
    web,
    /^custom-cert-https +https +4100 +35048 +CN=shop\.example\.com +42 +2\/153 +1 +1\.8ms\/2\.5ms +ok 2026-11-24T11:30:05Z$/,
  );
  t.equal(web.indexOf('CN=shop'), columnOf('CERTIFICATE'), 'columns line up');
  t.equal(web.indexOf('2/153'), columnOf('CONNS'));
  t.equal(web.indexOf('1.8ms'), columnOf('P50/P99'));
  t.match(
    lines[2],
    /^old-https +https +4101 +- +CN=old\.example\.com +expired \(-2\) +0\/0 +0 +- +FAILED 2026-11-24T11:59:00Z$/,
  );
  t.match(lines[3], /^new-https +https +4102 +35050 +none loaded +- +0\/0 +0 +- +-$/);
  t.match(lines[4], /^udp-game +udp +4103 +35051 +- +- +0\/0 +- +- +-$/);
  t.equal(
    lines[5],
    'old-https: last reload failed at 2026-11-24T11:59:00Z: certs/old-https.key does not match certs/old-https.crt',
  );
  t.equal(lines.length, 6);
  t.equal(formatStatusTable({ ...report, services: [] }, NOW), 'harbor-sidecar: no Harbor services\n');
  const waiting = { ...report, services: [{ ...report.services[2]!, pair: null }] };
  t.match(formatStatusTable(waiting, NOW), /^new-https +https +4102 +35050 +none loaded +- /m, 'no pair yet');
});

t.test('readinessExitStatus: 0 only for HTTP 200', async (t) => {
  t.equal(readinessExitStatus(200), 0);
  t.equal(readinessExitStatus(503), 1);
  t.equal(readinessExitStatus(500), 1);
  t.equal(readinessExitStatus(null), 1, 'unreachable');
  t.equal(readinessExitStatus(undefined), 1);
});

async function adminOn(t: Test, address: Address, readiness: () => Promise<string[]>) {
  const server = createAdminServer({
    address,
    logger: silentLogger(),
    readiness,
    status: () => report,
    metrics: { services: () => [] },
    processMetrics: false,
  });
  t.teardown(() => server.close());
  await server.start();
  const bound = server.address();
  if (!bound) throw new Error('admin server did not start');
  return bound;
}

t.test('status command against a running admin endpoint: table, JSON, exit status', async (t) => {
  let reasons: string[] = [];
  const address = await adminOn(t, { kind: 'tcp', host: '127.0.0.1', port: 0 }, async () => reasons);

  const ready = await runStatusCommand({ address, now: () => NOW });
  t.equal(ready.exitStatus, 0);
  const who = `${report.program} ${report.version}, pid ${report.pid}, started ${report.startedAt}, answered at 127.0.0.1:${(address as { port: number }).port}\n`;
  t.equal(ready.output, `${who}${formatStatusTable(report, NOW)}\nready\n`);

  reasons = [
    'new-https: no valid certificate pair loaded',
    'custom-cert-https: backend 127.0.0.1:8080 refused',
  ];
  const notReady = await runStatusCommand({ address, now: () => NOW });
  t.equal(notReady.exitStatus, 1);
  t.match(
    notReady.output,
    /\nnot ready\n {2}new-https: no valid certificate pair loaded\n {2}custom-cert-https: backend/,
  );

  const json = await runStatusCommand({ address, json: true });
  t.equal(json.exitStatus, 1);
  const document = JSON.parse(json.output);
  t.equal(document.ready, false);
  t.same(document.reasons, reasons);
  t.same(document.services, report.services, 'the /status document passes through whole');

  const readiness = await fetchReadiness(address);
  t.same(readiness, { ready: false, reasons, httpStatus: 503 });
  t.same(await fetchStatus(address), report);
});

t.test('an admin endpoint on 0.0.0.0 is reached on loopback', async (t) => {
  const bound = await adminOn(t, { kind: 'tcp', host: '0.0.0.0', port: 0 }, async () => []);
  t.equal(bound.kind === 'tcp' && bound.host, '0.0.0.0');
  const result = await runStatusCommand({ address: bound });
  t.equal(result.exitStatus, 0);
});

t.test('nothing listening: one line naming the address, exit 1', async (t) => {
  const port = await refusingPort();
  const address: Address = { kind: 'tcp', host: '127.0.0.1', port };

  const result = await runStatusCommand({ address });
  t.equal(result.exitStatus, 1);
  t.equal(
    result.output,
    `harbor-sidecar status: admin endpoint 127.0.0.1:${port} unreachable (ECONNREFUSED); is harbor-sidecar running with --admin 127.0.0.1:${port}?\n`,
  );
  const json = await runStatusCommand({ address, json: true });
  t.equal(json.exitStatus, 1);
  t.equal(JSON.parse(json.output).ready, false);
  const error = await fetchStatus(address).catch((e: unknown) => e);
  t.ok(isHarborError(error, 'E_ADMIN_UNREACHABLE'), 'fetchStatus throws E_ADMIN_UNREACHABLE');
  t.same((await fetchReadiness({ kind: 'unix', path: '/nonexistent/admin.sock' })).httpStatus, null);
});

t.test('something else on the address: a clear error, exit 1', async (t) => {
  const other = createServer((req, res) => {
    if (req.url === '/readyz') {
      res.writeHead(200);
      res.end('fine');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html>hello</html>');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const address: Address = {
    kind: 'tcp',
    host: '127.0.0.1',
    port: (other.address() as { port: number }).port,
  };
  await t.rejects(fetchStatus(address), { code: 'E_ADMIN_UNREACHABLE', message: /not JSON/ });
  const result = await runStatusCommand({ address });
  t.equal(result.exitStatus, 1, 'a /status that cannot be read is not healthy');
});
