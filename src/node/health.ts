// The instance check after a restart: does something accept a TCP
// connection at the instance's address? Nothing is sent; the socket closes
// as soon as it connects.
import * as net from 'node:net';

export type InstanceCheck = (host: string, port: number) => Promise<boolean>;

export function tcpConnectCheck(timeoutMs = 2000): InstanceCheck {
  return (host, port) =>
    new Promise((resolve) => {
      const socket = net.connect({ host, port, timeout: timeoutMs });
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => done(true));
      socket.once('timeout', () => done(false));
      socket.once('error', () => done(false));
    });
}
