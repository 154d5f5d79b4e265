// The node's state file: services, their ports and their instances, so a
// restart brings every port back. Written atomically (temporary file in the
// same folder, fsync, rename, fsync of the folder); writes are serialised and
// coalesced. A file that does not parse or has the wrong shape is an error
// that names it; it is never overwritten by an empty state.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HarborError } from '../errors/index.js';

export interface InstanceRecord {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly ttl?: number | undefined;
}

export interface ServiceRecord {
  /** The service instance id (a UUID): the credentials' `name`. */
  readonly id: string;
  /** The service name the app bound (decides the protocol). */
  readonly name: string;
  readonly port: number;
  readonly intPort: number;
  readonly createdAt: string;
  readonly instances: readonly InstanceRecord[];
}

export interface NodeState {
  readonly services: readonly ServiceRecord[];
}

const VERSION = 1;

function corrupt(path: string, reason: string, cause?: unknown): HarborError {
  return new HarborError(
    'E_STATE_CORRUPT',
    `state file ${path} ${reason}; it was left as it is (fix or move it away to start empty)`,
    { cause },
  );
}

const isPort = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function parseInstance(path: string, where: string, value: unknown): InstanceRecord {
  const o = value as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw corrupt(path, `has ${where} that is not an object`);
  if (!isText(o.id) || !isText(o.host) || !isPort(o.port)) {
    throw corrupt(path, `has ${where} without a valid id, host and port`);
  }
  if (o.ttl !== undefined && !(Number.isInteger(o.ttl) && (o.ttl as number) > 0)) {
    throw corrupt(path, `has ${where} with a ttl that is not a positive integer`);
  }
  return { id: o.id, host: o.host, port: o.port, ttl: o.ttl as number | undefined };
}

/** Checks the shape of a parsed state file; throws E_STATE_CORRUPT naming the path and the first problem. */
export function parseState(path: string, text: string): NodeState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `is not valid JSON (${(error as Error).message})`, error);
  }
  const root = data as Record<string, unknown>;
  if (typeof root !== 'object' || root === null || Array.isArray(root))
    throw corrupt(path, 'is not a JSON object');
  if (root.version !== VERSION)
    throw corrupt(path, `has version ${JSON.stringify(root.version)}, expected ${VERSION}`);
  if (!Array.isArray(root.services)) throw corrupt(path, 'has no "services" array');
  const ports = new Set<number>();
  const ids = new Set<string>();
  const services = root.services.map((value: unknown, i: number): ServiceRecord => {
    const where = `services[${i}]`;
    const s = value as Record<string, unknown>;
    if (typeof s !== 'object' || s === null) throw corrupt(path, `has ${where} that is not an object`);
    if (!isText(s.id) || !isText(s.name) || !isPort(s.port) || !isPort(s.int_port) || !isText(s.created_at)) {
      throw corrupt(path, `has ${where} without a valid id, name, port, int_port and created_at`);
    }
    if (ports.has(s.port)) throw corrupt(path, `has ${where} on port ${s.port}, which another service holds`);
    if (ids.has(s.id)) throw corrupt(path, `has ${where} with id ${s.id} twice`);
    ports.add(s.port);
    ids.add(s.id);
    if (!Array.isArray(s.instances)) throw corrupt(path, `has ${where} without an "instances" array`);
    return {
      id: s.id,
      name: s.name,
      port: s.port,
      intPort: s.int_port,
      createdAt: s.created_at,
      instances: s.instances.map((inst: unknown, j: number) =>
        parseInstance(path, `${where}.instances[${j}]`, inst),
      ),
    };
  });
  return { services };
}

export function serializeState(state: NodeState): string {
  return `${JSON.stringify(
    {
      version: VERSION,
      services: state.services.map((s) => ({
        id: s.id,
        name: s.name,
        port: s.port,
        int_port: s.intPort,
        created_at: s.createdAt,
        instances: s.instances.map((i) => ({ id: i.id, host: i.host, port: i.port, ttl: i.ttl })),
      })),
    },
    null,
    2,
  )}\n`;
}

export class StateFile {
  readonly path: string;
  #writing: Promise<void> | undefined;
  #next: { state: NodeState; waiters: { resolve: () => void; reject: (e: unknown) => void }[] } | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** The saved state, or undefined when there is no file yet. Throws E_STATE_CORRUPT. */
  async load(): Promise<NodeState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HarborError(
        'E_STATE_CORRUPT',
        `state file ${this.path} cannot be read: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    return parseState(this.path, text);
  }

  /**
   * Writes `state`; resolves once a write containing it is on disk. While a
   * write runs, later calls coalesce into one following write.
   */
  save(state: NodeState): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#next) {
        this.#next.state = state;
        this.#next.waiters.push({ resolve, reject });
      } else {
        this.#next = { state, waiters: [{ resolve, reject }] };
      }
      if (!this.#writing) this.#writing = this.#drain();
    });
  }

  async #drain(): Promise<void> {
    while (this.#next) {
      const { state, waiters } = this.#next;
      this.#next = undefined;
      try {
        await this.#write(serializeState(state));
        for (const w of waiters) w.resolve();
      } catch (error) {
        const wrapped = new HarborError(
          'E_STATE_WRITE',
          `state file ${this.path} cannot be written: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
        for (const w of waiters) w.reject(wrapped);
      }
    }
    this.#writing = undefined;
  }

  async #write(text: string): Promise<void> {
    const dir = dirname(this.path);
    const temp = join(dir, `.${basename(this.path)}.${process.pid}.tmp`);
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(temp, this.path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    // The rename itself is durable only once the folder is synced.
    const folder = await open(dir, 'r');
    try {
      await folder.sync();
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is still atomic.
    } finally {
      await folder.close();
    }
  }
}
