// Ports the sidecar would listen on twice, or where what it forwards to listens (the app, or the
// sidecar itself: a forward to its own port would connect to itself without end): found when
// settings are resolved, so that `check` reports them and `run` refuses before binding half of
// them (at listen time they read as a port taken, by this process or by the app).
import { isIP } from 'node:net';
import type { Problem } from '../errors/index.js';
import type { ForwardTarget } from './settings.js';
import type { Address, HarborService } from './types.js';

interface Listener {
  readonly transport: 'tcp' | 'udp';
  readonly port: number;
  readonly service: string;
}

/** The transports a --forward of `s` carries: its own, but an HTTPS service's TCP is the proxy's. */
function forwardTransports(s: HarborService): ('tcp' | 'udp')[] {
  const own: ('tcp' | 'udp')[] = s.transport === 'both' ? ['tcp', 'udp'] : [s.transport];
  return s.https ? own.filter((t) => t === 'udp') : own;
}

/** What the sidecar listens on: TCP for an HTTPS service; each forward's transports. */
function listenersOf(services: readonly HarborService[], forwarded: readonly string[]): Listener[] {
  const listeners: Listener[] = [];
  for (const s of services) {
    if (s.https) listeners.push({ transport: 'tcp', port: s.intPort, service: s.name });
    if (!forwarded.includes(s.name)) continue;
    for (const transport of forwardTransports(s))
      listeners.push({ transport, port: s.intPort, service: s.name });
  }
  return listeners;
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::';

/** True when a connection to `host` reaches what listens on `listenHosts` (same port assumed). */
function isLocal(host: string, listenHosts: readonly string[]): boolean {
  if (listenHosts.includes(host)) return true;
  // Loopback (or a wildcard, which connects as loopback) reaches a wildcard or loopback listener.
  return (isLoopback(host) || isWildcard(host)) && listenHosts.some((h) => isWildcard(h) || isLoopback(h));
}

export function listenerClashes(
  services: readonly HarborService[],
  forwards: readonly ForwardTarget[],
  backend: Address | undefined,
  listenHosts: readonly string[],
): Problem[] {
  const problems: Problem[] = [];
  const seen = new Map<string, Listener>();
  const forwarded = forwards.map((f) => f.service);
  for (const listener of listenersOf(services, forwarded)) {
    const key = `${listener.transport}:${listener.port}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, listener);
    else if (first.service !== listener.service) {
      problems.push({
        code: 'E_SETTING',
        message: `services "${first.service}" and "${listener.service}" both have int_port ${listener.port} (${listener.transport}): the sidecar cannot listen on it twice`,
      });
    }
  }
  if (backend?.kind === 'tcp' && isLocal(backend.host, listenHosts)) {
    const taken = seen.get(`tcp:${backend.port}`);
    if (taken !== undefined) {
      problems.push({
        code: 'E_SETTING',
        message: `service "${taken.service}" has int_port ${backend.port}, the backend's port (${backend.host}:${backend.port}): the sidecar listens where the app would; the app must listen on another port`,
      });
    }
  }
  for (const forward of forwards) {
    const target = forward.target;
    if (target.kind !== 'tcp' || !isLocal(target.host, listenHosts)) continue;
    const service = services.find((s) => s.name === forward.service);
    const carried = service === undefined ? [] : forwardTransports(service);
    const taken = carried.map((transport) => seen.get(`${transport}:${target.port}`)).find(Boolean);
    if (taken !== undefined) {
      problems.push({
        code: 'E_SETTING',
        message: `--forward for "${forward.service}" goes to ${target.host}:${target.port}, where the sidecar itself listens (int_port of "${taken.service}"): it must go to the app's own port`,
      });
    }
  }
  return problems;
}
