// The sidecar's registration with the Harbor node: for each Harbor service,
// PUT this instance (host, int_port, ttl) to the node, refresh it well
// within the TTL, and DELETE it on stop. A node that is down or answers an
// error is retried with capped exponential backoff and logged once per
// change (W_NODE_UNREACHABLE); nothing here ever throws at the sidecar.
import { SIDECAR_DEFAULTS } from '../config/defaults.js';
import type { Logger } from '../log/index.js';
import { describeRequestError as describe, type NodeApiAnswer, nodeApiRequest } from '../node-api/index.js';

export interface RegisteredService {
  /** The credentials' `name` field: the service instance id, which is the node's service id. */
  readonly serviceId: string;
  /** The service name, for log lines. */
  readonly serviceName: string;
  /** The port the node forwards to: the service's int_port in this container. */
  readonly port: number;
  /** The opt-in UDP check to register with (services carrying UDP). */
  readonly udpCheck?: string | undefined;
}

export interface RegistrationOptions {
  /** The node API's base URL, e.g. http://10.0.0.5:9700 (HARBOR_NODE_URL). */
  readonly nodeUrl: string;
  /** Bearer token for the node API (HARBOR_NODE_TOKEN). */
  readonly token?: string | undefined;
  /** PEM certificates an https:// node must chain to (HARBOR_NODE_CA); undefined: the system's roots. */
  readonly ca?: string | undefined;
  /** This app instance's id (see resolveInstanceId). */
  readonly instanceId: string;
  /** The address the node dials to reach this container (see resolveInstanceHost). */
  readonly host: string;
  readonly services: readonly RegisteredService[];
  readonly logger: Logger;
  /** TTL the node applies; refreshes go out every ttl/3. Default 30 s. */
  readonly ttlSeconds?: number | undefined;
  /** Per-request deadline. Default 5 s. */
  readonly requestTimeoutMs?: number | undefined;
  /** Retry delays start at this and double up to maxBackoffMs. Defaults 1 s and 30 s. */
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
}

export interface RegistrationStatus {
  readonly service: string;
  readonly serviceId: string;
  readonly registered: boolean;
  readonly refreshes: number;
  readonly failures: number;
  readonly lastError: string | undefined;
  /** While not registered: the delay before the next try (never more than a third of the TTL). */
  readonly retryMs?: number | undefined;
}

export const DEFAULT_TTL_SECONDS = SIDECAR_DEFAULTS.nodeTtlMs / 1000;

class Registration {
  readonly service: RegisteredService;
  registered = false;
  refreshes = 0;
  failures = 0;
  backoffMs = 0;
  lastError: string | undefined;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<void> | undefined;

  constructor(service: RegisteredService) {
    this.service = service;
  }
}

export class RegistrationClient {
  readonly #options: RegistrationOptions;
  readonly #logger: Logger;
  readonly #ttl: number;
  /** A third of the TTL: two refreshes may be lost before the node drops the instance. */
  readonly #refreshMs: number;
  readonly #registrations: Registration[];
  /** The nodes of a cluster (or one node); requests go to the last that answered, and move on when it does not. */
  readonly #bases: readonly string[];
  #current = 0;
  #stopped = false;

  constructor(options: RegistrationOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.#refreshMs = Math.max(200, (this.#ttl * 1000) / 3);
    this.#bases = options.nodeUrl
      .split(',')
      .map((u) => u.trim().replace(/\/+$/, ''))
      .filter((u) => u !== '');
    this.#registrations = options.services.map((s) => new Registration(s));
  }

