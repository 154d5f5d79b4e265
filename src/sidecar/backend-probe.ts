// Whether the backend accepts connections, for /readyz: one connect, closed
// at once, with a short deadline.
import { connect } from 'node:net';
import type { Address } from '../config/types.js';

export function probeBackend(address: Address, timeoutMs = 1000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket =
      address.kind === 'unix'
        ? connect({ path: address.path })
        : connect({ host: address.host, port: address.port });
    const finish = (reason: string | undefined) => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => finish(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}
