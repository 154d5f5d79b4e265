// The node's state file: services, their ports and their instances, so a
// restart brings every port back. Written atomically (temporary file in the
// same folder, fsync, rename, fsync of the folder); writes are serialised and
// coalesced. A file that does not parse or has the wrong shape is an error
// that names it; it is never overwritten by an empty state.
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { udpCheckProblem } from '../config/udp-check.js';
import { HarborError } from '../errors/index.js';
import { isInstanceHost } from './host.js';
import { LOCK_STALE_MS, lockStateFile, type ReleaseLock, type StateLockEvents } from './state-lock.js';

export interface InstanceRecord {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly ttl?: number | undefined;
  readonly udpCheck?: string | undefined;
}

/** The node-wide parts of a service's credentials, fixed when it is created (every node of a cluster returns them). */
export interface FixedCredentials {
  readonly hostname: string;
  readonly host: string;
  readonly node_id: string;
  readonly ext_hostname?: string | undefined;
  readonly ext_host?: string | undefined;
}

export interface ServiceRecord {
  /** The service instance id (a UUID): the credentials' `name`. */
  readonly id: string;
  /** The service name the app bound (decides the protocol). */
  readonly name: string;
  readonly port: number;
  readonly intPort: number;
  readonly createdAt: string;
  /** Absent in files written before clusters: then the node's settings give them. */
  readonly credentials?: FixedCredentials | undefined;
  readonly instances: readonly InstanceRecord[];
}

export interface NodeState {
  readonly services: readonly ServiceRecord[];
}

/**
 * Fields of the file this version does not know (written by a newer node, or by hand),
 * by where they were, so that a write keeps them instead of dropping them (issue 9, item 12).
 */
export interface UnknownFields {
  readonly root: Readonly<Record<string, unknown>>;
  /** By service id. */
  readonly services: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  /** By `${serviceId} ${instanceId}`. */
  readonly instances: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
}

const ROOT_FIELDS = new Set(['version', 'services']);
const SERVICE_FIELDS = new Set(['id', 'name', 'port', 'int_port', 'created_at', 'credentials', 'instances']);
const CREDENTIAL_FIELDS = ['hostname', 'host', 'node_id', 'ext_hostname', 'ext_host'] as const;

/** The fixed credentials of a stored service, or a reason they are wrong. Shared by every store's reader. */
export function parseFixedCredentials(value: unknown): FixedCredentials | string {
  const o = value as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'is not an object';
  for (const key of CREDENTIAL_FIELDS) {
    if (o[key] !== undefined && typeof o[key] !== 'string') return `has a ${key} that is not a string`;
  }
  if (!isText(o.hostname) || !isText(o.host) || !isText(o.node_id)) return 'lacks hostname, host or node_id';
  return {
    hostname: o.hostname,
    host: o.host,
    node_id: o.node_id,
    ...(o.ext_hostname !== undefined && { ext_hostname: o.ext_hostname as string }),
    ...(o.ext_host !== undefined && { ext_host: o.ext_host as string }),
  };
}
const INSTANCE_FIELDS = new Set(['id', 'host', 'port', 'ttl', 'udp_check']);

function unknownOf(value: Record<string, unknown>, known: ReadonlySet<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([key]) => !known.has(key)));
}

/** The fields of a parsed (valid) state file that this version does not know. */
export function unknownFields(text: string): UnknownFields {
  const root = JSON.parse(text) as Record<string, unknown>;
  const services = new Map<string, Record<string, unknown>>();
  const instances = new Map<string, Record<string, unknown>>();
  for (const s of root.services as Record<string, unknown>[]) {
    const extra = unknownOf(s, SERVICE_FIELDS);
    if (Object.keys(extra).length > 0) services.set(String(s.id), extra);
    for (const i of s.instances as Record<string, unknown>[]) {
      const more = unknownOf(i, INSTANCE_FIELDS);
      if (Object.keys(more).length > 0) instances.set(`${s.id} ${i.id}`, more);
    }
  }
  return { root: unknownOf(root, ROOT_FIELDS), services, instances };
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
  if (!isText(o.id) || !isText(o.host) || !isInstanceHost(o.host) || !isPort(o.port)) {
    throw corrupt(path, `has ${where} without a valid id, host (an IP address or hostname) and port`);
  }
  if (o.ttl !== undefined && !(Number.isInteger(o.ttl) && (o.ttl as number) > 0)) {
    throw corrupt(path, `has ${where} with a ttl that is not a positive integer`);
  }
  const checkProblem = o.udp_check === undefined ? undefined : udpCheckProblem(o.udp_check);
  if (checkProblem !== undefined) throw corrupt(path, `has ${where} with a udp_check that ${checkProblem}`);
  return {
    id: o.id,
    host: o.host,
    port: o.port,
    ttl: o.ttl as number | undefined,
    ...(o.udp_check !== undefined && { udpCheck: o.udp_check as string }),
  };
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
    const credentials = s.credentials === undefined ? undefined : parseFixedCredentials(s.credentials);
    if (typeof credentials === 'string') throw corrupt(path, `has ${where}.credentials that ${credentials}`);
    return {
      id: s.id,
      name: s.name,
      port: s.port,
      intPort: s.int_port,
      createdAt: s.created_at,
      ...(credentials !== undefined && { credentials }),
      instances: s.instances.map((inst: unknown, j: number) =>
        parseInstance(path, `${where}.instances[${j}]`, inst),
      ),
    };
  });
  return { services };
}

