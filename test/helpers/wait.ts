// Waiting in tests: for a condition, never for a fixed time. The deadline is
// generous because CI may run on a machine busy with other work (issue 8: a
// suite that passed on a quiet machine failed 13 tests beside another suite and
// a benchmark); it only costs time when the condition never comes, that is,
// when the test is failing anyway.

/** How long a test waits for something that should happen, before it fails. */
export const DEADLINE_MS = 30_000;

/** Polls `check` every 20 ms until it holds, or fails with `what` after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (await check()) return;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Like waitFor, but answers whether `check` came to hold instead of throwing. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = DEADLINE_MS,
): Promise<boolean> {
  try {
    await waitFor(check, 'a condition', timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** Holds the event loop for `ms`, as a busy machine or a long collection would: nothing runs meanwhile. */
export function stallEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Busy on purpose.
  }
}
