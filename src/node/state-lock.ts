// One node per state file. Two nodes on one file each write their own view over
// the other's, so each loses what the other acknowledged; and a node starting
// removes the temporary files it finds, which may be another node's write in
// progress. A node therefore holds a lock beside its file (`<file>.lock`, a
// folder: proper-lockfile's mkdir lock, atomic on local and network
// filesystems, across containers too) for as long as it runs, and refreshes its
// time every few seconds. A lock not refreshed for `staleMs` belongs to a node
// that stopped without letting go (killed, or its machine gone) and is taken over.
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { HarborError } from '../errors/index.js';

/** A lock not refreshed for this long is a stopped node's (proper-lockfile refreshes it every half of it). */
export const LOCK_STALE_MS = 10_000;
/** How often a held lock is tried again while waiting. */
const RETRY_MS = 250;

export interface StateLockEvents {
  /** Another process holds the lock: waiting up to `waitMs` in case it has stopped. */
  readonly onWait?: (lockPath: string, waitMs: number) => void;
  /** The lock was lost while held: its folder removed, or taken over while this process stalled past the stale time. */
  readonly onLost?: (error: Error) => void;
}

/** Lets go of a held lock; never throws (a lock already lost has nothing to let go). */
export type ReleaseLock = () => Promise<void>;

/** Where the lock of the state file `path` lives. */
export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/**
 * Takes the lock of the state file `path`, waiting while another process holds it for as long as
 * a stopped holder's lock takes to go stale. Throws E_STATE_IN_USE when the holder is still
 * there, E_STATE_FOLDER when the lock cannot be made at all.
 */
export async function lockStateFile(
  path: string,
  events: StateLockEvents = {},
  staleMs: number = LOCK_STALE_MS,
): Promise<ReleaseLock> {
  const lockPath = lockPathOf(path);
  const waitMs = staleMs + 1000;
  const deadline = Date.now() + waitMs;
  let waiting = false;
  for (;;) {
    try {
      const release = await lockfile.lock(path, {
        realpath: false,
        lockfilePath: lockPath,
        stale: staleMs,
        onCompromised: (error: Error) => events.onLost?.(error),
      });
      return () => release().catch(() => undefined);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      if (code !== 'ELOCKED') {
        throw new HarborError(
          'E_STATE_FOLDER',
          `state file ${path}: its lock ${lockPath} cannot be made (${code}); choose another --state or fix the folder`,
          { cause: error },
        );
      }
      if (Date.now() >= deadline) {
        throw new HarborError(
          'E_STATE_IN_USE',
          `state file ${path} is in use by another harbor-node: its lock ${lockPath} was refreshed within the last ${staleMs / 1000} s; run one node per state file, or share one store between nodes with --store redis://...`,
        );
      }
      if (!waiting) {
        waiting = true;
        events.onWait?.(lockPath, waitMs);
      }
      await sleep(RETRY_MS);
    }
  }
}
