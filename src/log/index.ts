// Logging: one pino logger per process, JSON lines on stdout, human-readable
// on a terminal or with --pretty. Also the one place that decides how loudly a
// routine socket end (a client that hung up) is reported.
import { createRequire } from 'node:module';
import { type LevelWithSilent, type Logger, pino } from 'pino';

const require = createRequire(import.meta.url);

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
    // In-process and synchronous (a terminal reads a few lines a second): one line per event.
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    const stream = pretty.build({
      sync: true,
      destination: options.destination ?? 1,
      ignore: 'pid,hostname',
      hideObject: true,
      messageFormat: (log: Record<string, unknown>, messageKey: string) => oneLine(log, messageKey),
    });
    return pino(base, stream);
  }
  const destination = options.destination ?? 1;
  return pino(
    base,
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}

/** Fields a pretty line never shows: pino's own, or shown elsewhere on the line. */
const PRETTY_SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/**
 * A pretty line: the message, then only the fields that add to it (`key=value`); a field
 * whose value the message already says is left out.
 */
export function oneLine(log: Record<string, unknown>, messageKey: string): string {
  const message = String(log[messageKey] ?? '');
  const extra: string[] = [];
  const add = (key: string, value: unknown, nested: boolean): void => {
    if (value === undefined || value === null) return;
    if (!nested && typeof value === 'object' && !Array.isArray(value)) {
      // One level down: each field of an object on its own, so that what the message says drops out.
      for (const [k, v] of Object.entries(value)) add(`${key}.${k}`, v, true);
      return;
    }
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    if (text !== '' && !message.includes(text)) extra.push(`${key}=${text}`);
  };
  for (const [key, value] of Object.entries(log)) {
    if (PRETTY_SKIP.has(key) || key === messageKey) continue;
    if (key === 'err' && typeof value === 'object' && value !== null) {
      add('err', (value as { message?: unknown }).message, true);
      continue;
    }
    add(key, value, false);
  }
  return extra.length === 0 ? message : `${message} (${extra.join(' ')})`;
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
