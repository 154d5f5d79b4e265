// The node API's own certificate (--api-cert / --api-key): read and checked
// whole at start (a pair that cannot serve stops the node, exit 78), read
// again on SIGHUP and when its files change. A new pair is swapped in through
// tls.Server.setSecureContext only once it has loaded whole (key matching the
// certificate, chain in order), so a handshake never meets a broken pair; one
// that does not load leaves the old pair serving and is logged once (E_RELOAD).
import type { Server as TlsServer } from 'node:tls';
import {
  CertWatcher,
  type LoadedPair,
  loadPair,
  type PairFiles,
  strengthWarnings,
  validityProblems,
} from '../certs/index.js';
import { isHarborError } from '../errors/index.js';
import { SECURE_CONTEXT_OPTIONS } from '../https/tls.js';
import type { Logger } from '../log/index.js';

export interface ApiCertificateOptions {
  readonly files: PairFiles;
  /** For an encrypted key (HARBOR_KEY_PASSPHRASE). Never logged. */
  readonly passphrase?: string | undefined;
  readonly logger: Logger;
  /** How long a reload after a file change keeps retrying a pair caught half written (default 1 s). */
  readonly settleMs?: number | undefined;
  /** The watcher's stat poll (default 3 s; 0: off). */
  readonly pollMs?: number | undefined;
}

/** The serving certificate, as the ready line and /status show it. */
export interface CertificateShown {
  readonly subject: string;
  readonly serial: string;
  readonly not_after: string;
}

/** A reload: when, what asked for it, and why it was refused. */
export interface ApiReload {
  readonly at: string;
  readonly trigger: string;
  readonly ok: boolean;
  readonly error?: string;
}

/** Pause between the retries of a pair caught half written. */
const RETRY_MS = 100;

export class ApiCertificate {
  readonly #options: ApiCertificateOptions;
  readonly #logger: Logger;
  #pair: LoadedPair;
  #server: TlsServer | undefined;
  #watcher: CertWatcher | undefined;
  /** The refusal last logged, so a pair that stays broken is logged once. */
  #lastRefusal: string | undefined;
  #reloading: Promise<boolean> = Promise.resolve(true);
  #lastReload: ApiReload | undefined;

  private constructor(options: ApiCertificateOptions, pair: LoadedPair) {
    this.#options = options;
    this.#logger = options.logger.child({ api_cert: options.files.certFile });
    this.#pair = pair;
  }

  /** The pair, read and checked; throws a HarborError (E_CERT_READ, E_KEY_MISMATCH...) naming the file. */
  static load(options: ApiCertificateOptions): ApiCertificate {
    const certificate = new ApiCertificate(options, loadPair(options.files, options));
    certificate.#warnValidity();
    return certificate;
  }

  /** What tls.createServer needs: the chain and the key (a secret: never logged). */
  get pem(): { readonly cert: string; readonly key: string } {
    return { cert: this.#pair.pem.cert, key: this.#pair.pem.key };
  }

  /** The serving certificate's leaf, for the ready line and /status. */
  describe(): CertificateShown {
    const leaf = this.#pair.chain[0]!;
    return {
      subject: leaf.subject,
      serial: leaf.serialNumber,
      not_after: this.#pair.inspection.notAfter.toISOString(),
    };
  }

  /** For /status: the certificate serving and the last reload (its error when refused). */
  status(): CertificateShown & { readonly last_reload: ApiReload | null } {
    return { ...this.describe(), last_reload: this.#lastReload ?? null };
  }

  /** Serves `server` from now on: later pairs are swapped into it, and the files are watched. */
  serve(server: TlsServer): void {
    this.#server = server;
    const { certFile, keyFile } = this.#options.files;
    this.#watcher = CertWatcher.start({
      files: () => [certFile, keyFile],
      onTrigger: (reason) => void this.reload(`file change (${reason})`, this.#options.settleMs ?? 1000),
      logger: this.#logger,
      pollMs: this.#options.pollMs,
    });
  }

  /** Resolves once the file watches are armed. */
  ready(): Promise<void> {
    return this.#watcher?.ready() ?? Promise.resolve();
  }

  /**
   * Reads the pair again and swaps it in when it loads; true when the pair now serving is the
   * files' (changed or not). `settleMs`: how long to retry a pair that does not load yet (a
   * certificate written before its key). Reloads run one at a time.
   */
  reload(trigger: string, settleMs = 0): Promise<boolean> {
    this.#reloading = this.#reloading.then(() => this.#reload(trigger, settleMs));
    return this.#reloading;
  }

  async #reload(trigger: string, settleMs: number): Promise<boolean> {
    const deadline = Date.now() + settleMs;
    for (;;) {
      let next: LoadedPair;
      try {
        next = loadPair(this.#options.files, this.#options);
      } catch (error) {
        if (Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
          continue;
        }
        const code = isHarborError(error) ? error.code : 'E_RELOAD';
        const message = error instanceof Error ? error.message : String(error);
        this.#lastReload = { at: new Date().toISOString(), trigger, ok: false, error: message };
        if (this.#lastRefusal !== message) {
          this.#lastRefusal = message;
          this.#logger.error(
            { code: 'E_RELOAD', cause: code, trigger },
            `API certificate not reloaded, the previous one keeps serving: ${message}`,
          );
        }
        return false;
      }
      this.#lastRefusal = undefined;
      this.#lastReload = { at: new Date().toISOString(), trigger, ok: true };
      if (next.pem.cert === this.#pair.pem.cert && next.pem.key === this.#pair.pem.key) return true;
      this.#server?.setSecureContext({ ...SECURE_CONTEXT_OPTIONS, cert: next.pem.cert, key: next.pem.key });
      this.#pair = next;
      this.#logger.info({ trigger, ...this.describe() }, 'API certificate reloaded');
      this.#warnValidity();
      return true;
    }
  }

  /** Stops watching the files. */
  async close(): Promise<void> {
    await this.#watcher?.close();
  }

  #warnValidity(): void {
    const pair = this.#pair;
    const problems = [
      ...validityProblems(pair.inspection, new Date(), 30),
      ...strengthWarnings(pair.inspection, pair.chain),
    ];
    for (const problem of problems) {
      const level = problem.code.startsWith('W_') ? 'warn' : 'error';
      this.#logger[level]({ code: problem.code }, `API certificate: ${problem.message}`);
    }
  }
}