  /** Registers every service now and keeps refreshing in the background. Never throws, never waits. */
  start(): void {
    for (const r of this.#registrations) this.#run(r);
  }

  /** Stops refreshing and removes this instance from the node (best effort, bounded by the request timeout). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const r of this.#registrations) clearTimeout(r.timer);
    await Promise.all(
      this.#registrations.map(async (r) => {
        await r.inflight;
        try {
          const response = await this.#request('DELETE', r.service);
          if (ok(response) || response.status === 404) {
            this.#logger.info({ service: r.service.serviceName }, 'deregistered from the Harbor node');
          } else {
            this.#logger.warn(
              { code: 'W_NODE_UNREACHABLE', service: r.service.serviceName, status: response.status },
              'the Harbor node refused the deregistration',
            );
          }
        } catch (error) {
          this.#logger.warn(
            {
              code: 'W_NODE_UNREACHABLE',
              service: r.service.serviceName,
              reason: (error as Error).message,
            },
            'could not deregister from the Harbor node',
          );
        }
        r.registered = false;
      }),
    );
  }

  status(): RegistrationStatus[] {
    return this.#registrations.map((r) => ({
      service: r.service.serviceName,
      serviceId: r.service.serviceId,
      registered: r.registered,
      refreshes: r.refreshes,
      failures: r.failures,
      lastError: r.lastError,
      retryMs: r.registered ? undefined : r.backoffMs,
    }));
  }

  #run(r: Registration): void {
    if (this.#stopped) return;
    r.inflight = this.#register(r).finally(() => {
      r.inflight = undefined;
    });
  }

  async #register(r: Registration): Promise<void> {
    let problem: string | undefined;
    try {
      const response = await this.#request('PUT', r.service, {
        host: this.#options.host,
        port: r.service.port,
        ttl: this.#ttl,
        ...(r.service.udpCheck !== undefined && { udp_check: r.service.udpCheck }),
      });
      if (!ok(response)) problem = `HTTP ${response.status}: ${errorText(response)}`;
    } catch (error) {
      problem = (error as Error).message;
    }
    if (this.#stopped) return;
    const name = r.service.serviceName;
    if (problem === undefined) {
      if (!r.registered) {
        this.#logger.info(
          {
            service: name,
            node: this.#bases[this.#current],
            instance: this.#options.instanceId,
            address: `${this.#options.host}:${r.service.port}`,
            ttl: this.#ttl,
          },
          r.failures > 0
            ? 'registered with the Harbor node after failures'
            : 'registered with the Harbor node',
        );
      }
      r.registered = true;
      r.refreshes++;
      r.backoffMs = 0;
      r.lastError = undefined;
      this.#schedule(r, this.#refreshMs);
      return;
    }
    r.failures++;
    // Never slower than the refresh: a node back from an outage restores the instance with
    // its TTL running, and the next try must come before that TTL ends (issue 9, item 8).
    const min = Math.min(this.#options.minBackoffMs ?? 1000, this.#refreshMs);
    const max = Math.min(this.#options.maxBackoffMs ?? 30_000, this.#refreshMs);
    r.backoffMs = r.backoffMs === 0 ? min : Math.min(max, r.backoffMs * 2);
    if (problem !== r.lastError) {
      this.#logger.warn(
        {
          code: 'W_NODE_UNREACHABLE',
          service: name,
          node: this.#bases[this.#current],
          reason: problem,
          retry_ms: r.backoffMs,
        },
        'cannot register with the Harbor node; retrying (serving goes on)',
      );
    }
    r.lastError = problem;
    r.registered = false;
    this.#schedule(r, r.backoffMs);
  }

  #schedule(r: Registration, delayMs: number): void {
    clearTimeout(r.timer);
    r.timer = setTimeout(() => this.#run(r), delayMs);
    r.timer.unref();
  }

  /**
   * Sends to the node that answered last; when it cannot be reached or answers 5xx (a node
   * whose store is away), tries the others in turn. The last answer is returned, or the last
   * failure thrown as an Error whose message says what failed (its cause: the original).
   */
  async #request(
    method: 'PUT' | 'DELETE',
    service: RegisteredService,
    body?: unknown,
  ): Promise<NodeApiAnswer> {
    const count = this.#bases.length;
    for (let tried = 1; ; tried++) {
      const base = this.#bases[this.#current]!;
      try {
        const response = await this.#requestTo(base, method, service, body);
        if (response.status < 500 || tried >= count) return response;
      } catch (error) {
        // Described here, where the node it failed at is known.
        if (tried >= count) throw new Error(describe(error, base), { cause: error });
      }
      this.#current = (this.#current + 1) % count;
    }
  }

  #requestTo(
    base: string,
    method: 'PUT' | 'DELETE',
    service: RegisteredService,
    body?: unknown,
  ): Promise<NodeApiAnswer> {
    const url = `${base}/v1/services/${encodeURIComponent(service.serviceId)}/instances/${encodeURIComponent(this.#options.instanceId)}`;
    return nodeApiRequest(
      method,
      url,
      body,
      this.#options.token || undefined,
      this.#options.requestTimeoutMs ?? 5000,
      this.#options.ca,
    );
  }
}

const ok = (answer: NodeApiAnswer): boolean => answer.status >= 200 && answer.status < 300;

/** What a refusing node said: its JSON `error`, else the start of its answer. */
function errorText(answer: NodeApiAnswer): string {
  try {
    const parsed = JSON.parse(answer.text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // Not JSON: the text itself.
  }
  return answer.text.slice(0, 200);
}
