// The Prometheus registry behind GET /metrics. Nothing here runs on a hot
// path: every metric is filled by its collect() at scrape time from the plain
// ServiceStats counters, so a request costs an integer increment and never a
// prom-client label lookup. Each admin server gets its own Registry (not the
// global one), so two in one process (tests, a node and a sidecar) never clash.
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import {
  LATENCY_BUCKETS,
  type LatencyHistogram,
  requestSecondsOf,
  type StatusClass,
} from '../stats/index.js';
import type { MetricsService, MetricsSource, MetricsStore } from './types.js';

export interface MetricsOptions {
  readonly source: MetricsSource;
  /** Milliseconds since the epoch; certificate expiry is measured from it. */
  readonly now?: () => number;
  /** Add prom-client's process and Node.js metrics (process_*, nodejs_*). Default true. */
  readonly processMetrics?: boolean;
}

const CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** The metric names, for docs/operations.md and the tests. */
export const METRIC_NAMES = {
  connectionsOpen: 'harbor_connections_open',
  connectionsTotal: 'harbor_connections_total',
  requests: 'harbor_requests_total',
  bytesIn: 'harbor_received_bytes_total',
  bytesOut: 'harbor_sent_bytes_total',
  handshakeErrors: 'harbor_handshake_errors_total',
  reloads: 'harbor_reloads_total',
  certificateExpiry: 'harbor_certificate_expiry_seconds',
  backendErrors: 'harbor_backend_errors_total',
  requestDuration: 'harbor_request_duration_seconds',
  backendFirstByte: 'harbor_backend_first_byte_seconds',
  storeConnected: 'harbor_store_connected',
  storeLag: 'harbor_store_revision_lag',
  storeResyncs: 'harbor_store_resyncs_total',
  storeLastSync: 'harbor_store_last_sync_timestamp_seconds',
  kernelFlows: 'harbor_kernel_flows_total',
  kernelBytesIn: 'harbor_kernel_received_bytes_total',
  kernelBytesOut: 'harbor_kernel_sent_bytes_total',
  kernelUnreachable: 'harbor_kernel_udp_unreachable_total',
  conntrackEntries: 'harbor_conntrack_entries',
  conntrackMax: 'harbor_conntrack_max',
} as const;

/**
 * A service's labels: its name, and on harbor-node its id too, since two services may share
 * a name there and must not add up into one series (issue 9, item 9).
 */
function labelsOf(s: MetricsService): Record<string, string> {
  return s.id === undefined ? { service: s.name } : { service: s.name, service_id: s.id };
}

type Filler = (metric: Counter<string> | Gauge<string>, service: MetricsService) => void;

