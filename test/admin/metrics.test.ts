import { request } from 'node:http';
import { register as globalRegistry } from 'prom-client';
import t from 'tap';
import {
  createAdminServer,
  createMetricsRegistry,
  METRIC_NAMES,
  type MetricsService,
} from '../../src/admin/index.js';
import type { Address } from '../../src/config/types.js';
import { silentLogger } from '../../src/log/index.js';
import {
  countHandshakeError,
  countRequestTimes,
  countResponse,
  createServiceStats,
} from '../../src/stats/index.js';

// A strict reader of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): it throws on
// anything a Prometheus server would reject, so a test that parses is a test
// that the scrape would succeed.
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}
interface Family {
  readonly name: string;
  type: string;
  help: string | undefined;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
  counter: [''],
  gauge: [''],
  untyped: [''],
};

// Prometheus reads values with Go's strconv.ParseFloat, which takes NaN and Inf
// in any case (prom-client writes `Nan` for an event-loop histogram not yet filled).
function parseValue(text: string, where: string): number {
  if (/^nan$/i.test(text)) return Number.NaN;
  if (/^\+?inf(inity)?$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value "${text}"`);
  return Number(text);
}

function parseSampleLine(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`${where}: no metric name`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
      if (!labelMatch?.[1]) throw new Error(`${where}: bad label at column ${i}`);
      const label = labelMatch[1];
      if (!LABEL_NAME.test(label) || label.startsWith('__'))
        throw new Error(`${where}: bad label name ${label}`);
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      i += labelMatch[0].length;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const next = line[i + 1];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else throw new Error(`${where}: bad escape \\${next}`);
          i += 2;
        } else {
          value += c;
          i++;
        }
      }
      labels[label] = value;
      i++;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`${where}: expected , or } at column ${i}`);
    }
    i++;
  }
  const rest = line.slice(i);
  if (!rest.startsWith(' ')) throw new Error(`${where}: expected a space before the value`);
  const fields = rest.trim().split(/ +/);
  if (fields.length < 1 || fields.length > 2) throw new Error(`${where}: expected value [timestamp]`);
  const value = parseValue(fields[0] ?? '', where);
  if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error(`${where}: bad timestamp`);
  return { name, labels, value };
}

function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const lines = text.slice(0, -1).split('\n');
  const family = (name: string, where: string): Family => {
    let f = families.get(name);
    if (!f) {
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      f = { name, type: 'untyped', help: undefined, samples: [] };
      families.set(name, f);
    }
    if (current && current !== f) closed.add(current.name);
    if (closed.has(name)) throw new Error(`${where}: lines of ${name} are not together`);
    current = f;
    return f;
  };
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([^ ]+) ?(.*)$/.exec(line);
      if (!meta) return; // a plain comment
      const [, kind, name = '', rest = ''] = meta;
      const f = family(name, where);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        if (/\\[^n\\]/.test(rest)) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest;
      } else {
        if (f.samples.length > 0) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest;
      }
      return;
    }
    const sample = parseSampleLine(line, where);
    const owner =
      current &&
      (SUFFIXES[current.type] ?? ['']).some((suffix) => sample.name === `${current?.name}${suffix}`)
        ? current
        : family(sample.name, where);
    if (owner.type === 'histogram' && sample.name.endsWith('_bucket') && !('le' in sample.labels)) {
      throw new Error(`${where}: histogram bucket without le`);
    }
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seriesSeen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seriesSeen.add(key);
    owner.samples.push(sample);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/**
 * What Prometheus' histogram_quantile() needs of a histogram (promtool's lint says the same): per
 * label set, buckets in rising `le` order whose counts never fall, a `+Inf` bucket, and `_count`
 * equal to it.
 */
function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const sample of f.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name.endsWith('_bucket')) entry.buckets.push([parseValue(le ?? '', f.name), sample.value]);
    else if (sample.name.endsWith('_count')) entry.count = sample.value;
  }
  for (const [key, { buckets, count }] of series) {
    const where = `${f.name}${key}`;
    if (buckets.at(-1)?.[0] !== Number.POSITIVE_INFINITY) throw new Error(`${where}: no +Inf bucket last`);
    buckets.forEach(([le, n], i) => {
      const [prevLe, prevN] = buckets[i - 1] ?? [Number.NEGATIVE_INFINITY, 0];
      if (le <= prevLe) throw new Error(`${where}: le ${le} after ${prevLe}`);
      if (n < prevN) throw new Error(`${where}: bucket le=${le} holds fewer than the one before`);
    });
    if (count !== buckets.at(-1)?.[1]) throw new Error(`${where}: _count ${count} is not the +Inf bucket's`);
  }
}

/** The value of `name`'s sample with `labels`; a histogram's `_bucket`, `_sum` or `_count` by that name. */
function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? families.get(name);
  const sample = family?.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return sample?.value;
}

