// Reading a socket into one reused buffer (node:net `onread`) instead of a
// fresh 64 KiB allocation per read: no allocation or GC per chunk, and the
// copy in and out goes through memory that stays in cache. On loopback
// (iperf3, one stream) this is what brings the relay level with HAProxy's
// splice(), see docs/node.md "Performance notes".
//
// node:net offers `onread` only to sockets built with it, which a server's
// accepted sockets never are. For those, adoptReadBuffer() sets the same
// three internal fields the constructor would have set (found by their
// descriptions on a probe socket built with `onread`) and calls the handle's
// useUserBuffer(), exactly what the constructor path does. Where a Node
// version lacks them, it answers false and the caller uses pipe() instead.
import * as net from 'node:net';

export type ReadCallback = (nread: number, buffer: Buffer) => boolean;

/**
 * Read buffers of one size, taken for a connection and given back once nothing can read into
 * them or write from them any more (every socket that used them has closed). At most `keep`
 * spare ones are kept: past that, a buffer given back is left to the collector.
 */
export class ReadBuffers {
  readonly #bytes: number;
  readonly #keep: number;
  readonly #spare: Buffer[] = [];
  #made = 0;

  constructor(bytes: number, keep: number) {
    this.#bytes = bytes;
    this.#keep = keep;
  }

  /** A buffer for a new connection: a spare one, else a new one. */
  take(): Buffer {
    const spare = this.#spare.pop();
    if (spare !== undefined) return spare;
    this.#made++;
    return Buffer.allocUnsafeSlow(this.#bytes);
  }

  /** Takes back a buffer no socket uses any more. */
  give(buffer: Buffer): void {
    if (this.#spare.length < this.#keep && buffer.length === this.#bytes) this.#spare.push(buffer);
  }

  /** Spare buffers waiting for a connection. */
  get spare(): number {
    return this.#spare.length;
  }

  /** Buffers made so far: with no connection open, all of them are spare (up to the number kept). */
  get made(): number {
    return this.#made;
  }
}

interface OnreadInternals {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol | undefined;
}

function findInternals(): OnreadInternals | undefined {
  // The constructor honours `onread` (net.connect passes it through); @types/node lists it only for connect.
  const options = { onread: { buffer: Buffer.alloc(1), callback: () => true } } as net.SocketConstructorOpts;
  const probe = new net.Socket(options);
  const symbols = Object.getOwnPropertySymbols(probe);
  probe.destroy();
  const find = (description: string): symbol | undefined =>
    symbols.find((s) => s.description === description);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  if (buffer === undefined || callback === undefined) return undefined;
  return { buffer, callback, generator: find('kBufferGen') };
}

const INTERNALS = findInternals();

/** Whether this Node lets adoptReadBuffer() work (a test pins it, so an upgrade that breaks it is noticed). */
export const CAN_ADOPT_READ_BUFFER = INTERNALS !== undefined;

/**
 * Makes a connected socket that is not reading yet (accepted with
 * pauseOnConnect) read into `buffer` and hand each chunk to `callback`, as if
 * it had been built with `onread`. Returns false, changing nothing, when this
 * Node does not allow it. Reading starts with socket.resume().
 */
export function adoptReadBuffer(socket: net.Socket, buffer: Buffer, callback: ReadCallback): boolean {
  const handle = (
    socket as unknown as { _handle?: { reading?: boolean; useUserBuffer?: (b: Buffer) => void } }
  )._handle;
  if (INTERNALS === undefined || typeof handle?.useUserBuffer !== 'function' || handle.reading) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[INTERNALS.buffer] = buffer;
  fields[INTERNALS.callback] = callback;
  if (INTERNALS.generator !== undefined) fields[INTERNALS.generator] = null;
  handle.useUserBuffer(buffer);
  return true;
}
