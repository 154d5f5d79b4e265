// The STACKATO_HARBOR* port variables (seed: "Harbor Environment Variables").
import type { HarborService } from './types.js';

/**
 * A service or app name made into the part of a shell variable name: upper-cased, hyphens and
 * anything else a variable cannot hold turned into `_`. It always follows a prefix
 * (STACKATO_HARBOR_, HARBOR_FORWARD_), so a leading digit stays: the seed's
 * `STACKATO_HARBOR_UDP_${STACKATO_APP_NAME_UPCASE}` must name the variable of `udp-${name}`.
 */
export function mangleName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

export function variableForService(name: string): string {
  return `STACKATO_HARBOR_${mangleName(name)}`;
}

/**
 * The variables to export for a set of services. One service: STACKATO_HARBOR and
 * its STACKATO_HARBOR_<NAME>. More: only the per-service ones. Plus
 * STACKATO_APP_NAME_UPCASE when an app name is known and the variable is not set yet.
 */
export function portVariables(
  services: readonly HarborService[],
  app: { readonly name?: string | undefined; readonly upcaseAlreadySet: boolean },
): Map<string, string> {
  const variables = new Map<string, string>();
  const only = services.length === 1 ? services[0] : undefined;
  if (only) variables.set('STACKATO_HARBOR', String(only.intPort));
  for (const service of services) variables.set(service.variable, String(service.intPort));
  if (app.name !== undefined && app.name !== '' && !app.upcaseAlreadySet) {
    variables.set('STACKATO_APP_NAME_UPCASE', mangleName(app.name));
  }
  return variables;
}

export type VariableFormat = 'shell' | 'dotenv' | 'json';

/** Single-quoted for a POSIX shell: safe to `eval`, whatever the value holds. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function dotenvQuote(value: string): string {
  return /^[A-Za-z0-9_./:@-]*$/.test(value) ? value : JSON.stringify(value);
}

export function formatVariables(variables: ReadonlyMap<string, string>, format: VariableFormat): string {
  if (format === 'json') return `${JSON.stringify(Object.fromEntries(variables), null, 2)}\n`;
  let out = '';
  for (const [name, value] of variables) {
    out += format === 'shell' ? `export ${name}=${shellQuote(value)}\n` : `${name}=${dotenvQuote(value)}\n`;
  }
  return out;
}
