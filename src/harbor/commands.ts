// The `harbor` commands: the seed's create-service and service, services,
// delete-service, and the manifest's services: block applied or deleted. Each
// is a function of the client and its arguments; printing and exit statuses
// are the caller's (src/cli/harbor-program.ts).
import { readFile } from 'node:fs/promises';
import { formatVariables, type VariableFormat, variableForService } from '../config/variables.js';
import { HarborError } from '../errors/index.js';
import { type NodeClient, refusal } from './client.js';
import { appEnvironment, type BoundService } from './environment.js';
import type { Credentials } from './explain.js';
import { readManifest, splitHarbor } from './manifest.js';
import { createdText, type ServiceView, servicesTable, serviceText } from './views.js';

export interface CommandIO {
  readonly client: NodeClient;
  readonly args: readonly string[];
  readonly json: boolean;
  readonly app: string | undefined;
  readonly format: VariableFormat;
  readonly out: (text: string) => void;
  /** What a person reads while stdout is for `eval` (manifest apply). */
  readonly note: (text: string) => void;
}

const usage = (message: string): HarborError => new HarborError('E_USAGE', message);
const path = (name: string): string => `/v1/services/${encodeURIComponent(name)}`;

/** A refusal names the service it is about (the node's own words may not). */
async function about<T>(name: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (
      !(error instanceof HarborError) ||
      error.code === 'E_NODE_UNREACHABLE' ||
      error.message.includes(name)
    )
      throw error;
    throw new HarborError(error.code, `${name}: ${error.message}`, { cause: error });
  }
}

function oneName(args: readonly string[], command: string, form: string): string {
  if (args.length !== 1) throw usage(`${command} takes one service name (${form})`);
  return args[0]!;
}

/** `create-service harbor NAME` (the seed's form) or `create-service NAME`. */
export async function createService(io: CommandIO): Promise<number> {
  const args = io.args[0] === 'harbor' && io.args.length === 2 ? io.args.slice(1) : io.args;
  const name = oneName(args, 'create-service', 'harbor create-service harbor NAME');
  const { body: credentials, url } = await about(
    name,
    io.client.request<Credentials>('POST', '/v1/services', { name }),
  );
  if (io.json) io.out(`${JSON.stringify({ [name]: credentials }, null, 2)}\n`);
  else io.out(createdText({ service: name, credentials }, url));
  await noteVariableTwins(io, name);
  return 0;
}

/**
 * Says which services already give an app the new one's STACKATO_HARBOR_<NAME> (`my-port` and
 * `My_Port`): names are unique, but an app bound to both could not tell them apart. A note, not a
 * refusal: two apps may each use one. Nothing is said when the list cannot be read.
 */
async function noteVariableTwins(io: CommandIO, name: string): Promise<void> {
  const variable = variableForService(name);
  let listed: ServiceView[];
  try {
    listed = (await io.client.request<{ services: ServiceView[] }>('GET', '/v1/services')).body.services;
  } catch {
    return;
  }
  const twins = listed
    .map((s) => s.service)
    .filter((s) => s !== name && variableForService(s) === variable)
    .sort();
  if (twins.length === 0) return;
  io.note(
    `note: ${twins.join(', ')} ${twins.length === 1 ? 'gives' : 'give'} an app ${variable} too: an app bound to both could not tell them apart (harbor manifest apply refuses that)\n`,
  );
}

export async function service(io: CommandIO): Promise<number> {
  const name = oneName(io.args, 'service', 'harbor service NAME');
  const view = await about(name, io.client.find<ServiceView>(path(name)));
  if (!view)
    throw new HarborError('E_API_NOT_FOUND', `${name}: no such service (harbor services lists them)`);
  io.out(io.json ? `${JSON.stringify(view, null, 2)}\n` : serviceText(view));
  return 0;
}

export async function services(io: CommandIO): Promise<number> {
  if (io.args.length > 0) throw usage('services takes no arguments');
  const { body } = await io.client.request<{ services: ServiceView[] }>('GET', '/v1/services');
  const sorted = [...body.services].sort((a, b) => a.service.localeCompare(b.service));
  io.out(io.json ? `${JSON.stringify(sorted, null, 2)}\n` : servicesTable(sorted));
  return 0;
}

export async function deleteService(io: CommandIO): Promise<number> {
  const name = oneName(io.args, 'delete-service', 'harbor delete-service NAME');
  const answer = await io.client.send('DELETE', path(name));
  if (answer.status === 404) {
    throw new HarborError('E_API_NOT_FOUND', `${name}: no such service (harbor services lists them)`);
  }
  if (answer.status >= 400) await about(name, Promise.reject(refusal(answer)));
  io.out(io.json ? `${JSON.stringify({ deleted: name })}\n` : `deleted ${name}\n`);
  return 0;
}