function scrape(address: Address): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const target =
      address.kind === 'unix' ? { socketPath: address.path } : { host: address.host, port: address.port };
    const req = request({ ...target, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the strict parser rejects what Prometheus would', async (t) => {
  t.throws(() => parsePrometheusText('a 1'), /newline/);
  t.throws(() => parsePrometheusText('a{b="c} 1\n'), /unterminated/);
  t.throws(() => parsePrometheusText('a{b="\\x"} 1\n'), /bad escape/);
  t.throws(() => parsePrometheusText('a 1\na 2\n'), /twice/);
  t.throws(() => parsePrometheusText('a 1\nb 1\na{x="y"} 1\n'), /not together/);
  t.throws(() => parsePrometheusText('a one\n'), /bad value/);
  t.throws(() => parsePrometheusText('a 1,5\n'), /bad value/);
  t.throws(() => parsePrometheusText('# TYPE a countr\n'), /unknown type/);
  t.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket 1\n'), /without le/);
  t.throws(
    () => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n'),
    /fewer/,
  );
  t.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 1\n'), /_count 1/);
  t.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_count 2\n'), /\+Inf/);
  const ok = parsePrometheusText('# HELP a x\\ny\n# TYPE a counter\na{b="q\\"\\\\"} 1.5e3\n');
  t.equal(value(ok, 'a', { b: 'q"\\' }), 1500);
});

