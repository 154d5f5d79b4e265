// One node per network namespace runs the nftables data plane: its tables
// (ip harbor, ip6 harbor) are replaced whole when a node starts, so a second
// node would wipe the first's rules, and the first, finding its table still
// there, would never know. The claim is an abstract unix socket: its name
// space is the network namespace's, as nftables tables are, and the kernel
// lets it go when the process ends however it ends, so no lock is ever stale.
// The holder answers a connection with its pid, for the refusal to name it.
import * as net from 'node:net';
import { HarborError } from '../../errors/index.js';
import { describeProcess } from '../../sockets/port-owner.js';

/** The claim's name in the abstract namespace (the leading NUL). */
export const DATAPLANE_CLAIM = '\0harbor-node/dataplane/nftables';
/** How long asking the holder for its pid may take. */
const ASK_TIMEOUT_MS = 2000;

/** A held claim: let go at stop. */
export interface DataplaneClaim {
  release(): Promise<void>;
}

/** Claims the data plane of this network namespace; E_DATAPLANE naming the holder when another node has it. */
export async function claimDataplane(name: string = DATAPLANE_CLAIM): Promise<DataplaneClaim> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`${process.pid}\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    const holder = await dataplaneHolder(name);
    throw new HarborError(
      'E_DATAPLANE',
      `--dataplane nftables: another harbor-node${holder === null ? '' : `, ${describeProcess(holder)},`} runs the kernel data plane in this network namespace; its tables are one node's alone: stop it, or run this node with --dataplane userspace`,
    );
  }
  server.unref();
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The pid of the node holding the data plane of this network namespace, or null when none does. */
export async function dataplaneHolder(name: string = DATAPLANE_CLAIM): Promise<number | null> {
  return new Promise((resolve) => {
    let text = '';
    const socket = net.connect(name);
    const done = (pid: number | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(pid);
    };
    const timer = setTimeout(() => done(null), ASK_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('end', () => {
      const pid = Number.parseInt(text, 10);
      done(Number.isInteger(pid) && pid > 0 ? pid : null);
    });
    socket.on('error', () => done(null));
  });
}
