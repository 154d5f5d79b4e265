// The other end of the admin endpoint: what `harbor-sidecar status` (and the
// image's HEALTHCHECK) runs. Reads /status and /readyz and turns them into a
// table or JSON and an exit status: 0 ready, 1 not ready or not reachable.
import { request } from 'node:http';
import type { Address } from '../config/types.js';
import { formatAddress } from '../config/types.js';
import { HarborError } from '../errors/index.js';
import { formatStatusTable } from './table.js';
import type { ReadinessReport, StatusReport } from './types.js';

export interface FetchOptions {
  /** Give up after this long. Default 3000 ms (a health check must answer well within its own timeout). */
  readonly timeoutMs?: number;
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

/**
 * A listener on 0.0.0.0 or :: is reached on loopback. Dialling 0.0.0.0 works
 * on Linux only by accident, so ask loopback explicitly.
 */
function dialHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

function get(address: Address, path: string, accept: string, timeoutMs: number): Promise<Answer> {
  const where = formatAddress(address);
  return new Promise((resolve, reject) => {
    const target =
      address.kind === 'unix'
        ? { socketPath: address.path }
        : { host: dialHost(address.host), port: address.port };
    const req = request(
      { ...target, path, method: 'GET', headers: { accept }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        new HarborError(
          'E_ADMIN_UNREACHABLE',
          `admin endpoint ${where} unreachable (${error.code ?? error.message}); is harbor-sidecar running with --admin ${where}?`,
          { cause: error },
        ),
      );
    });
    req.end();
  });
}

/** GET /status, checked to be a status document. Throws E_ADMIN_UNREACHABLE. */
export async function fetchStatus(address: Address, options: FetchOptions = {}): Promise<StatusReport> {
  const where = formatAddress(address);
  const answer = await get(address, '/status', 'application/json', options.timeoutMs ?? 3000);
  if (answer.status !== 200) {
    throw new HarborError(
      'E_ADMIN_UNREACHABLE',
      `admin endpoint ${where} answered /status with HTTP ${answer.status}: ${firstLine(answer.body)}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch (error) {
    throw new HarborError('E_ADMIN_UNREACHABLE', `admin endpoint ${where} sent /status that is not JSON`, {
      cause: error,
    });
  }
  if (!isStatusReport(parsed)) {
    throw new HarborError(
      'E_ADMIN_UNREACHABLE',
      `admin endpoint ${where} sent a /status document without a "services" list; is it a harbor-sidecar?`,
    );
  }
  return parsed;
}

export interface Readiness extends ReadinessReport {
  /** The HTTP status /readyz answered, or null when it could not be reached. */
  readonly httpStatus: number | null;
}

/** GET /readyz. Never throws: an endpoint that cannot be reached is not ready, with the reason. */
export async function fetchReadiness(address: Address, options: FetchOptions = {}): Promise<Readiness> {
  let answer: Answer;
  try {
    answer = await get(address, '/readyz', 'application/json', options.timeoutMs ?? 3000);
  } catch (error) {
    return { ready: false, reasons: [(error as Error).message], httpStatus: null };
  }
  let reasons: readonly string[] = [];
  try {
    const body = JSON.parse(answer.body) as Partial<ReadinessReport>;
    if (Array.isArray(body.reasons)) reasons = body.reasons.map(String);
  } catch {
    if (answer.status !== 200)
      reasons = [`/readyz answered HTTP ${answer.status}: ${firstLine(answer.body)}`];
  }
  if (answer.status !== 200 && reasons.length === 0) reasons = [`/readyz answered HTTP ${answer.status}`];
  return { ready: answer.status === 200, reasons, httpStatus: answer.status };
}

/** The exit status of `harbor-sidecar status`: 0 only when /readyz answered 200. */
export function readinessExitStatus(httpStatus: number | null | undefined): number {
  return httpStatus === 200 ? 0 : 1;
}

export interface StatusCommandOptions extends FetchOptions {
  readonly address: Address;
  /** Print the /status document (with `ready` and `reasons` added) instead of the table. */
  readonly json?: boolean;
  readonly now?: () => number;
  /**
   * The services this configuration serves: when the sidecar that answered serves none of
   * them, another sidecar holds the admin address, and that is said (exit 1), not hidden.
   */
  readonly expectedServices?: readonly string[];
}

export interface StatusCommandResult {
  /** What to print on stdout (ends with a newline). */
  readonly output: string;
  readonly exitStatus: number;
}

/** Everything `harbor-sidecar status [--json]` does except printing and exiting. */
export async function runStatusCommand(options: StatusCommandOptions): Promise<StatusCommandResult> {
  const [status, readiness] = await Promise.all([
    fetchStatus(options.address, options).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    fetchReadiness(options.address, options),
  ]);
  const exitStatus = readinessExitStatus(readiness.httpStatus);
  if (!status.ok) {
    const message = (status.error as Error).message;
    const output = options.json
      ? `${JSON.stringify({ ready: false, reasons: [message] })}\n`
      : `harbor-sidecar status: ${message}\n`;
    return { output, exitStatus: 1 };
  }
  const report = status.value;
  const where = formatAddress(options.address);
  const expected = options.expectedServices ?? [];
  const served = new Set(report.services.map((service) => service.name));
  const stranger =
    expected.length > 0 && !expected.some((name) => served.has(name))
      ? `the sidecar at ${where} (pid ${report.pid}) serves ${[...served].join(', ') || 'nothing'}, not this configuration's ${expected.join(', ')}: another sidecar holds this admin address (give this one its own --admin)`
      : undefined;
  const reasons = stranger === undefined ? readiness.reasons : [...readiness.reasons, stranger];
  const ready = readiness.ready && stranger === undefined;
  if (options.json) {
    const document = { ...report, address: where, ready, reasons };
    return { output: `${JSON.stringify(document, null, 2)}\n`, exitStatus: ready ? exitStatus : 1 };
  }
  const who = `${report.program ?? 'harbor-sidecar'} ${report.version}, pid ${report.pid}, started ${report.startedAt}, answered at ${where}\n`;
  const table = formatStatusTable(report, options.now?.() ?? Date.now());
  const verdict = ready ? 'ready\n' : `not ready\n${reasons.map((reason) => `  ${reason}\n`).join('')}`;
  return { output: `${who}${table}\n${verdict}`, exitStatus: ready ? exitStatus : 1 };
}

function isStatusReport(value: unknown): value is StatusReport {
  if (typeof value !== 'object' || value === null) return false;
  const services = (value as { services?: unknown }).services;
  return (
    Array.isArray(services) &&
    services.every(
      (s) => typeof s === 'object' && s !== null && typeof (s as { name?: unknown }).name === 'string',
    )
  );
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}
