// TCP and UDP forwarding, shared by harbor-node (external port -> instances)
// and harbor-sidecar (`--forward`: int_port -> the app's own port). Every kind
// has the same small interface (start, close, stats); a service's transport
// picks the kinds from one explicit map. PROXY protocol v1/v2 headers are
// optional on TCP.
import type { Transport } from '../config/types.js';
import { TcpForwarder } from './tcp.js';
import type { Forwarder, ForwarderOptions, Picker, Target } from './types.js';
import { UdpForwarder } from './udp.js';

export { type ConnectionEnds, proxyHeader, proxyHeaderV1, proxyHeaderV2 } from './proxy-protocol.js';
export { listenError, TcpForwarder } from './tcp.js';
export {
  createForwardStats,
  type Forwarder,
  type ForwarderOptions,
  type ForwardStats,
  type ListenOptions,
  type Picker,
  type ProxyProtocolVersion,
  type Target,
} from './types.js';
export {
  DEFAULT_UDP_IDLE_TIMEOUT_MS,
  DEFAULT_UDP_MAX_SESSIONS,
  DEFAULT_UDP_MAX_SESSIONS_PER_SOURCE,
  UdpForwarder,
} from './udp.js';

export type ForwarderKind = 'tcp' | 'udp';

const FACTORIES: Readonly<Record<ForwarderKind, (options: ForwarderOptions) => Forwarder>> = {
  tcp: (options) => new TcpForwarder(options),
  udp: (options) => new UdpForwarder(options),
};

/** Which forwarders a service of each transport runs, on the same port number. */
export const KINDS_BY_TRANSPORT: Readonly<Record<Transport, readonly ForwarderKind[]>> = {
  tcp: ['tcp'],
  udp: ['udp'],
  both: ['tcp', 'udp'],
};

export function createForwarder(kind: ForwarderKind, options: ForwarderOptions): Forwarder {
  return FACTORIES[kind](options);
}

/** One forwarder per kind the transport needs, not started. */
export function createForwarders(
  transport: Transport,
  options: ForwarderOptions,
): { kind: ForwarderKind; forwarder: Forwarder }[] {
  return KINDS_BY_TRANSPORT[transport].map((kind) => ({ kind, forwarder: createForwarder(kind, options) }));
}

/** A picker that always answers one target: what the sidecar's `--forward` uses. */
export function fixedPicker(target: Target): Picker {
  const fixed: Target = { host: target.host, port: target.port };
  return {
    pick: () => fixed,
    fail: () => {},
    size: 1,
  };
}

/**
 * A set of forwarders that start and stop together (TCP and UDP of one
 * service); if one fails to start, the ones already started are closed again.
 */
export class ForwarderGroup {
  readonly forwarders: readonly { kind: ForwarderKind; forwarder: Forwarder }[];

  constructor(transport: Transport, options: ForwarderOptions) {
    this.forwarders = createForwarders(transport, options);
  }

  async start(): Promise<void> {
    const started: Forwarder[] = [];
    try {
      for (const { forwarder } of this.forwarders) {
        await forwarder.start();
        started.push(forwarder);
      }
    } catch (error) {
      await Promise.all(started.map((f) => f.close()));
      throw error;
    }
  }

  async close(deadlineMs = 0): Promise<void> {
    await Promise.all(this.forwarders.map(({ forwarder }) => forwarder.close(deadlineMs)));
  }
}
