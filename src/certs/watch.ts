// What triggers a certificate reload: file events from chokidar on the
// folders that hold a pair's files, plus a slow stat poll as a safety net.
// Debounced: it calls onTrigger once writes have been quiet for a moment.
// It knows nothing about certificates; ReloadablePair.reload() does the work.
//
// The folders watched are re-planned after every event, because the files
// can move under us: a Kubernetes secret volume holds symlinks into `..data`,
// itself a symlink to `..2026_...` that is replaced by an atomic rename. The
// folder holding the symlinks sees that rename; the folder the files really
// live in is watched too (realpath), and changes after each swap. A folder
// that does not exist yet is waited for by watching its nearest existing
// ancestor.
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { Logger } from '../log/index.js';
import type { ReloadablePair } from './reloadable.js';

export interface CertWatcherOptions {
  /** The files that matter, asked again at every re-plan (a pair's candidate files). */
  readonly files: () => readonly string[];
  readonly onTrigger: (reason: string) => void;
  readonly logger: Logger;
  /** Quiet time after the last event before triggering (default 150 ms). */
  readonly debounceMs?: number | undefined;
  /** Trigger anyway once events have kept coming this long (default 1000 ms). */
  readonly maxWaitMs?: number | undefined;
  /** The stat poll's period (default 3000 ms; 0 turns it off). */
  readonly pollMs?: number | undefined;
  /** File events on (default). Off leaves only the poll: for tests of the safety net. */
  readonly fileEvents?: boolean | undefined;
}

