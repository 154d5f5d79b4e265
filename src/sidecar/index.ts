// The sidecar at run time: composes an HTTPS proxy per `*https` service, the
// `--forward`s, registration with a harbor-node and the admin endpoint, and
// owns the lifecycle: starting, listening, draining, stopped. Reload
// triggers (file watch, SIGHUP) call reload(); signals are wired in src/cli.

import { closeSync, openSync } from 'node:fs';
import { type AdminServer, createAdminServer } from '../admin/server.js';
import { countersOf } from '../admin/table.js';
import type { StatusReport, StatusService } from '../admin/types.js';
import type { ReloadablePair } from '../certs/reloadable.js';
import { formatAddress, protocolLabel, type SidecarSettings } from '../config/index.js';
import { HarborError } from '../errors/index.js';
import { ForwarderGroup, fixedPicker } from '../forward/index.js';
import { AccessLog } from '../https/access-log.js';
import type { Logger } from '../log/index.js';
import { createServiceStats, type ServiceStats } from '../stats/index.js';
import { HttpsService } from './https-service.js';

export type SidecarState = 'created' | 'starting' | 'listening' | 'draining' | 'stopped';

export interface SidecarOptions {
  readonly settings: SidecarSettings;
  readonly logger: Logger;
  readonly version: string;
  /** Starts watching a pair's files; returns a stop function. */
  readonly watch: (pair: ReloadablePair, logger: Logger) => () => Promise<void> | void;
  /** Registration with a harbor-node, when configured: started after listening, stopped first on drain. */
  readonly registration?: { start(): Promise<void> | void; stop(): Promise<void> } | undefined;
}

interface ForwardEntry {
  readonly name: string;
  readonly groups: readonly ForwarderGroup[];
  readonly stats: ServiceStats;
  readonly target: string;
}

function isDefaultListen(hosts: readonly string[]): boolean {
  return hosts.length === 2 && hosts.includes('0.0.0.0') && hosts.includes('::');
}

export class Sidecar {
  readonly #options: SidecarOptions;
  readonly #logger: Logger;
  readonly #https: HttpsService[] = [];
  readonly #forwards: ForwardEntry[] = [];
  readonly #startedAt = new Date();
  #admin: AdminServer | undefined;
  #state: SidecarState = 'created';
  /** One access log for every HTTPS service, when on. */
  readonly #accessLog: AccessLog | undefined;

