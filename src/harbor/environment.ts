// The environment an app's containers get for their Harbor services, in the
// two shapes the platform used (PLATFORM.md): STACKATO_SERVICES (name ->
// credentials) and VCAP_SERVICES ({"harbor": [{name, label, credentials}]}),
// plus STACKATO_APP_NAME, from which harbor-sidecar derives
// STACKATO_APP_NAME_UPCASE. Printed for `eval`, a .env file, or as JSON.
import type { Credentials } from './explain.js';

export interface BoundService {
  readonly name: string;
  readonly credentials: Credentials;
}

export function appEnvironment(appName: string, services: readonly BoundService[]): Map<string, string> {
  const stackato = Object.fromEntries(services.map((s) => [s.name, s.credentials]));
  const vcap = {
    harbor: services.map((s) => ({ name: s.name, label: 'harbor', credentials: s.credentials })),
  };
  return new Map([
    ['STACKATO_APP_NAME', appName],
    ['STACKATO_SERVICES', JSON.stringify(stackato)],
    ['VCAP_SERVICES', JSON.stringify(vcap)],
  ]);
}