export async function manifest(io: CommandIO): Promise<number> {
  const [verb, ...rest] = io.args;
  if (verb !== 'apply' && verb !== 'delete') {
    throw usage('manifest takes apply or delete (harbor manifest apply [PATH] [--app NAME])');
  }
  if (rest.length > 1) throw usage(`manifest ${verb} takes at most one path`);
  const file = rest[0] ?? 'manifest.yml';
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new HarborError('E_MANIFEST', `${file}: cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
  const app = readManifest(file, text, io.app);
  return verb === 'apply' ? apply(io, file, app) : remove(io, app);
}

type Outcome = 'created' | 'exists' | 'bound' | 'skipped';

/**
 * Creates the app's Harbor services that do not exist, reuses those that do, prints the app's
 * environment. Every service is looked up first: a manifest whose services the app could not
 * tell apart creates nothing.
 */
async function apply(io: CommandIO, file: string, app: ReturnType<typeof readManifest>): Promise<number> {
  const { harbor, skipped } = splitHarbor(app);
  const found = new Map<string, ServiceView | undefined>();
  for (const s of harbor) found.set(s.name, await about(s.name, io.client.find<ServiceView>(path(s.name))));
  refuseVariableClash(
    file,
    harbor.filter((s) => s.type !== undefined || found.get(s.name) !== undefined).map((s) => s.name),
  );
  const bound: BoundService[] = [];
  const report: { service: string; outcome: Outcome; reason?: string }[] = [];
  for (const s of skipped) {
    report.push({ service: s.name, outcome: 'skipped', reason: `type ${s.type}: not a Harbor service` });
  }
  for (const s of harbor) {
    const existing = found.get(s.name);
    if (existing) {
      bound.push({ name: s.name, credentials: existing.credentials });
      report.push({ service: s.name, outcome: s.type === undefined ? 'bound' : 'exists' });
    } else if (s.type === undefined) {
      // The list form binds service instances that exist; it creates nothing.
      report.push({
        service: s.name,
        outcome: 'skipped',
        reason: 'not on this Harbor node (the list form binds only)',
      });
    } else {
      const { body } = await about(
        s.name,
        io.client.request<Credentials>('POST', '/v1/services', { name: s.name }),
      );
      bound.push({ name: s.name, credentials: body });
      report.push({ service: s.name, outcome: 'created' });
    }
  }
  const environment = appEnvironment(app.name, bound);
  if (io.json) {
    io.out(
      `${JSON.stringify({ app: app.name, services: report, environment: Object.fromEntries(environment) }, null, 2)}\n`,
    );
    return 0;
  }
  for (const r of report) io.note(`${r.outcome.padEnd(7)} ${r.service}${r.reason ? ` (${r.reason})` : ''}\n`);
  io.out(formatVariables(environment, io.format));
  return 0;
}

/**
 * Two services the app would be bound to whose names give one STACKATO_HARBOR_<NAME> (`my-port`
 * and `My_Port`): the app could not tell them apart, and harbor-sidecar refuses that environment
 * (E_VARIABLE_CLASH) at staging. Refused here, before anything is created.
 */
function refuseVariableClash(file: string, names: readonly string[]): void {
  const byVariable = new Map<string, string>();
  for (const name of names) {
    const variable = variableForService(name);
    const other = byVariable.get(variable);
    if (other !== undefined && other !== name) {
      throw new HarborError(
        'E_MANIFEST',
        `${file}: services "${other}" and "${name}" both give the app ${variable} (names are upper-cased, other characters made _): rename one; nothing was created`,
      );
    }
    byVariable.set(variable, name);
  }
}

/** Deletes the Harbor services the manifest creates (the bind-only list form deletes nothing). */
async function remove(io: CommandIO, app: ReturnType<typeof readManifest>): Promise<number> {
  const { harbor } = splitHarbor(app);
  const report: { service: string; outcome: 'deleted' | 'absent' | 'kept' }[] = [];
  for (const s of harbor) {
    if (s.type === undefined) {
      report.push({ service: s.name, outcome: 'kept' });
      continue;
    }
    const answer = await io.client.send('DELETE', path(s.name));
    if (answer.status === 404) report.push({ service: s.name, outcome: 'absent' });
    else if (answer.status >= 400) await about(s.name, Promise.reject(refusal(answer)));
    else report.push({ service: s.name, outcome: 'deleted' });
  }
  if (io.json) io.out(`${JSON.stringify({ app: app.name, services: report }, null, 2)}\n`);
  else for (const r of report) io.out(`${r.outcome.padEnd(7)} ${r.service}\n`);
  return 0;
}