export function createMetricsRegistry(options: MetricsOptions): Registry {
  const registry = new Registry();
  const now = options.now ?? Date.now;
  const { source } = options;

  // One helper builds every service-labelled metric: collect() empties the
  // metric and refills it from the current list, so a service that went away
  // (node DELETE) disappears from the next scrape instead of lingering.
  const define = (
    kind: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly string[],
    fill: Filler,
  ): void => {
    const config = {
      name,
      help,
      labelNames: ['service', 'service_id', ...labelNames],
      registers: [registry],
      collect(this: Counter<string> | Gauge<string>) {
        this.reset();
        for (const service of source.services()) fill(this, service);
      },
    };
    if (kind === 'counter') new Counter(config);
    else new Gauge(config);
  };
  const put = (metric: Counter<string> | Gauge<string>, labels: Record<string, string>, value: number) => {
    if (metric instanceof Gauge) metric.set(labels, value);
    else metric.inc(labels, value);
  };

  define('gauge', METRIC_NAMES.connectionsOpen, 'Client connections open now.', [], (m, s) =>
    put(m, labelsOf(s), s.stats.connectionsOpen),
  );
  define('counter', METRIC_NAMES.connectionsTotal, 'Client connections accepted.', [], (m, s) =>
    put(m, labelsOf(s), s.stats.connectionsTotal),
  );
  define(
    'counter',
    METRIC_NAMES.requests,
    'Responses sent to clients, by status class.',
    ['class'],
    (m, s) => {
      for (const statusClass of CLASSES) {
        put(m, { ...labelsOf(s), class: statusClass }, s.stats.requests[statusClass]);
      }
    },
  );
  define('counter', METRIC_NAMES.bytesIn, 'Bytes received from clients.', [], (m, s) =>
    put(m, labelsOf(s), s.stats.bytesIn),
  );
  define('counter', METRIC_NAMES.bytesOut, 'Bytes sent to clients.', [], (m, s) =>
    put(m, labelsOf(s), s.stats.bytesOut),
  );
  define('counter', METRIC_NAMES.handshakeErrors, 'Failed TLS handshakes, by reason.', ['reason'], (m, s) => {
    for (const [reason, count] of s.stats.handshakeErrors) put(m, { ...labelsOf(s), reason }, count);
  });
  define(
    'counter',
    METRIC_NAMES.reloads,
    'Certificate reloads, by result (ok, failed).',
    ['result'],
    (m, s) => {
      put(m, { ...labelsOf(s), result: 'ok' }, s.stats.reloadsSucceeded);
      put(m, { ...labelsOf(s), result: 'failed' }, s.stats.reloadsFailed);
    },
  );
  define(
    'gauge',
    METRIC_NAMES.certificateExpiry,
    'Seconds until the served certificate expires (negative once expired).',
    [],
    (m, s) => {
      if (s.notAfter) put(m, labelsOf(s), Math.round((s.notAfter.getTime() - now()) / 1000));
    },
  );
  define(
    'counter',
    METRIC_NAMES.backendErrors,
    'Requests or connections that failed toward the backend.',
    [],
    (m, s) => put(m, labelsOf(s), s.stats.backendErrors),
  );

  registry.registerMetric(
    scrapedHistogram(
      METRIC_NAMES.requestDuration,
      "HTTPS requests' time from the request head to the answer's end, by status class.",
      function* () {
        for (const s of source.services()) {
          for (const statusClass of CLASSES) {
            const histogram = requestSecondsOf(s.stats, statusClass);
            if (histogram !== undefined) yield { labels: { ...labelsOf(s), class: statusClass }, histogram };
          }
        }
      },
    ),
  );
  registry.registerMetric(
    scrapedHistogram(
      METRIC_NAMES.backendFirstByte,
      "HTTPS requests' time from the request head to the backend's response head.",
      function* () {
        for (const s of source.services()) {
          const histogram = s.stats.backendSeconds;
          if (histogram !== undefined) yield { labels: labelsOf(s), histogram };
        }
      },
    ),
  );

  // The kernel data plane's own counters (nft), beside the userspace listeners' above.
  const kernel = (name: string, help: string, value: (k: NonNullable<MetricsService['kernel']>) => number) =>
    define('counter', name, help, [], (m, s) => {
      if (s.kernel !== undefined) put(m, labelsOf(s), value(s.kernel));
    });
  kernel(
    METRIC_NAMES.kernelFlows,
    'New flows the kernel sent to an instance (--dataplane nftables).',
    (k) => k.flows,
  );
  kernel(
    METRIC_NAMES.kernelBytesIn,
    'Payload bytes of kernel-forwarded flows from clients (packet headers taken off).',
    (k) => k.bytes_in,
  );
  kernel(
    METRIC_NAMES.kernelBytesOut,
    'Payload bytes of kernel-forwarded flows to clients (packet headers taken off).',
    (k) => k.bytes_out,
  );
  kernel(
    METRIC_NAMES.kernelUnreachable,
    'ICMP port-unreachable errors of kernel-forwarded UDP flows (a refusing primary).',
    (k) => k.unreachable,
  );
  const conntrack = source.conntrack?.bind(source);
  if (conntrack) {
    for (const [name, help, key] of [
      [METRIC_NAMES.conntrackEntries, 'Entries in the kernel conntrack table now.', 'count'],
      [METRIC_NAMES.conntrackMax, 'Size of the kernel conntrack table (nf_conntrack_max).', 'max'],
    ] as const) {
      new Gauge({
        name,
        help,
        registers: [registry],
        collect(this: Gauge<string>) {
          this.reset();
          const v = conntrack()[key];
          if (v !== null) this.set(v);
        },
      });
    }
  }

  const store = source.store?.bind(source);
  if (store) {
    const gauge = (name: string, help: string, value: (s: MetricsStore) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['store'],
        registers: [registry],
        collect(this: Gauge<string>) {
          this.reset();
          const now = store();
          const v = value(now);
          if (v !== undefined) this.set({ store: now.kind }, v);
        },
      });
    gauge(
      METRIC_NAMES.storeConnected,
      'Whether the node reached its store at its last sync (1) or not (0).',
      (s) => (s.connected ? 1 : 0),
    );
    gauge(METRIC_NAMES.storeLag, 'Revisions the node was behind the store at its last sync.', (s) => s.lag);
    gauge(METRIC_NAMES.storeLastSync, 'When the node last synced with its store (Unix seconds).', (s) =>
      s.syncedAt === undefined ? undefined : s.syncedAt / 1000,
    );
    new Counter({
      name: METRIC_NAMES.storeResyncs,
      help: 'Snapshots re-read from the store (its revision moved, it came back empty, or it lost writes).',
      labelNames: ['store'],
      registers: [registry],
      collect(this: Counter<string>) {
        this.reset();
        const now = store();
        this.inc({ store: now.kind }, now.resyncs);
      },
    });
  }

  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}

/** One labelled histogram read at scrape time. */
interface HistogramSeries {
  readonly labels: Record<string, string>;
  readonly histogram: LatencyHistogram;
}

const BUCKET_LABELS = [...LATENCY_BUCKETS.map(String), '+Inf'];

/**
 * A histogram metric whose series are read from LatencyHistogram counts when scraped (prom-client's
 * Histogram takes one observation at a time, with a label lookup each: a cost per request). It
 * answers what the registry asks of a metric: get() and reset().
 */
function scrapedHistogram(name: string, help: string, read: () => Iterable<HistogramSeries>): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    collect: undefined,
    get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const { labels, histogram } of read()) {
        histogram.cumulative().forEach((value, i) => {
          values.push({
            metricName: `${name}_bucket`,
            labels: { ...labels, le: BUCKET_LABELS[i] as string },
            value,
          });
        });
        values.push({ metricName: `${name}_sum`, labels, value: histogram.sum });
        values.push({ metricName: `${name}_count`, labels, value: histogram.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset() {},
  };
  return metric as unknown as Metric;
}
