// The admin endpoint of a real `harbor-sidecar run`, asked with real HTTP:
// /healthz, /readyz (503 with the reason while the backend is down, 200 when
// it is back), /status, and /metrics, whose counters must move with real
// HTTPS and TCP traffic and parse as Prometheus text.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { OpensslFactory, opensslFingerprint, read } from '../fixtures/certs-helpers.js';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { type EchoBackend, echoBackend, freePort, httpsGet } from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

function adminGet(port: number, path: string, accept = '*/*', method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, headers: { accept }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
        );
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`admin ${path} timed out`)));
    req.once('error', reject);
    req.end();
  });
}

/** POST over HTTPS with a body; resolves with the status and the body. */
function httpsPost(port: number, ca: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    import('node:https').then(({ request: httpsRequest }) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/upload',
          method: 'POST',
          ca,
          servername: 'localhost',
          agent: false,
          headers: { 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.once('error', reject);
      req.end(body);
    }, reject);
  });
}

type Samples = Map<string, number>;

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a
 * comment (# HELP / # TYPE), blank, or `name{labels} value`, and every sample
 * belongs to a family declared by a # TYPE line before it. Returns samples
 * keyed `name{labels as sent}`; throws naming the first bad line. Values are
 * what Go's ParseFloat (Prometheus's own reader) takes: prom-client writes NaN
 * as `Nan` (nodejs_eventloop_lag_* before the first sample).
 */
function parsePrometheus(text: string): Samples {
  const samples: Samples = new Map();
  const types = new Map<string, string>();
  const sample =
    /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|[+-]?(?:[Ii]nf|NaN|Nan|nan))( -?\d+)?$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1] ?? '', type[2] ?? '');
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const match = sample.exec(line);
    if (!match) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const name = match[1] ?? '';
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count|total|created)$/, '');
    if (!types.has(family)) throw new Error(`sample ${name} has no # TYPE line before it`);
    samples.set(`${name}${match[2] ?? ''}`, Number(match[3]));
  }
  return samples;
}

async function scrape(port: number): Promise<Samples> {
  const answer = await adminGet(port, '/metrics');
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
  return parsePrometheus(answer.body);
}

const value = (samples: Samples, key: string): number => {
  const found = samples.get(key);
  if (found === undefined) throw new Error(`no sample ${key}`);
  return found;
};

