// A certificate pair that reloads itself safely (docs/reload.md). create()
// loads once and throws; current() is what handshakes use; reload() builds
// the complete new value off to the side (selection, files, parsing, key and
// chain checks, validity, the TLS context) and only then swaps one
// reference. A refused reload keeps the old value, logs one E_RELOAD error,
// counts, and shows on lastReload. What triggers a reload lives in watch.ts.
import { existsSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { type ErrorCode, isHarborError, type Problem } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { ServiceStats } from '../stats/index.js';
import { displayPath, type PairFiles } from './pair.js';
import { buildCandidate, type Candidate, describePair, type PairValue, signatureOf } from './pair-value.js';
import { candidateFiles, type Selection, type SelectOptions, selectPair } from './select.js';
import { type LoadedPair, loadPair } from './validate.js';

export type { PairValue } from './pair-value.js';

export type PairState = 'waiting' | 'serving' | 'closed';

export interface ReloadStatus {
  readonly at: Date;
  readonly ok: boolean;
  /** A new pair was swapped in (false for a reload that found nothing new). */
  readonly changed: boolean;
  readonly error?: { readonly code: ErrorCode; readonly message: string } | undefined;
}

export interface ReloadOutcome extends ReloadStatus {
  readonly value: PairValue | undefined;
}

export type ChangeListener = (next: PairValue, previous: PairValue | undefined) => void;

export interface ReloadablePairOptions {
  /** Where and how to find the service's files; selection is re-run on every reload. */
  readonly source: SelectOptions;
  readonly passphrase?: string | undefined;
  /** Merged into every context (ciphers, minVersion, ticketKeys...); cert, key and ca come from the files. */
  readonly contextOptions?: SecureContextOptions | undefined;
  readonly logger: Logger;
  readonly now?: (() => Date) | undefined;
  readonly stats?: ServiceStats | undefined;
  /** How long a reload keeps retrying a pair that is broken, half written or mismatched (default 1000 ms). */
  readonly settleMs?: number | undefined;
  /** Pause between those retries (default 50 ms). */
  readonly retryMs?: number | undefined;
  /** Warn when a loaded certificate expires within this many days (default 30). */
  readonly warnDays?: number | undefined;
  /** Start in state 'waiting' instead of throwing when no pair exists yet (the folder may appear later). */
  readonly waitForPair?: boolean | undefined;
  readonly onChange?: ChangeListener | undefined;
}

type Attempt =
  | { readonly ok: true; readonly candidate: Candidate; readonly settled: boolean }
  | { readonly ok: false; readonly problem: Problem; readonly signature: string };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function warningsKey(selection: Selection): string {
  return selection.warnings.map((w) => w.message).join('\n');
}

export class ReloadablePair {
  readonly service: string;
  #options: ReloadablePairOptions;
  #now: () => Date;
  #logger: Logger;
  #value: PairValue | undefined;
  #state: PairState;
  #lastReload: ReloadStatus | undefined;
  #listeners = new Set<ChangeListener>();
  #running: Promise<ReloadOutcome> | undefined;
  #queued: Promise<ReloadOutcome> | undefined;
  /** Files and bytes of the current value, to tell a real change from a re-read of the same pair. */
  #identity: string | undefined;
  /** The last refused state (problem + file bytes), so a repeat is not logged or counted twice. */
  #lastFailure: string | undefined;
  /** The selection warnings last logged (a per-service half pair beside the fallback in use): each is said once. */
  #warned = '';

  private constructor(options: ReloadablePairOptions) {
    this.#options = options;
    this.service = options.source.service;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger.child({ service: this.service });
    this.#state = 'waiting';
    if (options.onChange) this.#listeners.add(options.onChange);
  }

  /**
   * Loads the pair once. Throws a HarborError when it is missing (unless waitForPair), unreadable, does not parse,
   * the key does not match or the chain is out of order. A pair outside its validity period is served anyway,
   * with an error logged: `check` is what stops it at staging.
   */
  static create(options: ReloadablePairOptions): ReloadablePair {
    const pair = new ReloadablePair(options);
    pair.#start();
    return pair;
  }

  get state(): PairState {
    return this.#state;
  }

  /** The pair in use; undefined while waiting for one to appear. */
  current(): PairValue | undefined {
    return this.#value;
  }

  get lastReload(): ReloadStatus | undefined {
    return this.#lastReload;
  }

  /** Every file whose change can alter this pair: the watcher watches these. */
  watchedFiles(): string[] {
    return candidateFiles(this.#options.source);
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Re-selects, re-reads and re-checks the pair and swaps it in if it is good. Serialised: while one reload runs,
   * at most one more is queued and every further call shares that queued one. Never rejects.
   */
  reload(trigger = 'request'): Promise<ReloadOutcome> {
    if (this.#state === 'closed') {
      return Promise.resolve({
        at: this.#now(),
        ok: false,
        changed: false,
        value: this.#value,
        error: { code: 'E_RELOAD', message: `service ${this.service}: closed` },
      });
    }
    if (this.#queued) return this.#queued;
    if (this.#running) {
      this.#queued = this.#running.then(() => {
        this.#queued = undefined;
        return this.#begin(trigger);
      });
      return this.#queued;
    }
    return this.#begin(trigger);
  }

  /** Stops reloading; a reload in progress gives up at its next retry. The current value stays readable. */
  close(): void {
    this.#state = 'closed';
    this.#listeners.clear();
  }

  #begin(trigger: string): Promise<ReloadOutcome> {
    const run = this.#run(trigger).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  #start(): void {
    const { source } = this.#options;
    let selection: Selection;
    try {
      selection = selectPair(source);
    } catch (error) {
      if (this.#options.waitForPair && isHarborError(error, 'E_NO_PAIR')) {
        this.#logger.info({ code: 'E_NO_PAIR' }, `${error.message}; waiting for a pair to appear`);
        return;
      }
      throw error;
    }
    for (const warning of selection.warnings) this.#logger.warn({ code: warning.code }, warning.message);
    this.#warned = warningsKey(selection);
    const candidate = this.#build(selection, loadPair(this.#files(selection), this.#readOptions()));
    for (const problem of candidate.validityErrors) {
      this.#logger.error({ code: problem.code }, `${problem.message}; serving it anyway`);
    }
    for (const warning of candidate.warnings) this.#logger.warn({ code: warning.code }, warning.message);
    this.#value = candidate.value;
    this.#identity = candidate.identity;
    this.#state = 'serving';
    this.#logger.info(
      { pair: describePair(candidate.value) },
      `service ${this.service}: serving ${this.#summary(candidate.value)}`,
    );
  }

  #files(selection: Selection): PairFiles {
    return { certFile: selection.certFile, keyFile: selection.keyFile, caFile: selection.caFile };
  }

  #readOptions() {
    return {
      passphrase: this.#options.passphrase,
      displayRoot: this.#options.source.displayRoot ?? this.#options.source.appRoot,
    };
  }

  #shown(file: string): string {
    return displayPath(file, this.#options.source.displayRoot ?? this.#options.source.appRoot);
  }

  #summary(value: PairValue): string {
    const i = value.inspection;
    return `${this.#shown(value.files.certFile)} (${value.reason}; ${i.subject}; ${i.fingerprint256}; expires ${i.notAfter.toISOString()})`;
  }

  #build(selection: Selection, loaded: LoadedPair): Candidate {
    return buildCandidate(selection, loaded, {
      contextOptions: this.#options.contextOptions,
      now: this.#now(),
      warnDays: this.#options.warnDays ?? 30,
      displayRoot: this.#readOptions().displayRoot,
    });
  }

  /** The W_HALF_PAIR problem when exactly one of a pair's two files is gone. */
  #halfOf(files: PairFiles): Problem | undefined {
    const crt = existsSync(files.certFile);
    const key = existsSync(files.keyFile);
    if (crt === key) return undefined;
    const [present, missing] = crt ? [files.certFile, files.keyFile] : [files.keyFile, files.certFile];
    return {
      code: 'W_HALF_PAIR',
      message: `${this.#shown(missing)} is missing (${this.#shown(present)} is there)`,
    };
  }

  /** One try at a new value. Not settled: good, but worth a second look (a per-service pair just vanished). */
  #attempt(): Attempt {
    const { source } = this.#options;
    const current = this.#value;
    let selection: Selection;
    try {
      selection = selectPair(source);
    } catch (error) {
      const half = current?.reason === 'per-service pair' ? this.#halfOf(current.files) : undefined;
      const problem =
        half ??
        (isHarborError(error)
          ? { code: error.code, message: error.message }
          : { code: 'E_NO_PAIR' as const, message: String(error) });
      return { ok: false, problem, signature: `no-pair:${problem.message}` };
    }
    const files = this.#files(selection);
    const signature = signatureOf([files.certFile, files.keyFile, ...(files.caFile ? [files.caFile] : [])]);
    // A half per-service pair while that pair is in use is a write in progress, not a reason to fall back.
    if (
      selection.halfPair &&
      current?.reason === 'per-service pair' &&
      current.files.certFile.startsWith(selection.dir)
    ) {
      const { present, missing } = selection.halfPair;
      return {
        ok: false,
        problem: {
          code: 'W_HALF_PAIR',
          message: `${this.#shown(missing)} is missing (${this.#shown(present)} is there)`,
        },
        signature: `${signature}:${signatureOf([present, missing])}`,
      };
    }
    let candidate: Candidate;
    try {
      candidate = this.#build(selection, loadPair(files, this.#readOptions()));
    } catch (error) {
      const problem = isHarborError(error)
        ? { code: error.code, message: error.message }
        : { code: 'E_RELOAD' as const, message: String(error) };
      return { ok: false, problem, signature };
    }
    if (!candidate.value.valid && (current === undefined || current.valid)) {
      return { ok: false, problem: candidate.validityErrors[0]!, signature };
    }
    // A per-service file without its partner may be the first of two writes: give the second one the window too.
    const settled =
      !(current?.reason === 'per-service pair' && candidate.value.reason !== 'per-service pair') &&
      selection.halfPair === undefined;
    return { ok: true, candidate, settled };
  }

  async #run(trigger: string): Promise<ReloadOutcome> {
    const settleMs = this.#options.settleMs ?? 1000;
    const retryMs = this.#options.retryMs ?? 50;
    const started = performance.now();
    let attempt = this.#attempt();
    // Files are often written one after the other (key, then certificate): give the writer a moment.
    while (!(attempt.ok && attempt.settled) && performance.now() - started < settleMs) {
      if (
        attempt.ok &&
        attempt.candidate.identity === this.#identity &&
        attempt.candidate.value.selection.halfPair === undefined
      )
        break;
      await sleep(retryMs);
      if (this.#state === 'closed') break;
      attempt = this.#attempt();
    }
    if (this.#state === 'closed') {
      return {
        at: this.#now(),
        ok: false,
        changed: false,
        value: this.#value,
        error: { code: 'E_RELOAD', message: 'closed' },
      };
    }
    return attempt.ok
      ? this.#accept(attempt.candidate, trigger)
      : this.#refuse(attempt.problem, attempt.signature, trigger);
  }

  #accept(candidate: Candidate, trigger: string): ReloadOutcome {
    const recovered = this.#lastFailure !== undefined;
    this.#lastFailure = undefined;
    const previous = this.#value;
    if (previous !== undefined && candidate.identity === this.#identity) {
      if (recovered) {
        // The files are usable again (the broken change was undone): the last word must not stay the error.
        this.#logger.info(
          { trigger, current: describePair(previous) },
          `service ${this.service}: certificate files usable again; still serving ${previous.inspection.fingerprint256} (${this.#shown(previous.files.certFile)})`,
        );
      } else this.#logger.debug({ trigger }, `service ${this.service}: certificate unchanged`);
      // Nothing served changes, but a per-service file that appeared without its partner was meant to: say so once.
      if (warningsKey(candidate.value.selection) !== this.#warned) {
        this.#warned = warningsKey(candidate.value.selection);
        for (const w of candidate.value.selection.warnings) this.#logger.warn({ code: w.code }, w.message);
      }
      this.#lastReload = { at: this.#now(), ok: true, changed: false };
      return { ...this.#lastReload, value: previous };
    }
    const next = candidate.value;
    this.#value = next;
    this.#identity = candidate.identity;
    this.#warned = warningsKey(next.selection);
    const wasWaiting = this.#state === 'waiting';
    this.#state = 'serving';
    if (this.#options.stats) this.#options.stats.reloadsSucceeded++;
    this.#lastReload = { at: this.#now(), ok: true, changed: true };
    const fields = { trigger, old: describePair(previous), new: describePair(next) };
    if (wasWaiting) {
      this.#logger.info(
        fields,
        `service ${this.service}: certificate pair found, starts serving ${this.#summary(next)}`,
      );
    } else {
      this.#logger.info(
        fields,
        `service ${this.service}: certificate reloaded: ${previous!.inspection.fingerprint256} -> ${this.#summary(next)}`,
      );
    }
    for (const problem of candidate.validityErrors)
      this.#logger.error({ code: problem.code }, problem.message);
    for (const warning of candidate.warnings) this.#logger.warn({ code: warning.code }, warning.message);
    if (previous && next.inspection.notAfter.getTime() < previous.inspection.notAfter.getTime()) {
      this.#logger.warn(
        { code: 'W_CERT_EXPIRES_SOONER' },
        `service ${this.service}: the new certificate expires ${next.inspection.notAfter.toISOString()}, before the one it replaced (${previous.inspection.notAfter.toISOString()})`,
      );
    }
    for (const listener of this.#listeners) {
      try {
        listener(next, previous);
      } catch (error) {
        this.#logger.error({ err: error }, `service ${this.service}: a certificate change listener failed`);
      }
    }
    return { ...this.#lastReload, value: next };
  }

  #refuse(problem: Problem, signature: string, trigger: string): ReloadOutcome {
    const current = this.#value;
    const error = { code: 'E_RELOAD' as const, message: '' };
    if (current === undefined && problem.code === 'E_NO_PAIR') {
      // Still waiting: the expected state, said once at start.
      error.message = problem.message;
      this.#lastReload = { at: this.#now(), ok: false, changed: false, error };
      this.#logger.debug({ trigger }, `service ${this.service}: still no certificate pair`);
      return { ...this.#lastReload, value: undefined };
    }
    const keeping = current
      ? `keeping ${current.inspection.fingerprint256} (${this.#shown(current.files.certFile)})`
      : 'still waiting for a usable pair';
    error.message = `service ${this.service}: certificate reload refused, ${keeping}: ${problem.message}`;
    this.#lastReload = { at: this.#now(), ok: false, changed: false, error };
    const key = `${problem.code}\0${problem.message}\0${signature}`;
    if (key === this.#lastFailure) {
      this.#logger.debug({ trigger }, `service ${this.service}: reload still refused (already reported)`);
    } else {
      this.#lastFailure = key;
      if (this.#options.stats) this.#options.stats.reloadsFailed++;
      this.#logger.error(
        { code: 'E_RELOAD', reason: problem.code, trigger, current: describePair(current) },
        error.message,
      );
    }
    return { ...this.#lastReload, value: current };
  }
}
