// The shapes every other folder receives from the configuration pipeline.

/** Which transports a service carries, from its name's prefix (see docs/protocols.md). */
export type Transport = 'tcp' | 'udp' | 'both';

/** One Harbor service as read from STACKATO_SERVICES / HELION_SERVICES / VCAP_SERVICES. */
export interface HarborService {
  /** The service name, as bound in the manifest (the key in STACKATO_SERVICES). */
  readonly name: string;
  /** The credentials' `name` field: the service instance id. */
  readonly instanceId: string;
  readonly nodeId: string;
  readonly hostname: string;
  readonly host: string;
  /** The external port on the Harbor node (what clients dial); undefined when the credentials lack it. */
  readonly port: number | undefined;
  /** The port in the app container that Harbor forwards to. */
  readonly intPort: number;
  readonly extHostname: string;
  readonly extHost: string;
  readonly transport: Transport;
  /** True when the name ends in `https` and the transport carries TCP: the sidecar terminates TLS on intPort. */
  readonly https: boolean;
  /** The STACKATO_HARBOR_<NAME> variable this service exports. */
  readonly variable: string;
}

/** Where a server listens or a client dials: a TCP host and port, or a unix socket path. */
export type Address =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return address.path;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
