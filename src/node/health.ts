// Instance checks. TCP (after a restart, and of instances that are down): does something accept a TCP
// connection at the instance's address? Nothing is sent; the socket is
// half-closed as soon as it connects (a FIN, not a reset, so the app does not
// log a reset per check) and destroyed if the app keeps it open.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { isIPv6 } from 'node:net';

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

/** A UDP check: sends `payload` to the instance; true when anything comes back in time. */
export type UdpInstanceCheck = (host: string, port: number, payload: Buffer) => Promise<boolean>;

/**
 * The opt-in UDP check (an instance registered with `udp_check`): a datagram the app
 * answers. A blackholed UDP instance sends no ICMP, so without it nothing tells the node
 * that its primary is gone (issue 9).
 */
export function udpProbeCheck(timeoutMs = 2000): UdpInstanceCheck {
  return (host, port, payload) =>
    new Promise((resolve) => {
      const socket = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.close();
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      socket.on('error', () => finish(false));
      socket.on('message', () => finish(true));
      socket.connect(port, host, (error?: Error) => {
        if (error) finish(false);
        else socket.send(payload, (sendError) => sendError && finish(false));
      });
    });
}
