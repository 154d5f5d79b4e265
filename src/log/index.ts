// Logging: one pino logger per process, JSON lines on stdout, human-readable
// on a terminal or with --pretty. Also the one place that decides how loudly a
// routine socket end (a client that hung up) is reported.
import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  readonly pretty: boolean;
  /** Name shown in each line: harbor-sidecar or harbor-node. */
  readonly name: string;
  /** Where lines go; defaults to stdout (fd 1). */
  readonly destination?: number | NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    name: options.name,
    level: options.level,
    // Keys and passphrases never reach a log line, even by accident.
    redact: {
      paths: ['key', 'passphrase', 'token', '*.key', '*.passphrase', '*.token'],
      censor: '[redacted]',
    },
  };
  if (options.pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: {
          destination: typeof options.destination === 'number' ? options.destination : 1,
          ignore: 'pid,hostname',
        },
      },
    });
  }
  const destination = options.destination ?? 1;
  return pino(
    base,
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const ROUTINE_SOCKET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** True for the ways a peer routinely goes away; those are counted and logged at debug, not as errors. */
export function isRoutineSocketError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ROUTINE_SOCKET_CODES.has(code);
}
