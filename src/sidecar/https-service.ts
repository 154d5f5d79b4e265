// One HTTPS service in the sidecar: its reloadable certificate pair, the
// trigger that reloads it when files change, and the TLS proxy on int_port.
// A service whose pair does not exist yet waits and starts serving once a
// valid pair appears.
import { ReloadablePair } from '../certs/reloadable.js';
import { OcspStapler, type StaplingState } from '../certs/stapler.js';
import { type Address, formatAddress, type HarborService } from '../config/types.js';
import { trustBlockList } from '../config/values.js';
import type { AccessLog } from '../https/access-log.js';
import {
  type BackendProtocol,
  createHttpsProxy,
  type HttpsProxy,
  type Limits,
  SECURE_CONTEXT_OPTIONS,
} from '../https/index.js';
import type { Logger } from '../log/index.js';
import { createServiceStats, type ServiceStats } from '../stats/index.js';
import { probeBackend } from './backend-probe.js';

export interface HttpsServiceOptions {
  readonly service: HarborService;
  readonly backend: Address;
  readonly appRoot: string;
  readonly certsDir: string | undefined;
  readonly clientCa: string | undefined;
  readonly passphrase: string | undefined;
  readonly listenHosts: readonly string[];
  readonly limits: Limits;
  readonly drainTimeoutMs: number;
  /** Addresses whose PROXY headers are believed (--trust-proxy). */
  readonly trustProxy?: readonly string[] | undefined;
  /** Strict-Transport-Security for answers that lack one (--hsts). */
  readonly hsts?: string | undefined;
  /** Keep a client's well-formed X-Request-Id (--trust-request-id). */
  readonly trustRequestId?: boolean | undefined;
  /** How HTTP/2 clients' streams reach the backend (--backend-protocol). */
  readonly backendProtocol?: BackendProtocol | undefined;
  /** Origins allowed to make gRPC-Web calls across sites (--grpc-web-origins). */
  readonly grpcWebOrigins?: readonly string[] | undefined;
  /** One line per request (--access-log). */
  readonly accessLog?: AccessLog | undefined;
  /** OCSP fetch timing (tests make it short). */
  readonly stapling?: { readonly retryMs?: number; readonly refreshMs?: number } | undefined;
  readonly logger: Logger;
  /** Starts watching the pair's files; returns a stop function. */
  readonly watch: (pair: ReloadablePair, logger: Logger) => () => Promise<void> | void;
}

export class HttpsService {
  readonly name: string;
  readonly stats: ServiceStats = createServiceStats();
  readonly #options: HttpsServiceOptions;
  readonly #logger: Logger;
  #pair: ReloadablePair | undefined;
  readonly #stapler: OcspStapler;
  #proxy: HttpsProxy | undefined;
  #stopWatching: (() => Promise<void> | void) | undefined;
  #clientAuth = false;

  constructor(options: HttpsServiceOptions) {
    this.#options = options;
    this.name = options.service.name;
    this.#logger = options.logger.child({ service: this.name });
    this.#stapler = new OcspStapler({ service: this.name, logger: this.#logger, ...options.stapling });
  }

  get service(): HarborService {
    return this.#options.service;
  }

  get backend(): Address {
    return this.#options.backend;
  }

  get pair(): ReloadablePair | undefined {
    return this.#pair;
  }

  /** OCSP stapling for the pair being served (state for /status). */
  get stapling(): StaplingState {
    return this.#stapler.state;
  }

  get proxy(): HttpsProxy | undefined {
    return this.#proxy;
  }

  /** Loads the pair (or starts waiting for it) and listens. Throws on a broken pair or a taken port. */
  async start(): Promise<void> {
    const o = this.#options;
    const pair = ReloadablePair.create({
      source: { service: this.name, appRoot: o.appRoot, certsDir: o.certsDir, clientCa: o.clientCa },
      passphrase: o.passphrase,
      contextOptions: SECURE_CONTEXT_OPTIONS,
      logger: o.logger,
      stats: this.stats,
      waitForPair: true,
      onChange: (next) => {
        if (this.#proxy) {
          this.#proxy.setTls(next.contextOptions);
          this.#stapler.update(next.contextOptions.cert as string | Buffer);
          const clientAuth = Boolean(next.files.caFile);
          if (clientAuth !== this.#clientAuth) {
            this.#clientAuth = clientAuth;
            this.#proxy.setClientAuth(clientAuth);
            this.#logger.info(
              { clientAuth },
              `client certificate authentication ${clientAuth ? 'on' : 'off'}`,
            );
          }
        } else {
          void this.#listen().catch((error: Error) =>
            this.#logger.error({ err: error }, `cannot start serving: ${error.message}`),
          );
        }
      },
    });
    this.#pair = pair;
    this.#stopWatching = o.watch(pair, this.#logger);
    if (pair.current()) await this.#listen();
    else
      this.#logger.warn(
        { watching: pair.watchedFiles().length },
        'no certificate pair yet; waiting for one to appear',
      );
  }

  async #listen(): Promise<void> {
    const value = this.#pair?.current();
    if (!value || this.#proxy) return;
    const o = this.#options;
    this.#clientAuth = Boolean(value.files.caFile);
    const proxy = createHttpsProxy({
      service: o.service,
      listen: { port: o.service.intPort, hosts: o.listenHosts },
      backend: o.backend,
      tls: value.contextOptions,
      clientAuth: this.#clientAuth,
      stats: this.stats,
      logger: o.logger,
      limits: o.limits,
      drainTimeoutMs: o.drainTimeoutMs,
      trustProxy: o.trustProxy && o.trustProxy.length > 0 ? trustBlockList(o.trustProxy) : undefined,
      hsts: o.hsts,
      trustRequestId: o.trustRequestId,
      backendProtocol: o.backendProtocol,
      grpcWebOrigins: o.grpcWebOrigins,
      accessLog: o.accessLog,
      ocspResponse: () => this.#stapler.response(),
    });
    this.#stapler.update(value.contextOptions.cert as string | Buffer);
    this.#proxy = proxy;
    await proxy.start();
  }

  /** Reasons this service cannot take traffic now; empty when it can. */
  async notReady(): Promise<string[]> {
    const reasons: string[] = [];
    const value = this.#pair?.current();
    if (!value) reasons.push(`${this.name}: no certificate pair loaded`);
    else if (!value.valid)
      reasons.push(`${this.name}: the certificate served is outside its validity period`);
    if (this.#proxy?.state !== 'listening')
      reasons.push(`${this.name}: not listening on ${this.service.intPort}`);
    const backend = await probeBackend(this.#options.backend);
    if (backend !== undefined)
      reasons.push(
        `${this.name}: backend ${formatAddress(this.#options.backend)} does not accept connections (${backend})`,
      );
    return reasons;
  }

  async reload(trigger: string): Promise<void> {
    await this.#pair?.reload(trigger);
  }

  async drain(deadlineMs: number): Promise<void> {
    await this.#stopWatching?.();
    this.#pair?.close();
    this.#stapler.close();
    await this.#proxy?.drain(deadlineMs);
  }
}
