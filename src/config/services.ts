// Harbor services from the platform's service variables: STACKATO_SERVICES,
// HELION_SERVICES (same shape, later platform versions) and VCAP_SERVICES
// (entries under a label beginning `harbor`). Merged by service name; where
// sources disagree STACKATO_SERVICES wins and the difference is reported.
import { HarborError, type Problem } from '../errors/index.js';
import { isPlainObject, parseJsonVariable } from './json.js';
import { ruleForName } from './protocol.js';
import type { HarborService } from './types.js';
import { variableForService } from './variables.js';

/** Sources in order of precedence: the first one that has a service decides its fields. */
export const SERVICE_VARIABLES = ['STACKATO_SERVICES', 'HELION_SERVICES', 'VCAP_SERVICES'] as const;
type SourceVariable = (typeof SERVICE_VARIABLES)[number];

const STRING_FIELDS = ['name', 'node_id', 'hostname', 'host', 'ext_hostname', 'ext_host'] as const;
type Credentials = Record<string, unknown>;

interface RawService {
  readonly name: string;
  readonly source: SourceVariable;
  readonly credentials: Credentials;
}

function harborEntries(variable: SourceVariable, parsed: unknown): RawService[] {
  if (!isPlainObject(parsed)) {
    throw new HarborError('E_ENV_SHAPE', `${variable} must be a JSON object, not ${describe(parsed)}`);
  }
  const entries: RawService[] = [];
  if (variable !== 'VCAP_SERVICES') {
    for (const [name, value] of Object.entries(parsed)) {
      // A Harbor entry is known by its int_port; databases and the like are not ours.
      if (isPlainObject(value) && 'int_port' in value)
        entries.push({ name, source: variable, credentials: value });
    }
    return entries;
  }
  for (const [label, list] of Object.entries(parsed)) {
    if (!label.toLowerCase().startsWith('harbor')) continue;
    if (!Array.isArray(list)) {
      throw new HarborError(
        'E_ENV_SHAPE',
        `VCAP_SERVICES["${label}"] must be a list of services, not ${describe(list)}`,
      );
    }
    list.forEach((entry, index) => {
      const where = `VCAP_SERVICES["${label}"][${index}]`;
      if (!isPlainObject(entry) || typeof entry.name !== 'string' || entry.name === '') {
        throw new HarborError('E_ENV_SHAPE', `${where} must be an object with a non-empty "name"`);
      }
      if (!isPlainObject(entry.credentials)) {
        throw new HarborError('E_ENV_SHAPE', `${where} ("${entry.name}") has no "credentials" object`);
      }
      entries.push({ name: entry.name, source: variable, credentials: entry.credentials });
    });
  }
  return entries;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}

/** A port field: a JSON number or a numeric string holding an integer 1-65535. */
export function parsePort(value: unknown): number | undefined {
  const text =
    typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined || !/^[0-9]+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function toService(raw: RawService, problems: Problem[]): HarborService | undefined {
  const { name, credentials, source } = raw;
  const fieldError = (field: string, what: string) =>
    problems.push({ code: 'E_SERVICE_FIELD', message: `service "${name}" (${source}): ${field} ${what}` });
  const intPort = parsePort(credentials.int_port);
  if (intPort === undefined) {
    fieldError(
      'int_port',
      `must be an integer 1-65535, not ${JSON.stringify(credentials.int_port) ?? 'missing'}`,
    );
  }
  let port: number | undefined;
  const rawPort = credentials.port;
  if (rawPort !== undefined && rawPort !== null && rawPort !== '') {
    port = parsePort(rawPort);
    if (port === undefined) fieldError('port', `must be an integer 1-65535, not ${JSON.stringify(rawPort)}`);
  }
  const strings: Record<string, string> = {};
  for (const field of STRING_FIELDS) {
    const value = credentials[field];
    if (value === undefined || value === null) strings[field] = '';
    else if (typeof value === 'string') strings[field] = value;
    else fieldError(field, `must be a string, not ${JSON.stringify(value)}`);
  }
  if (intPort === undefined) return undefined;
  const rule = ruleForName(name);
  if (rule.dropped) {
    problems.push({
      code: 'W_PROTOCOL',
      message: `service "${name}": a udp service cannot carry HTTPS; the "https" ending is ignored`,
    });
  }
  return {
    name,
    instanceId: strings.name ?? '',
    nodeId: strings.node_id ?? '',
    hostname: strings.hostname ?? '',
    host: strings.host ?? '',
    port,
    intPort,
    extHostname: strings.ext_hostname ?? '',
    extHost: strings.ext_host ?? '',
    transport: rule.transport,
    https: rule.https,
    variable: variableForService(name),
  };
}

const COMPARED_FIELDS = [
  'port',
  'int_port',
  'name',
  'node_id',
  'hostname',
  'host',
  'ext_hostname',
  'ext_host',
];

function differences(a: Credentials, b: Credentials): string[] {
  return COMPARED_FIELDS.filter((field) => {
    const left = a[field] ?? '';
    const right = b[field] ?? '';
    return String(left) !== String(right);
  });
}

export interface ServicesResult {
  readonly services: readonly HarborService[];
  /** Errors and warnings, every one found. */
  readonly problems: readonly Problem[];
}

/**
 * Reads every Harbor service from the environment given. Throws nothing:
 * unparseable JSON, bad shapes and bad fields all come back as problems.
 */
export function readServices(env: Readonly<Record<string, string | undefined>>): ServicesResult {
  const problems: Problem[] = [];
  const chosen = new Map<string, RawService>();
  for (const variable of SERVICE_VARIABLES) {
    const text = env[variable];
    if (text === undefined || text.trim() === '') continue;
    let entries: RawService[];
    try {
      entries = harborEntries(variable, parseJsonVariable(variable, text));
    } catch (error) {
      if (!(error instanceof HarborError)) throw error;
      problems.push({ code: error.code, message: error.message });
      continue;
    }
    for (const entry of entries) {
      const earlier = chosen.get(entry.name);
      if (!earlier) {
        chosen.set(entry.name, entry);
        continue;
      }
      const fields = differences(earlier.credentials, entry.credentials);
      if (fields.length > 0) {
        problems.push({
          code: 'W_SOURCES_DISAGREE',
          message: `service "${entry.name}": ${earlier.source} and ${entry.source} disagree on ${fields.join(', ')}; using ${earlier.source}`,
        });
      }
    }
  }
  const services: HarborService[] = [];
  for (const raw of chosen.values()) {
    const service = toService(raw, problems);
    if (service) services.push(service);
  }
  const byVariable = new Map<string, string>();
  for (const service of services) {
    const other = byVariable.get(service.variable);
    if (other !== undefined) {
      problems.push({
        code: 'E_VARIABLE_CLASH',
        message: `services "${other}" and "${service.name}" both map to ${service.variable}; rename one`,
      });
    }
    byVariable.set(service.variable, service.name);
  }
  return { services, problems };
}
