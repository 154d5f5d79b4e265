// What a Harbor service's credentials mean, in the seed's own words: printed
// by `harbor create-service` and `harbor service` under the credentials, so
// that a developer sees how an app and its users reach the port.
import { protocolLabel, ruleForName } from '../config/protocol.js';
import { variableForService } from '../config/variables.js';

/** The credentials as the node hands them out (the seed's shape and key order). */
export interface Credentials {
  readonly hostname: string;
  readonly host: string;
  readonly port: number;
  readonly name: string;
  readonly node_id: string;
  readonly int_port: number;
  readonly ext_hostname?: string;
  readonly ext_host?: string;
}

const MEANING: Readonly<Record<keyof Credentials, (c: Credentials) => string>> = {
  hostname: () => 'the internal hostname of the Harbor node (its internal IP when none is configured)',
  host: () => 'the internal IP address of the Harbor node',
  port: (c) =>
    `the port users connect to: clients outside the app and other apps reach it at ${reachedAt(c)}`,
  name: () => 'the service instance id (the platform refers to the service by it)',
  node_id: () => 'the Harbor node (or cluster) that provides the port',
  int_port: (c) =>
    `the port inside each app container that Harbor forwards to: the app listens on ${c.int_port}`,
  ext_hostname: () => 'the public hostname that exposes the port (empty when the admin set none)',
  ext_host: () => 'the public IP address that exposes the port (empty when the admin set none)',
};

/** Where users reach the service: the public name or address when the admin set one, else the internal one. */
export function reachedAt(c: Credentials): string {
  const host = c.ext_hostname || c.ext_host || c.hostname || c.host;
  return `${host.includes(':') ? `[${host}]` : host}:${c.port}`;
}

/** The service's name as JSON in the seed's shape: `"my-port": { ... }`. */
export function credentialsBlock(serviceName: string, credentials: Credentials): string {
  const body = JSON.stringify(credentials, null, 2).replace(/\n/g, '\n  ');
  return `  ${JSON.stringify(serviceName)}: ${body}\n`;
}

/** One line per field: name, value, what it means. */
export function fieldLines(credentials: Credentials): string[] {
  const keys = Object.keys(credentials).filter((k): k is keyof Credentials => k in MEANING);
  const width = Math.max(...keys.map((k) => k.length));
  return keys.map((key) => `  ${key.padEnd(width)}  ${MEANING[key](credentials)}`);
}

/** The protocol the name gives, and why. */
export function protocolLine(serviceName: string): string {
  const rule = ruleForName(serviceName);
  const label = protocolLabel(rule);
  const why =
    rule.transport === 'udp'
      ? 'the name starts with "udp"'
      : rule.transport === 'both'
        ? 'the name starts with "multi" or "both": TCP and UDP on the same port'
        : 'TCP is the default';
  const https = rule.https
    ? '; the name ends in "https": harbor-sidecar terminates TLS in the container with certs/<service>.crt|key (else harbor.crt|key) and forwards plain HTTP to the app'
    : rule.dropped === 'https'
      ? '; the name ends in "https", but a UDP service carries no TLS'
      : '';
  return `protocol: ${label} (${why}${https})`;
}

/** The variable an app will see for it. */
export function variableLine(serviceName: string, intPort: number): string {
  return `the app sees: STACKATO_HARBOR=${intPort} when this is its only Harbor service, and ${variableForService(serviceName)}=${intPort} always`;
}
