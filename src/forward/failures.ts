// Telling a failed target from a failing node. A connect or send that fails
// because this process or host ran out of something (file descriptors, socket
// buffers, memory, local ports) says nothing about the target: blaming it
// would mark a healthy instance down for everyone (issue 9, item 4). Such
// failures are counted and logged, at most once per interval, and the target
// keeps its health.
import type { Logger } from '../log/index.js';

const LOCAL_RESOURCE_CODES: ReadonlySet<string> = new Set([
  'EMFILE', // this process's descriptor limit
  'ENFILE', // the host's
  'ENOBUFS',
  'ENOMEM',
  'EADDRNOTAVAIL', // no local port left to connect from
]);

export function isLocalResourceError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && LOCAL_RESOURCE_CODES.has(code);
}

/**
 * A warning that may repeat per connection or per datagram, logged at most once
 * per `intervalMs` with the count of those held back since the last one.
 */
export class ThrottledWarning {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #lastAt = Number.NEGATIVE_INFINITY;
  #held = 0;

  constructor(logger: Logger, intervalMs = 10_000) {
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  warn(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.#lastAt < this.#intervalMs) {
      this.#held++;
      return;
    }
    this.#lastAt = now;
    const held = this.#held;
    this.#held = 0;
    this.#logger.warn(held > 0 ? { ...fields, heldBack: held } : fields, message);
  }
}

/** Logs, throttled, a failure for lack of a local resource. */
export function warnLocalFailure(
  warning: ThrottledWarning,
  service: string,
  error: NodeJS.ErrnoException,
  what: string,
): void {
  warning.warn(
    { service, code: error.code },
    `${what} failed for lack of a local resource (${error.code}); no instance is blamed`,
  );
}