t.test('/metrics over real HTTP: parses, is labelled by service, and moves with the counters', async (t) => {
  const web = createServiceStats();
  const api = createServiceStats();
  const now = Date.UTC(2026, 10, 24, 12, 0, 0);
  let services: MetricsService[] = [
    { name: 'web-https', stats: web, notAfter: new Date(now + 10 * 86_400_000) },
    { name: 'both-dns', stats: api },
  ];
  const server = createAdminServer({
    address: { kind: 'tcp', host: '127.0.0.1', port: 0 },
    logger: silentLogger(),
    readiness: async () => [],
    status: () => ({ services: [] }),
    metrics: { services: () => services },
    now: () => now,
  });
  t.teardown(() => server.close());
  await server.start();
  const address = server.address()!;

  const first = await scrape(address);
  t.equal(first.status, 200);
  t.match(first.type, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  const before = parsePrometheusText(first.body);

  // Every metric the issue asks for, with its type and a help line.
  const types: Record<string, string> = {
    [METRIC_NAMES.connectionsOpen]: 'gauge',
    [METRIC_NAMES.connectionsTotal]: 'counter',
    [METRIC_NAMES.requests]: 'counter',
    [METRIC_NAMES.bytesIn]: 'counter',
    [METRIC_NAMES.bytesOut]: 'counter',
    [METRIC_NAMES.handshakeErrors]: 'counter',
    [METRIC_NAMES.reloads]: 'counter',
    [METRIC_NAMES.certificateExpiry]: 'gauge',
    [METRIC_NAMES.backendErrors]: 'counter',
  };
  for (const [name, type] of Object.entries(types)) {
    t.equal(before.get(name)?.type, type, `${name} is a ${type}`);
    t.ok(before.get(name)?.help, `${name} has help`);
  }
  t.equal(value(before, METRIC_NAMES.connectionsTotal, { service: 'web-https' }), 0);
  t.equal(value(before, METRIC_NAMES.connectionsTotal, { service: 'both-dns' }), 0);
  t.equal(value(before, METRIC_NAMES.requests, { service: 'web-https', class: '5xx' }), 0);
  t.equal(value(before, METRIC_NAMES.reloads, { service: 'web-https', result: 'failed' }), 0);
  t.equal(value(before, METRIC_NAMES.certificateExpiry, { service: 'web-https' }), 10 * 86_400);
  t.equal(
    value(before, METRIC_NAMES.certificateExpiry, { service: 'both-dns' }),
    undefined,
    'no cert, no series',
  );
  t.equal(before.get(METRIC_NAMES.handshakeErrors)?.samples.length, 0);
  for (const name of [METRIC_NAMES.requestDuration, METRIC_NAMES.backendFirstByte]) {
    t.equal(before.get(name)?.type, 'histogram', `${name} is a histogram`);
    t.ok(before.get(name)?.help, `${name} has help`);
    t.equal(before.get(name)?.samples.length, 0, `${name}: no request yet, no series`);
  }

  // Process metrics come from prom-client's default collectors on this registry.
  t.equal(before.get('process_cpu_user_seconds_total')?.type, 'counter');
  t.ok((value(before, 'process_resident_memory_bytes', {}) ?? 0) > 0, 'resident memory is reported');
  t.equal(before.get('nodejs_eventloop_lag_seconds')?.type, 'gauge');

  // What the serving parts do on their hot paths: plain increments.
  web.connectionsTotal += 3;
  web.connectionsOpen = 2;
  countResponse(web, 200);
  countResponse(web, 204);
  countResponse(web, 502);
  countResponse(web, 101);
  web.bytesIn += 1234;
  web.bytesOut += 56_789;
  countHandshakeError(web, 'no shared cipher');
  countHandshakeError(web, 'no shared cipher');
  countHandshakeError(web, 'wrong "version" \\ number');
  web.reloadsSucceeded++;
  web.reloadsFailed += 2;
  web.backendErrors++;
  api.connectionsTotal++;
  // Request times as performance.now() readings: 40 ms and 3 s answers, a 502 after 7 ms.
  countRequestTimes(web, 200, 1000, 1030, 1040);
  countRequestTimes(web, 200, 2000, 4500, 5000);
  countRequestTimes(web, 502, 9000, 0, 9007);

  const after = parsePrometheusText((await scrape(address)).body);
  t.equal(value(after, METRIC_NAMES.connectionsTotal, { service: 'web-https' }), 3);
  t.equal(value(after, METRIC_NAMES.connectionsOpen, { service: 'web-https' }), 2);
  t.equal(value(after, METRIC_NAMES.connectionsTotal, { service: 'both-dns' }), 1);
  t.equal(value(after, METRIC_NAMES.requests, { service: 'web-https', class: '2xx' }), 2);
  t.equal(value(after, METRIC_NAMES.requests, { service: 'web-https', class: '5xx' }), 1);
  t.equal(value(after, METRIC_NAMES.requests, { service: 'web-https', class: '1xx' }), 1);
  t.equal(value(after, METRIC_NAMES.bytesIn, { service: 'web-https' }), 1234);
  t.equal(value(after, METRIC_NAMES.bytesOut, { service: 'web-https' }), 56_789);
  t.equal(
    value(after, METRIC_NAMES.handshakeErrors, { service: 'web-https', reason: 'no shared cipher' }),
    2,
  );
  t.equal(
    value(after, METRIC_NAMES.handshakeErrors, { service: 'web-https', reason: 'wrong "version" \\ number' }),
    1,
    'a reason with quotes and backslashes is escaped and reads back',
  );
  t.equal(value(after, METRIC_NAMES.reloads, { service: 'web-https', result: 'ok' }), 1);
  t.equal(value(after, METRIC_NAMES.reloads, { service: 'web-https', result: 'failed' }), 2);
  t.equal(value(after, METRIC_NAMES.backendErrors, { service: 'web-https' }), 1);
  const duration = (labels: Record<string, string>) =>
    value(after, `${METRIC_NAMES.requestDuration}_bucket`, { service: 'web-https', ...labels });
  t.equal(duration({ class: '2xx', le: '0.025' }), 0);
  t.equal(duration({ class: '2xx', le: '0.05' }), 1, 'the 40 ms answer is at or below 0.05');
  t.equal(duration({ class: '2xx', le: '2.5' }), 1);
  t.equal(duration({ class: '2xx', le: '5' }), 2, 'the 3 s one at or below 5');
  t.equal(duration({ class: '2xx', le: '+Inf' }), 2);
  t.equal(duration({ class: '5xx', le: '0.01' }), 1, 'the 502 in its own class');
  t.equal(value(after, `${METRIC_NAMES.requestDuration}_count`, { service: 'web-https', class: '2xx' }), 2);
  t.ok(
    Math.abs(
      (value(after, `${METRIC_NAMES.requestDuration}_sum`, { service: 'web-https', class: '2xx' }) ?? 0) -
        3.04,
    ) < 1e-9,
    'the sum in seconds',
  );
  t.equal(duration({ class: '4xx', le: '+Inf' }), undefined, 'no series for a class without requests');
  t.equal(
    value(after, `${METRIC_NAMES.backendFirstByte}_count`, { service: 'web-https' }),
    2,
    'the backend answered two of three',
  );
  t.equal(value(after, `${METRIC_NAMES.backendFirstByte}_bucket`, { service: 'web-https', le: '0.05' }), 1);
  t.equal(
    value(after, `${METRIC_NAMES.requestDuration}_count`, { service: 'both-dns', class: '2xx' }),
    undefined,
    'a TCP/UDP service has no request times',
  );

  // A service that goes away (harbor-node DELETE) leaves the next scrape.
  services = [{ name: 'web-https', stats: web, notAfter: new Date(now - 86_400_000) }];
  const gone = parsePrometheusText((await scrape(address)).body);
  t.equal(value(gone, METRIC_NAMES.connectionsTotal, { service: 'both-dns' }), undefined);
  t.equal(
    value(gone, METRIC_NAMES.certificateExpiry, { service: 'web-https' }),
    -86_400,
    'expired is negative',
  );
});

t.test('each registry is its own: the global one stays empty, two coexist', async (t) => {
  const a = createMetricsRegistry({ source: { services: () => [] } });
  const b = createMetricsRegistry({
    source: { services: () => [{ name: 'x', stats: createServiceStats() }] },
    processMetrics: false,
  });
  t.equal(globalRegistry.getSingleMetric(METRIC_NAMES.requests), undefined);
  t.notMatch(await globalRegistry.metrics(), /harbor_/);
  const textA = parsePrometheusText(await a.metrics());
  const textB = parsePrometheusText(await b.metrics());
  t.equal(textA.get(METRIC_NAMES.connectionsTotal)?.samples.length, 0);
  t.equal(value(textB, METRIC_NAMES.connectionsTotal, { service: 'x' }), 0);
  t.equal(textB.get('process_cpu_user_seconds_total'), undefined, 'process metrics can be left out');
});
