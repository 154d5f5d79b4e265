// The shapes the admin endpoint serves and reads: the /status JSON document
// (documented in docs/operations.md, "The /status document"), the /readyz
// JSON answer, and what the metrics are read from at scrape time.
import type { ServiceStats, StatusClass } from '../stats/index.js';

/** One service's entry in MetricsSource: its plain counters and, for HTTPS, when its certificate expires. */
export interface MetricsService {
  readonly name: string;
  /** A unique id where names need not be unique (harbor-node's service id). */
  readonly id?: string | undefined;
  readonly stats: ServiceStats;
  /** notAfter of the certificate now served; undefined for services without one (TCP, UDP, no pair yet). */
  readonly notAfter?: Date | undefined;
  /** harbor-node with the kernel data plane: what the kernel forwarded for it. */
  readonly kernel?: MetricsKernel | undefined;
}

/** A service's kernel counters (harbor-node --dataplane nftables). */
export interface MetricsKernel {
  readonly flows: number;
  readonly bytes_in: number;
  readonly bytes_out: number;
  readonly unreachable: number;
}

/**
 * Where /metrics reads from. Called once per scrape, so it may build its list
 * then; the serving parts only bump the plain ServiceStats counters.
 */
export interface MetricsSource {
  services(): Iterable<MetricsService>;
  /** harbor-node: its store as this node last saw it. */
  store?(): MetricsStore;
  /** harbor-node with the kernel data plane: the conntrack table's use. */
  conntrack?(): { readonly count: number | null; readonly max: number | null };
}

/** The store figures /metrics exports (harbor-node). */
export interface MetricsStore {
  readonly kind: string;
  readonly connected: boolean;
  readonly lag: number;
  readonly resyncs: number;
  /** Epoch ms of the last sync; undefined before the first. */
  readonly syncedAt: number | undefined;
}

/** How a service is carried: `https` is TLS ended by the sidecar on int_port (TCP). */
export type StatusProtocol = 'https' | 'tcp' | 'udp' | 'both';

/** A summary of the certificate inspection (the full one is `harbor-sidecar check --json`). */
export interface StatusInspection {
  readonly subject: string;
  readonly sans: readonly string[];
  readonly issuer: string;
  /** ISO 8601. */
  readonly notBefore: string;
  /** ISO 8601. */
  readonly notAfter: string;
  /** SHA-256 of the leaf certificate, colon-separated hex. */
  readonly fingerprint256: string;
  /** `RSA 2048`, `EC P-256`... */
  readonly keyType: string;
  readonly selfSigned: boolean;
}

export interface StatusPair {
  readonly certFile: string;
  readonly keyFile: string;
  /** Why this pair applies: `per-service pair`, `harbor.crt fallback (no shop-https.crt)`... */
  readonly reason: string;
  /** null while no valid pair could be loaded. */
  readonly inspection: StatusInspection | null;
}

export interface StatusReload {
  /** ISO 8601 time of the last reload attempt. */
  readonly at: string;
  readonly ok: boolean;
  /** The one-line reason when `ok` is false, else null. */
  readonly error: string | null;
}

/** ServiceStats as JSON (handshake errors as an object rather than a Map). */
export interface StatusCounters {
  readonly connectionsOpen: number;
  readonly connectionsTotal: number;
  readonly requests: Readonly<Record<StatusClass, number>>;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly handshakeErrors: Readonly<Record<string, number>>;
  readonly reloadsSucceeded: number;
  readonly reloadsFailed: number;
  readonly backendErrors: number;
  /**
   * HTTPS: request times in seconds (head to the answer's end, every status), estimated from the
   * latency histograms as Prometheus' histogram_quantile() would; absent before the first request.
   */
  readonly requestSeconds?: {
    readonly count: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
  };
}

export interface StatusService {
  readonly name: string;
  readonly protocol: StatusProtocol;
  /** The port in the container the sidecar (or the app) listens on. */
  readonly int_port: number;
  /** The external port on the Harbor node; null when the credentials lack it. */
  readonly port: number | null;
  /** Where requests go (`127.0.0.1:8080`, a socket path); null for services not forwarded by this process. */
  readonly backend: string | null;
  /** The certificate pair for an HTTPS service; null for TCP and UDP services. */
  readonly pair: StatusPair | null;
  /** null until the first reload (start-up loading is not a reload). */
  readonly lastReload: StatusReload | null;
  readonly counters: StatusCounters;
  /** OCSP stapling of an HTTPS service's pair (absent for other services). */
  readonly ocsp?: unknown;
}

/** The document GET /status serves. */
export interface StatusReport {
  /** `harbor-sidecar` or `harbor-node`. */
  readonly program: string;
  readonly version: string;
  readonly pid: number;
  /** ISO 8601. */
  readonly startedAt: string;
  /** The lifecycle state: `created`, `starting`, `listening`, `draining`, `stopped` (harbor-node may add its own). */
  readonly state: string;
  readonly services: readonly StatusService[];
  /** harbor-node: where its services are kept and how fresh its copy is. */
  readonly store?: unknown;
  /** harbor-node: what each member of its cluster observes (this node alone when it has no cluster). */
  readonly members?: unknown;
  /** harbor-node: who forwards new flows (userspace, or nftables with its table and conntrack figures). */
  readonly dataplane?: unknown;
  /** harbor-node: its API's certificate ("off": plain HTTP) and its last reload. */
  readonly api?: unknown;
}

/** The JSON form of GET /readyz (ask with `Accept: application/json`). */
export interface ReadinessReport {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}
