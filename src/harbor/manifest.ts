// A Stackato manifest's `services:` block, in the forms the platform accepted
// (PLATFORM.md): a map of name to type (`my-port: harbor`), the older Cloud
// Foundry v1 map of name to `{ type: harbor }`, and the v2 list of names of
// service instances that exist already (bind only). A manifest holds one app
// or several under `applications:` (top-level keys apply to each). `${name}`
// is the app's name; any other symbol is refused by name.
import { parseDocument } from 'yaml';
import { HarborError } from '../errors/index.js';

export interface ManifestService {
  /** The name with `${name}` expanded. */
  readonly name: string;
  /** The type it asks for (`harbor`, `mysql`...); undefined for the bind-only list form. */
  readonly type: string | undefined;
}

export interface ManifestApp {
  readonly name: string;
  readonly services: readonly ManifestService[];
}

const manifestError = (path: string, message: string): HarborError =>
  new HarborError('E_MANIFEST', `${path}: ${message}`);

type Mapping = Record<string, unknown>;
const isMapping = (value: unknown): value is Mapping =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The app the manifest describes: the only one, or the one `--app` names among several.
 * With one app, `--app` gives the name `${name}` stands for (the manifest's `name:` otherwise).
 */
export function readManifest(path: string, text: string, appFlag: string | undefined): ManifestApp {
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const line = first.linePos?.[0]?.line;
    throw manifestError(
      path,
      `not valid YAML${line ? ` (line ${line})` : ''}: ${first.message.split('\n')[0]}`,
    );
  }
  const root: unknown = document.toJS();
  if (!isMapping(root)) throw manifestError(path, 'must be a YAML mapping (name:, services:, ...)');
  const { applications, ...common } = root;
  let app: Mapping;
  if (applications === undefined) {
    app = common;
  } else {
    if (!Array.isArray(applications) || !applications.every(isMapping)) {
      throw manifestError(path, 'applications: must be a list of apps (each with name: and services:)');
    }
    const apps = applications.map((a) => ({ ...common, ...a }));
    if (apps.length === 1) app = apps[0]!;
    else {
      const names = apps.map((a) => String(a.name ?? '(no name)'));
      if (appFlag === undefined) {
        throw manifestError(
          path,
          `holds ${apps.length} apps (${names.join(', ')}): choose one with --app NAME`,
        );
      }
      const chosen = apps.find((a) => a.name === appFlag);
      if (!chosen) throw manifestError(path, `--app ${appFlag}: no such app (apps: ${names.join(', ')})`);
      app = chosen;
    }
  }
  const name = appFlag ?? (typeof app.name === 'string' ? app.name : undefined);
  if (name === undefined || name === '') {
    throw manifestError(path, 'the app has no name: (give one in the manifest, or --app NAME)');
  }
  return { name, services: readServices(path, app.services, name) };
}

function readServices(path: string, block: unknown, appName: string): ManifestService[] {
  if (block === undefined || block === null) return [];
  const expand = (raw: string): string => expandSymbols(path, raw, appName);
  if (Array.isArray(block)) {
    // Cloud Foundry v2: names of service instances that exist already.
    return block.map((entry, i) => {
      if (typeof entry !== 'string') throw manifestError(path, `services[${i}]: must be a service name`);
      return { name: expand(entry), type: undefined };
    });
  }
  if (!isMapping(block)) {
    throw manifestError(path, 'services: must be a map (name: type) or a list of names');
  }
  return Object.entries(block).map(([raw, value]) => {
    let type: unknown = value;
    if (isMapping(value)) type = value.type ?? value.label ?? value.vendor; // Cloud Foundry v1
    if (typeof type !== 'string' || type === '') {
      throw manifestError(
        path,
        `services: ${raw}: must name a type (${raw}: harbor, or ${raw}: { type: harbor })`,
      );
    }
    return { name: expand(raw), type };
  });
}

/** `${name}` becomes the app's name; any other `${...}` is refused by name, never passed through. */
function expandSymbols(path: string, raw: string, appName: string): string {
  return raw.replace(/\$\{([^}]*)\}/g, (_whole, symbol: string) => {
    if (symbol === 'name') return appName;
    throw manifestError(path, `services: ${raw}: unknown symbol \${${symbol}} (only \${name} is known here)`);
  });
}

/** The Harbor services (type `harbor`) and those of other types, which `harbor` does not provision. */
export function splitHarbor(app: ManifestApp): { harbor: ManifestService[]; skipped: ManifestService[] } {
  const harbor = app.services.filter((s) => s.type === undefined || s.type === 'harbor');
  return { harbor, skipped: app.services.filter((s) => !harbor.includes(s)) };
}
