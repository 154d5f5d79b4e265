// The instance check after a restart: does something accept a TCP
// connection at the instance's address? Nothing is sent; the socket is
// half-closed as soon as it connects (a FIN, not a reset, so the app does not
// log a reset per check) and destroyed if the app keeps it open.
import * as net from 'node:net';

export type InstanceCheck = (host: string, port: number) => Promise<boolean>;

const LINGER_MS = 1000;

export function tcpConnectCheck(timeoutMs = 2000): InstanceCheck {
  return (host, port) =>
    new Promise((resolve) => {
      const socket = net.connect({ host, port, timeout: timeoutMs });
      const onTimeout = (): void => {
        socket.destroy();
        resolve(false);
      };
      socket.on('error', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('timeout', onTimeout);
      socket.once('connect', () => {
        socket.off('timeout', onTimeout);
        socket.setTimeout(LINGER_MS, () => socket.destroy());
        socket.resume();
        socket.end();
        resolve(true);
      });
    });
}