  constructor(options: SidecarOptions) {
    this.#options = options;
    this.#logger = options.logger;
    const { settings } = options;
    const limits = {
      headerTimeoutMs: settings.headerTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      maxHeaderBytes: settings.maxHeaderBytes,
      maxConnections: settings.maxConnections,
      maxBufferedBodyBytes: settings.maxBufferedBodyBytes,
      backendTimeoutMs: settings.backendTimeoutMs,
    };
    if (settings.accessLog !== 'off' && settings.accessLogFile !== undefined) {
      checkAccessLogFile(settings.accessLogFile);
    }
    this.#accessLog =
      settings.accessLog === 'off'
        ? undefined
        : new AccessLog({
            format: settings.accessLog,
            file: settings.accessLogFile,
            keepQuery: settings.accessLogQuery === 'keep',
            onLoss: ({ file, code }) =>
              options.logger.warn(
                { file, code },
                'access log lines are being lost (the file cannot be opened or written); serving goes on',
              ),
          });
    for (const service of settings.services) {
      const forward = settings.forwards.find((f) => f.service === service.name);
      if (service.https) {
        if (settings.backend === undefined) {
          throw new HarborError(
            'E_BACKEND',
            `service "${service.name}" needs a backend to forward HTTPS to: set HARBOR_BACKEND, --backend or PORT`,
          );
        }
        this.#https.push(
          new HttpsService({
            service,
            backend: settings.backend,
            appRoot: settings.appRoot,
            certsDir: settings.certsDir,
            clientCa: settings.clientCa,
            passphrase: settings.keyPassphrase,
            listenHosts: settings.listenHosts,
            limits,
            drainTimeoutMs: settings.drainTimeoutMs,
            trustProxy: settings.trustProxy,
            hsts: settings.hsts,
            trustRequestId: settings.trustRequestId,
            backendProtocol: settings.backendProtocol,
            grpcWebOrigins: settings.grpcWebOrigins,
            accessLog: this.#accessLog,
            logger: options.logger,
            watch: options.watch,
          }),
        );
      }
      if (forward && forward.target.kind === 'tcp') {
        // The HTTPS proxy owns TCP on int_port; a forward then carries only the UDP side (the
        // settings refuse a forward on an https service without UDP).
        const transport = service.https ? 'udp' : service.transport;
        const stats = createServiceStats();
        const target = { host: forward.target.host, port: forward.target.port };
        // On the default hosts a forwarder binds every address itself; an explicit --listen is honoured host by host.
        const hosts = isDefaultListen(settings.listenHosts) ? [undefined] : settings.listenHosts;
        const groups = hosts.map(
          (host) =>
            new ForwarderGroup(transport, {
              listen: { host, port: service.intPort },
              picker: fixedPicker(target),
              logger: options.logger,
              name: service.name,
              serviceStats: stats,
              proxyProtocol:
                settings.proxyProtocol === 'off' ? undefined : settings.proxyProtocol === 'v1' ? 1 : 2,
            }),
        );
        this.#forwards.push({ name: service.name, groups, stats, target: formatAddress(forward.target) });
      }
    }
  }

  get state(): SidecarState {
    return this.#state;
  }

  /** True when there is anything to serve: HTTPS services, forwards or a node to register with. */
  get hasWork(): boolean {
    return this.#https.length > 0 || this.#forwards.length > 0 || this.#options.registration !== undefined;
  }

  async start(): Promise<void> {
    this.#state = 'starting';
    const { settings } = this.#options;
    this.#admin = createAdminServer({
      address: settings.admin,
      logger: this.#logger,
      readiness: () => this.notReady(),
      status: () => this.status(),
      metrics: {
        services: () => [
          ...this.#https.map((s) => ({
            name: s.name,
            stats: s.stats,
            notAfter: s.pair?.current()?.inspection.notAfter,
          })),
          ...this.#forwards.map((f) => ({ name: f.name, stats: f.stats })),
        ],
      },
    });
    try {
      for (const service of this.#https) await service.start();
      for (const forward of this.#forwards) {
        for (const group of forward.groups) await group.start();
        this.#logger.info({ service: forward.name, target: forward.target }, 'forwarding');
      }
    } catch (error) {
      await this.#stopAll(0);
      this.#state = 'stopped';
      throw error;
    }
    await this.#admin.start();
    await this.#options.registration?.start();
    this.#state = 'listening';
  }

  /** Reloads every service's certificate pair now (SIGHUP). Ignored while draining. */
  async reload(trigger: string): Promise<void> {
    if (this.#state !== 'listening') {
      this.#logger.info({ trigger, state: this.#state }, 'reload ignored');
      return;
    }
    await Promise.all(this.#https.map((s) => s.reload(trigger)));
  }

  /** Stops accepting, deregisters, lets requests in flight finish within the drain timeout. */
  async drain(): Promise<void> {
    if (this.#state === 'draining' || this.#state === 'stopped') return;
    this.#state = 'draining';
    this.#logger.info({ deadlineMs: this.#options.settings.drainTimeoutMs }, 'draining');
    await this.#options.registration?.stop().catch(() => undefined);
    await this.#stopAll(this.#options.settings.drainTimeoutMs);
    await this.#admin?.close();
    await this.#accessLog?.close();
    this.#state = 'stopped';
  }

  /** Opens the access log file again (SIGUSR1: logrotate moved it away). */
  reopenLogs(): void {
    const file = this.#accessLog === undefined ? undefined : this.#options.settings.accessLogFile;
    this.#logger.info(
      { signal: 'SIGUSR1', file: file ?? null },
      file === undefined ? 'SIGUSR1: no access log file to reopen' : 'SIGUSR1: reopening the access log file',
    );
    this.#accessLog?.reopen();
  }

  async #stopAll(deadlineMs: number): Promise<void> {
    await Promise.all([
      ...this.#https.map((s) => s.drain(deadlineMs)),
      ...this.#forwards.flatMap((f) => f.groups.map((g) => g.close(deadlineMs))),
    ]);
  }

  async notReady(): Promise<string[]> {
    if (this.#state !== 'listening') return [`sidecar is ${this.#state}`];
    const reasons = await Promise.all(this.#https.map((s) => s.notReady()));
    return reasons.flat();
  }

  status(): StatusReport {
    const services: StatusService[] = [];
    for (const s of this.#https) {
      const value = s.pair?.current();
      const last = s.pair?.lastReload;
      services.push({
        name: s.name,
        protocol: 'https',
        int_port: s.service.intPort,
        port: s.service.port ?? null,
        backend: formatAddress(s.backend),
        pair: value
          ? {
              certFile: value.files.certFile,
              keyFile: value.files.keyFile,
              reason: value.reason,
              inspection: {
                subject: value.inspection.subject,
                sans: [...value.inspection.sans.dns, ...value.inspection.sans.ip],
                issuer: value.inspection.issuer,
                notBefore: value.inspection.notBefore.toISOString(),
                notAfter: value.inspection.notAfter.toISOString(),
                fingerprint256: value.inspection.fingerprint256,
                keyType: value.inspection.privateKey?.description ?? value.inspection.publicKey.description,
                selfSigned: value.inspection.selfSigned,
              },
            }
          : null,
        lastReload: last
          ? { at: last.at.toISOString(), ok: last.ok, error: last.error?.message ?? null }
          : null,
        counters: countersOf(s.stats),
        ocsp: s.stapling,
      });
    }
    for (const f of this.#forwards) {
      const service = this.#options.settings.services.find((s) => s.name === f.name);
      services.push({
        name: f.name,
        protocol: service?.transport ?? 'tcp',
        int_port: service?.intPort ?? 0,
        port: service?.port ?? null,
        backend: f.target,
        pair: null,
        lastReload: null,
        counters: countersOf(f.stats),
      });
    }
    return {
      program: 'harbor-sidecar',
      version: this.#options.version,
      pid: process.pid,
      startedAt: this.#startedAt.toISOString(),
      state: this.#state,
      services,
    };
  }

  /** HTTPS services that have no pair yet and so do not listen. */
  waitingForPairs(): string[] {
    return this.#https.filter((s) => s.proxy === undefined).map((s) => s.name);
  }

  /** One line per service for the start-up log. */
  describe(): string[] {
    return this.#options.settings.services.map(
      (s) => `${s.name} ${protocolLabel(s)} int_port ${s.intPort}${s.port ? ` port ${s.port}` : ''}`,
    );
  }
}

/**
 * The access log's file must open for appending when the sidecar starts: a folder that does not
 * exist, a directory or a file it may not write is a configuration error (E_SETTING), as nginx
 * refuses to start on one. Later failures (a full disk, a folder removed under it) lose lines
 * and serve on.
 */
function checkAccessLogFile(path: string): void {
  try {
    closeSync(openSync(path, 'a', 0o640));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const why =
      code === 'ENOENT'
        ? 'its folder does not exist'
        : code === 'EISDIR'
          ? 'it is a folder'
          : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? 'it may not be written'
            : 'it cannot be opened';
    throw new HarborError(
      'E_SETTING',
      `--access-log-file / HARBOR_ACCESS_LOG_FILE ${path}: ${why} (${code}); the access log is appended there`,
    );
  }
}
