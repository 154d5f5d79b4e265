// The proxy's listening sockets: one per host (IPv4 and IPv6 by default) on the
// service's int_port, opened all or none, with an error that names the port and
// the service.
import * as net from 'node:net';
import { HarborError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { heldBy } from '../sockets/port-owner.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly family: string;
}

export interface ListenersOptions {
  /** undefined: every IPv4 and IPv6 address, IPv4 alone where the machine has no IPv6. */
  readonly hosts: readonly string[] | undefined;
  /** 0: a free port, chosen by the first listener and taken by the others. */
  readonly port: number;
  readonly service: string;
  readonly logger: Logger;
  readonly onConnection: (socket: net.Socket) => void;
}

/** Listens on every host, or on none: E_PORT_IN_USE or E_LISTEN naming the address and the service. */
export async function openListeners(options: ListenersOptions): Promise<net.Server[]> {
  const defaultHosts = options.hosts === undefined;
  const hosts = options.hosts ?? ['0.0.0.0', '::'];
  const servers: net.Server[] = [];
  let port = options.port;
  try {
    for (const host of hosts) {
      const server = net.createServer({ noDelay: true, pauseOnConnect: false }, options.onConnection);
      try {
        await listen(server, host, port);
      } catch (error) {
        const code = (error as { code?: string }).code;
        // A machine without IPv6 still serves IPv4 when the hosts were not chosen explicitly.
        if (defaultHosts && host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
          options.logger.warn({ service: options.service, host }, 'IPv6 unavailable; serving IPv4 only');
          continue;
        }
        throw listenError(error, host, port, options.service);
      }
      servers.push(server);
      if (port === 0) port = (server.address() as net.AddressInfo).port;
    }
  } catch (error) {
    for (const server of servers) server.close();
    throw error;
  }
  return servers;
}

/** Where `servers` listen. */
export function addressesOf(servers: readonly net.Server[]): ListenAddress[] {
  const out: ListenAddress[] = [];
  for (const server of servers) {
    const a = server.address();
    if (a !== null && typeof a === 'object') out.push({ host: a.address, port: a.port, family: a.family });
  }
  return out;
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen({ host, port, ipv6Only: host.includes(':'), exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function listenError(error: unknown, host: string, port: number, service: string): HarborError {
  const code = (error as { code?: string }).code;
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  if (code === 'EADDRINUSE') {
    return new HarborError(
      'E_PORT_IN_USE',
      `port ${port} (int_port of service "${service}") is already taken on ${where}${heldBy(port)}`,
      { cause: error },
    );
  }
  return new HarborError(
    'E_LISTEN',
    `cannot listen on ${where} for service "${service}": ${(error as Error).message}`,
    {
      cause: error,
    },
  );
}