const NO_UNKNOWN_FIELDS: UnknownFields = { root: {}, services: new Map(), instances: new Map() };

export function serializeState(state: NodeState, unknown: UnknownFields = NO_UNKNOWN_FIELDS): string {
  return `${JSON.stringify(
    {
      ...unknown.root,
      version: VERSION,
      services: state.services.map((s) => ({
        ...unknown.services.get(s.id),
        id: s.id,
        name: s.name,
        port: s.port,
        int_port: s.intPort,
        created_at: s.createdAt,
        credentials: s.credentials,
        instances: s.instances.map((i) => ({
          ...unknown.instances.get(`${s.id} ${i.id}`),
          id: i.id,
          host: i.host,
          port: i.port,
          ttl: i.ttl,
          udp_check: i.udpCheck,
        })),
      })),
    },
    null,
    2,
  )}\n`;
}

export class StateFile {
  readonly path: string;
  readonly #lockStaleMs: number;
  /** What the last file read held that this version does not know; kept on every write. */
  #unknown: UnknownFields = NO_UNKNOWN_FIELDS;
  #writing: Promise<void> | undefined;
  #next: { state: NodeState; waiters: { resolve: () => void; reject: (e: unknown) => void }[] } | undefined;
  /** Lets go of the file's lock (state-lock.ts), once prepare() took it. */
  #release: ReleaseLock | undefined;
  /** Why the lock was lost while held; no write follows (another node may own the file now). */
  #lockLost: string | undefined;

  /** `lockStaleMs`: how long the lock of a node that stopped without letting go holds (tests shorten it). */
  constructor(path: string, { lockStaleMs = LOCK_STALE_MS }: { lockStaleMs?: number } = {}) {
    this.path = path;
    this.#lockStaleMs = lockStaleMs;
  }

  /**
   * Makes sure changes can be saved before the node says it is ready: creates the folder
   * when it is missing, checks it is writable (E_STATE_FOLDER otherwise: a node that
   * started would refuse every change with a 500), takes the file's lock (E_STATE_IN_USE
   * while another node holds it), and only then removes temporary files that a killed
   * node left (issue 9, item 12). Returns the names of those removed.
   */
  async prepare(events: StateLockEvents = {}): Promise<string[]> {
    const dir = dirname(this.path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o750 });
      await access(dir, constants.W_OK | constants.X_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new HarborError(
        'E_STATE_FOLDER',
        `state file ${this.path}: its folder ${dir} cannot be ${code === 'ENOENT' ? 'created' : 'written'} (${code}); choose another --state or fix the folder`,
        { cause: error },
      );
    }
    this.#release = await lockStateFile(
      this.path,
      {
        ...events,
        onLost: (error) => {
          this.#lockLost = error.message;
          events.onLost?.(error);
        },
      },
      this.#lockStaleMs,
    );
    const prefix = `.${basename(this.path)}.`;
    const mine = `${prefix}${process.pid}.tmp`;
    const removed: string[] = [];
    for (const name of await readdir(dir)) {
      if (!name.startsWith(prefix) || !name.endsWith('.tmp') || name === mine) continue;
      await unlink(join(dir, name)).then(
        () => removed.push(name),
        () => undefined,
      );
    }
    return removed;
  }

  /** Lets go of the file's lock: another node may use the file from now on. */
  async release(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    await release?.();
  }

  /**
   * The saved state, or undefined at start when there is no file yet or an empty one (blanks at
   * most: the node only ever renames a whole file into place, so one is an operator's `touch`).
   * Later (SIGHUP) a file removed or emptied under the running node is refused like one that does
   * not parse, so that it drops no service; the next change writes the file again. Throws
   * E_STATE_CORRUPT.
   */
  async load(atStart = false): Promise<NodeState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if (atStart && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HarborError(
        'E_STATE_CORRUPT',
        `state file ${this.path} cannot be read: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    if (atStart && text.trim() === '') return undefined;
    const state = parseState(this.path, text);
    this.#unknown = unknownFields(text);
    return state;
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
        await this.#write(serializeState(state, this.#unknown));
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
    if (this.#lockLost !== undefined) throw new Error(`its lock was lost (${this.#lockLost})`);
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