const root = mkdtempSync(join(tmpdir(), 'harbor-admin-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const factory = new OpensslFactory(root);
const pair = factory.pair('localhost', { type: 'ec' }, { hosts: ['localhost', '127.0.0.1'] });
mkdirSync(join(root, 'app', 'certs'), { recursive: true });
copyFileSync(pair.certFile, join(root, 'app', 'certs', 'harbor.crt'));
copyFileSync(pair.keyFile, join(root, 'app', 'certs', 'harbor.key'));
const ca = read(pair.certFile);

t.test('healthz, readyz, status and metrics of a running sidecar, with real traffic', async (t) => {
  let backend: EchoBackend = await echoBackend();
  const backendPort = backend.port;
  t.teardown(() => backend.close());
  const tcpApp = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => tcpApp.close());
  const adminPort = await freePort();
  const httpsPort = await freePort();
  const tcpPort = await freePort();
  const sidecar = startSidecar(
    [
      'run',
      '--listen',
      '127.0.0.1',
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--drain-timeout',
      '8s',
      '--forward',
      `ldap-port=127.0.0.1:${(tcpApp.address() as { port: number }).port}`,
    ],
    {
      STACKATO_SERVICES: JSON.stringify({
        'shop-https': { int_port: httpsPort, port: 35443, name: 'id-shop' },
        'ldap-port': { int_port: tcpPort, port: 35389, name: 'id-ldap' },
      }),
      PORT: String(backendPort),
      HARBOR_APP_ROOT: join(root, 'app'),
    },
  );
  t.teardown(() => {
    sidecar.kill('SIGKILL');
  });
  const adminLine = waitForOutput(sidecar, /"msg":"admin endpoint on /);
  await waitForOutput(sidecar, /"msg":"harbor-sidecar serving"/);
  t.match(await adminLine, `"admin":"127.0.0.1:${adminPort}"`);

  t.test('/healthz', async (t) => {
    const answer = await adminGet(adminPort, '/healthz');
    t.equal(answer.status, 200);
    t.equal(answer.body, 'ok\n');
    t.equal((await adminGet(adminPort, '/healthz', '*/*', 'HEAD')).status, 200);
    const post = await adminGet(adminPort, '/healthz', '*/*', 'POST');
    t.equal(post.status, 405);
    t.equal((await adminGet(adminPort, '/nope')).status, 404);
  });

  t.test('/status: services, the pair and its inspection', async (t) => {
    const answer = await adminGet(adminPort, '/status');
    t.equal(answer.status, 200);
    t.match(answer.type, /^application\/json/);
    const status = JSON.parse(answer.body);
    t.equal(status.program, 'harbor-sidecar');
    t.equal(status.state, 'listening');
    t.equal(status.pid, sidecar.pid);
    const shop = status.services.find((s: { name: string }) => s.name === 'shop-https');
    t.match(shop, {
      protocol: 'https',
      int_port: httpsPort,
      port: 35443,
      backend: `127.0.0.1:${backendPort}`,
      pair: {
        certFile: join(root, 'app', 'certs', 'harbor.crt'),
        keyFile: join(root, 'app', 'certs', 'harbor.key'),
        inspection: { fingerprint256: opensslFingerprint(pair.certFile), keyType: 'EC P-256' },
      },
      lastReload: null,
    });
    t.match(shop.pair.inspection.subject, /localhost/);
    const ldap = status.services.find((s: { name: string }) => s.name === 'ldap-port');
    t.match(ldap, { protocol: 'tcp', int_port: tcpPort, pair: null });
  });

  t.test('/metrics moves with real HTTPS and TCP traffic', async (t) => {
    const answer = await adminGet(adminPort, '/metrics');
    t.match(answer.type, /^text\/plain; version=0\.0\.4/);
    const before = parsePrometheus(answer.body);
    const shop = '{service="shop-https"}';
    const ok2xx = 'harbor_requests_total{service="shop-https",class="2xx"}';
    t.ok(before.has('process_resident_memory_bytes'), 'process metrics are there');
    const expiry = value(before, `harbor_certificate_expiry_seconds${shop}`);
    t.ok(
      expiry > 89 * 86400 && expiry <= 90 * 86400,
      `the certificate expires in about 90 days (${expiry} s)`,
    );

    const requests = 5;
    for (let i = 0; i < requests; i++) {
      const got = await httpsGet(httpsPort, ca, `/metrics-test/${i}`);
      t.equal(got.status, 200);
    }
    const upload = Buffer.alloc(64 * 1024, 'u');
    t.equal((await httpsPost(httpsPort, ca, upload)).status, 200);
    const echoed = await new Promise<number>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: tcpPort });
      let received = 0;
      socket.on('data', (c: Buffer) => {
        received += c.length;
      });
      socket.on('error', reject);
      socket.on('connect', () => socket.end(Buffer.alloc(10_000, 't')));
      socket.on('close', () => resolve(received));
    });
    t.equal(echoed, 10_000);

    // Connection counters settle when the connections have closed on the sidecar's side.
    let after = before;
    await eventually(async () => {
      after = await scrape(adminPort);
      return (
        value(after, `harbor_connections_open${shop}`) === 0 &&
        value(after, 'harbor_connections_open{service="ldap-port"}') === 0 &&
        value(after, 'harbor_connections_total{service="ldap-port"}') ===
          value(before, 'harbor_connections_total{service="ldap-port"}') + 1
      );
    });
    t.equal(value(after, ok2xx) - value(before, ok2xx), requests + 1, 'one 2xx per request');
    const timed = 'harbor_request_duration_seconds_count{service="shop-https",class="2xx"}';
    t.equal(value(after, timed) - (before.get(timed) ?? 0), requests + 1, 'each request timed');
    t.equal(
      value(after, 'harbor_request_duration_seconds_bucket{service="shop-https",class="2xx",le="+Inf"}'),
      value(after, timed),
      'the +Inf bucket holds them all',
    );
    const firstBytes = 'harbor_backend_first_byte_seconds_count{service="shop-https"}';
    t.equal(
      value(after, firstBytes) - (before.get(firstBytes) ?? 0),
      requests + 1,
      "each backend's first byte timed",
    );
    t.notOk(
      [...after.keys()].some((key) => key.startsWith('harbor_request_duration') && key.includes('ldap-port')),
      'a TCP forward has no request times',
    );
    t.equal(
      value(after, `harbor_connections_total${shop}`) - value(before, `harbor_connections_total${shop}`),
      requests + 1,
      'one connection per request (no keep-alive)',
    );
    t.equal(value(after, `harbor_connections_open${shop}`), 0);
    const inShop =
      value(after, `harbor_received_bytes_total${shop}`) -
      value(before, `harbor_received_bytes_total${shop}`);
    t.ok(inShop >= upload.length, `received bytes count the 64 KiB upload (${inShop})`);
    const outShop =
      value(after, `harbor_sent_bytes_total${shop}`) - value(before, `harbor_sent_bytes_total${shop}`);
    t.ok(
      outShop >= requests * 'backend:GET /metrics-test/0'.length,
      `sent bytes count the answers (${outShop})`,
    );
    const ldap = '{service="ldap-port"}';
    t.equal(
      value(after, `harbor_received_bytes_total${ldap}`) -
        value(before, `harbor_received_bytes_total${ldap}`),
      10_000,
    );
    t.equal(
      value(after, `harbor_sent_bytes_total${ldap}`) - value(before, `harbor_sent_bytes_total${ldap}`),
      10_000,
    );
  });

  t.test('/readyz: 503 with the reason while the backend is down, 200 when it is back', async (t) => {
    const ready = await adminGet(adminPort, '/readyz');
    t.equal(ready.status, 200);
    t.equal(ready.body, 'ready\n');
    t.same(JSON.parse((await adminGet(adminPort, '/readyz', 'application/json')).body), {
      ready: true,
      reasons: [],
    });

    const beforeDown = await scrape(adminPort);
    await backend.close();
    const down = await adminGet(adminPort, '/readyz');
    t.equal(down.status, 503);
    const reason = `shop-https: backend 127.0.0.1:${backendPort} does not accept connections (ECONNREFUSED)`;
    t.equal(down.body, `not ready\n${reason}\n`);
    const json = await adminGet(adminPort, '/readyz?format=json');
    t.equal(json.status, 503);
    t.same(JSON.parse(json.body), {
      ready: false,
      reasons: [reason],
    });
    t.equal((await adminGet(adminPort, '/healthz')).status, 200, '/healthz stays 200: the process is up');

    // A request while the backend is down: a 5xx and a backend error, counted.
    const failed = await httpsGet(httpsPort, ca, '/backend-down');
    t.equal(failed.status, 502);
    const duringDown = await scrape(adminPort);
    const shop = '{service="shop-https"}';
    t.equal(
      value(duringDown, 'harbor_requests_total{service="shop-https",class="5xx"}') -
        value(beforeDown, 'harbor_requests_total{service="shop-https",class="5xx"}'),
      1,
    );
    t.ok(
      value(duringDown, `harbor_backend_errors_total${shop}`) >
        value(beforeDown, `harbor_backend_errors_total${shop}`),
      'the refused backend connection is a backend error',
    );

    backend = await echoBackend(backendPort);
    const back = await adminGet(adminPort, '/readyz');
    t.equal(back.status, 200);
    t.equal(back.body, 'ready\n');
    t.equal((await httpsGet(httpsPort, ca, '/again')).status, 200);
  });

  t.test('while draining, /readyz is 503 and /healthz answers; the endpoint closes at exit', async (t) => {
    // An open forwarded connection keeps the drain going (up to --drain-timeout) until the client ends it.
    const held = connect({ host: '127.0.0.1', port: tcpPort });
    held.on('error', () => {});
    await new Promise<void>((resolve) => held.once('connect', () => resolve()));
    held.write('hold');
    await new Promise<void>((resolve) => held.once('data', () => resolve()));
    sidecar.kill('SIGTERM');
    let readyz: Answer | undefined;
    await eventually(async () => {
      readyz = await adminGet(adminPort, '/readyz');
      return readyz.status === 503;
    });
    t.equal(readyz?.status, 503);
    t.equal(readyz?.body, 'not ready\nsidecar is draining\n');
    t.equal((await adminGet(adminPort, '/healthz')).status, 200);
    held.end();
    t.same(await exited(sidecar), { code: 0, signal: null });
    await t.rejects(adminGet(adminPort, '/healthz'), 'the endpoint closes with the sidecar');
  });
});