interface Plan {
  /** What chokidar watches, sorted. */
  readonly targets: readonly string[];
  /**
   * The targets with the inode each is now: a re-arm is needed when it changes. A folder
   * deleted and made again under the same name is a new inode, which the old watch never
   * sees (issue 9, item 21: changes were then caught by the 3 s poll only).
   */
  readonly identity: string;
  /** Folders whose every entry matters. */
  readonly full: ReadonlySet<string>;
  /** Folders that do not exist yet (their ancestors are watched for them). */
  readonly missing: ReadonlySet<string>;
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function realpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** Which folder a path is now: a folder made again after a delete often gets the same inode number back, never the same birth time. */
function inodeOf(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.dev}:${stat.ino}:${stat.birthtimeMs}`;
  } catch {
    return '-';
  }
}

function nearestExisting(path: string): string {
  let dir = path;
  while (!isDir(dir)) {
    const up = dirname(dir);
    if (up === dir) return dir;
    dir = up;
  }
  return dir;
}

/** What the poll compares: inode, size and mtime of the link and of its target, and where it points. */
function fileState(file: string): string {
  try {
    const link = lstatSync(file);
    const target = statSync(file);
    return `${link.ino}:${link.mtimeMs}:${target.ino}:${target.size}:${target.mtimeMs}:${realpath(file) ?? ''}`;
  } catch (error) {
    return `-${(error as NodeJS.ErrnoException).code ?? ''}`;
  }
}

export class CertWatcher {
  #options: CertWatcherOptions;
  #watcher: FSWatcher | undefined;
  #plan: Plan = { targets: [], identity: '', full: new Set(), missing: new Set() };
  #debounce: NodeJS.Timeout | undefined;
  #firstPending = 0;
  #pendingReason = '';
  #poll: NodeJS.Timeout | undefined;
  #baseline = '';
  #closed = false;
  #ready: Promise<void> = Promise.resolve();
  /** Watchers being closed after a re-arm; close() waits for them too. */
  #closing = new Set<Promise<void>>();

  private constructor(options: CertWatcherOptions) {
    this.#options = options;
  }

  static start(options: CertWatcherOptions): CertWatcher {
    const watcher = new CertWatcher(options);
    watcher.#baseline = watcher.#signature();
    watcher.#rearm(true);
    const pollMs = options.pollMs ?? 3000;
    if (pollMs > 0) {
      watcher.#poll = setInterval(() => watcher.#check('poll'), pollMs);
      watcher.#poll.unref();
    }
    return watcher;
  }

  /** Resolves once the current file watches are armed (tests wait for it before changing files). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The folders watched now, for status and tests. */
  get watching(): readonly string[] {
    return this.#plan.targets;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await Promise.all([watcher?.close(), ...this.#closing]);
  }

  #signature(): string {
    const files = this.#options.files();
    return files.map((f) => `${f}=${fileState(f)}`).join('\n');
  }

  #makePlan(): Plan {
    const full = new Set<string>();
    const missing = new Set<string>();
    const targets = new Set<string>();
    for (const file of this.#options.files()) {
      const dir = dirname(file);
      if (!isDir(dir)) {
        missing.add(dir);
        targets.add(nearestExisting(dir));
        continue;
      }
      full.add(dir);
      const realDir = realpath(dir);
      if (realDir !== undefined) full.add(realDir);
      // Follow a symlinked file to the folder it lives in (Kubernetes: ..data -> ..2026_...).
      const real = realpath(file);
      if (real !== undefined) full.add(dirname(real));
    }
    for (const dir of full) targets.add(dir);
    const sorted = [...targets].sort();
    return {
      targets: sorted,
      identity: sorted.map((dir) => `${dir}@${inodeOf(dir)}`).join('\n'),
      full,
      missing,
    };
  }

  #relevant(path: string): boolean {
    if (this.#plan.full.has(dirname(path)) || this.#plan.full.has(path)) return true;
    for (const dir of this.#plan.missing) {
      if (dir === path || dir.startsWith(path + sep)) return true;
    }
    return false;
  }

  /** Re-plans; replaces the chokidar watcher when the folders to watch changed. */
  #rearm(initial = false): void {
    if (this.#closed) return;
    const plan = this.#makePlan();
    if (!initial && plan.identity === this.#plan.identity) {
      this.#plan = plan;
      return;
    }
    this.#plan = plan;
    if (this.#options.fileEvents === false) return;
    // The old watcher is closed first: chokidar shares one fs.watch per path between its
    // watchers, so a new watcher made while the old one is open would join the old handle,
    // which is dead when the folder was deleted and made again (issue 9, item 21).
    const previous = this.#watcher;
    if (previous) {
      const closing = previous.close().finally(() => this.#closing.delete(closing));
      this.#closing.add(closing);
    }
    // A fresh watcher rather than add/unwatch: chokidar's bookkeeping for folders deleted and recreated under it
    // is the part most likely to go stale, and a re-plan is rare.
    const watcher = watch([...plan.targets], {
      ignoreInitial: true,
      depth: 0,
      followSymlinks: false,
      ignorePermissionErrors: true,
      persistent: true,
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => this.#event(event, path));
    watcher.on('error', (error) =>
      this.#options.logger.debug({ err: error }, 'certificate watcher error; the poll still runs'),
    );
    this.#ready = new Promise<void>((resolve) => watcher.once('ready', resolve)).then(() => {
      // Anything that changed while the new watch was being armed is caught here.
      if (!initial) this.#check('re-armed');
    });
    this.#options.logger.debug({ watching: plan.targets }, 'watching certificate folders');
  }

  #event(event: string, path: string): void {
    if (this.#closed || !this.#relevant(path)) return;
    this.#schedule(`${event} ${path}`);
  }

  /** Compares the files' state with the last trigger's; schedules a trigger when it moved. */
  #check(reason: string): void {
    if (this.#closed) return;
    this.#rearm();
    if (this.#signature() !== this.#baseline) this.#schedule(reason);
  }

  #schedule(reason: string): void {
    const now = performance.now();
    if (this.#debounce === undefined) {
      this.#firstPending = now;
      this.#pendingReason = reason;
    }
    clearTimeout(this.#debounce);
    const debounceMs = this.#options.debounceMs ?? 150;
    const maxWaitMs = this.#options.maxWaitMs ?? 1000;
    const wait = Math.max(0, Math.min(debounceMs, this.#firstPending + maxWaitMs - now));
    this.#debounce = setTimeout(() => this.#fire(), wait);
  }

  #fire(): void {
    this.#debounce = undefined;
    if (this.#closed) return;
    this.#rearm();
    this.#baseline = this.#signature();
    this.#options.onTrigger(this.#pendingReason);
  }
}

export interface WatchPairOptions {
  readonly logger: Logger;
  readonly debounceMs?: number | undefined;
  readonly pollMs?: number | undefined;
  readonly fileEvents?: boolean | undefined;
}

/** Watches a pair's files and reloads it when they change. */
export function watchPair(pair: ReloadablePair, options: WatchPairOptions): CertWatcher {
  return CertWatcher.start({
    ...options,
    files: () => pair.watchedFiles(),
    onTrigger: (reason) => void pair.reload(`file change (${reason})`),
  });
}
