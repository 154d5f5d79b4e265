// The Redis store: several harbor-nodes share their services through one
// Redis (or a Sentinel-watched master and its replicas). Every change is one
// Lua script (scripts.ts), so port claims are atomic across nodes; TTLs run
// on Redis's clock and pause while no node reaches it. Commands fail at once
// while Redis is away (no offline queue): the node answers 503 and keeps
// forwarding on what it knew; reconnects back off with jitter, capped at 2 s.
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { HarborError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { type InstanceRecord, parseState, type ServiceRecord, serializeState } from '../state.js';
import { nameTaken } from './errors.js';
import {
  CREATE_SERVICE,
  DELETE_INSTANCE,
  DELETE_MEMBER,
  DELETE_SERVICE,
  EXPIRE_INSTANCE,
  LOST,
  MEMBERS,
  PUT_INSTANCE,
  PUT_MEMBER,
  SNAPSHOT,
  SYNC,
} from './scripts.js';
import type {
  ExpireResult,
  MemberReport,
  MemberView,
  NodeStore,
  StoredService,
  StoreKind,
  StoreSnapshot,
  SyncResult,
  UpsertResult,
} from './types.js';
import type { StoreLocation } from './url.js';

/** How long no node may reach the store before TTLs pause for the gap (nodes sync every few hundred ms). */
export const STORE_GAP_MS = 1_000;
/** The longest wait between reconnect attempts. */
const MAX_BACKOFF_MS = 2_000;
/** A command Redis does not answer in this long fails (a partition must not hang the API). */
const COMMAND_TIMEOUT_MS = 2_000;
/** With Sentinel, a change is acknowledged only once a replica has it (or this long passed: then 503). */
const REPLICA_WAIT_MS = 1_000;

type ScriptName =
  | 'harborSync'
  | 'harborLost'
  | 'harborCreate'
  | 'harborDeleteService'
  | 'harborPut'
  | 'harborDeleteInstance'
  | 'harborExpire'
  | 'harborSnapshot'
  | 'harborPutMember'
  | 'harborDeleteMember'
  | 'harborMembers';

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;

export interface RedisStoreOptions {
  readonly location: Extract<StoreLocation, { kind: 'redis' }>;
  readonly logger: Logger;
}

/** Reconnect delay: exponential from 50 ms, capped, with full jitter so nodes do not reconnect in step. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(attempt, 10));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

const rand = (): string => randomBytes(6).toString('hex');

export class RedisStore implements NodeStore {
  readonly kind: StoreKind = 'redis';
  readonly description: string;
  readonly shared = true;
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #sentinel: boolean;
  /** The master was last seen with no replica (said once in the log): WAIT is skipped while it has none. */
  #replicaless = false;
  /** Why the last connection attempt failed (ioredis's own errors only say that it is offline). */
  #connectionError: string | undefined;

  constructor(options: RedisStoreOptions) {
    const { location } = options;
    this.description = location.description;
    this.#logger = options.logger;
    this.#sentinel = location.sentinelMaster !== undefined;
    const common: RedisOptions = {
      db: location.db,
      username: location.username,
      password: location.password,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (attempt) => reconnectDelay(attempt),
      // A master that became a replica (after a failover) refuses writes: reconnect to the new one.
      reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
      ...(location.tls && { tls: { servername: location.endpoints[0]!.host } }),
    };
    this.#redis = this.#sentinel
      ? new Redis({
          ...common,
          sentinels: location.endpoints.map((e) => ({ host: e.host, port: e.port })),
          name: location.sentinelMaster!,
          sentinelRetryStrategy: (attempt) => reconnectDelay(attempt),
          ...(location.tls && { enableTLSForSentinelMode: true }),
        })
      : new Redis({ ...common, host: location.endpoints[0]!.host, port: location.endpoints[0]!.port });
    // Errors while disconnected are routine: the node reports an outage and its end once each,
    // not per attempt; the last one says why in the answers that fail meanwhile.
    this.#redis.on('error', (error: Error) => {
      this.#connectionError = connectionProblem(error);
    });
    this.#redis.on('ready', () => {
      this.#connectionError = undefined;
    });
    const scripts: Record<ScriptName, string> = {
      harborSync: SYNC,
      harborLost: LOST,
      harborCreate: CREATE_SERVICE,
      harborDeleteService: DELETE_SERVICE,
      harborPut: PUT_INSTANCE,
      harborDeleteInstance: DELETE_INSTANCE,
      harborExpire: EXPIRE_INSTANCE,
      harborSnapshot: SNAPSHOT,
      harborPutMember: PUT_MEMBER,
      harborDeleteMember: DELETE_MEMBER,
      harborMembers: MEMBERS,
    };
    for (const [name, lua] of Object.entries(scripts))
      this.#redis.defineCommand(name, { numberOfKeys: 0, lua });
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  async open(): Promise<StoreSnapshot | undefined> {
    try {
      await this.#redis.connect();
    } catch (error) {
      // connect() rejects with ioredis's own "Connection is closed."; the 'error' event said why.
      const reason = this.#connectionError ?? (error as Error).message;
      this.#logger.warn(
        { store: this.description, reason },
        `store not reachable yet (${reason}); serving nothing until it is, retrying`,
      );
      return undefined;
    }
    return this.snapshot();
  }

  async snapshot(): Promise<StoreSnapshot> {
    const text = (await this.#call('harborSnapshot')) as string;
    const data = JSON.parse(text) as { revision: string; services: unknown };
    // Lua's cjson writes an empty list as {}: read both as [].
    const services = (Array.isArray(data.services) ? data.services : []) as Record<string, unknown>[];
    const normalized: Record<string, unknown>[] = services.map((s) => ({
      ...s,
      instances: Array.isArray(s.instances) ? s.instances : [],
    }));
    // The shape is checked by the state file's own reader: one rule for what a record may hold.
    const parsed = parseState(this.description, JSON.stringify({ version: 1, services: normalized }));
    const remaining = new Map<string, number>();
    for (const s of normalized) {
      for (const i of s.instances as Record<string, unknown>[]) {
        if (typeof i.remaining_ms === 'number')
          remaining.set(`${String(s.id)} ${String(i.id)}`, i.remaining_ms);
      }
    }
    const withTtl: StoredService[] = parsed.services.map((s) => ({
      ...s,
      instances: s.instances.map((i) => ({ ...i, remainingMs: remaining.get(`${s.id} ${i.id}`) })),
    }));
    return { revision: data.revision, services: withTtl };
  }

  async sync(known: string | undefined): Promise<SyncResult> {
    const [revision, inHistory, lag] = (await this.#call('harborSync', known ?? '', STORE_GAP_MS)) as [
      string | null,
      number,
      number,
    ];
    return {
      revision: revision ?? undefined,
      diverged: revision !== null && known !== undefined && inHistory === 0,
      lag: Math.max(0, Number(lag) || 0),
    };
  }

  async lostRevisions(revisions: readonly string[]): Promise<Set<string>> {
    if (revisions.length === 0) return new Set();
    const lost = (await this.#call('harborLost', ...revisions)) as string[];
    return new Set(lost);
  }

  async createService(record: ServiceRecord): Promise<string> {
    const json = serviceJson(record);
    const [status, value] = (await this.#call(
      'harborCreate',
      record.id,
      record.port,
      json,
      rand(),
      record.name,
    )) as string[];
    if (status === 'NAME') throw nameTaken(record.name, value!);
    if (status === 'PORT') {
      throw new HarborError(
        'E_PORT_TAKEN',
        `${record.name}: port ${record.port} is already held by service ${value}`,
      );
    }
    if (status === 'EXISTS')
      throw new HarborError('E_STORE_CONFLICT', `service id ${record.id} exists already`);
    await this.#replicated(async () => {
      await this.#call('harborDeleteService', record.id, rand()).catch(() => undefined);
    });
    return value!;
  }

  async deleteService(id: string): Promise<string> {
    const [status, revision] = (await this.#call('harborDeleteService', id, rand())) as string[];
    if (status === 'NOTFOUND') throw new HarborError('E_API_NOT_FOUND', `no service with id ${id}`);
    await this.#replicated();
    return revision!;
  }

  async putInstance(
    serviceId: string,
    instance: InstanceRecord,
  ): Promise<{ result: UpsertResult; revision: string | undefined }> {
    const [status, revision] = (await this.#call(
      'harborPut',
      serviceId,
      instance.id,
      instance.host,
      instance.port,
      instance.ttl ?? '',
      instance.udpCheck ?? '',
      rand(),
    )) as string[];
    if (status === 'NOTFOUND') throw new HarborError('E_API_NOT_FOUND', `no service with id ${serviceId}`);
    if (revision) await this.#replicated();
    return { result: status as UpsertResult, revision: revision || undefined };
  }

  async deleteInstance(serviceId: string, instanceId: string): Promise<string> {
    const [status, revision] = (await this.#call(
      'harborDeleteInstance',
      serviceId,
      instanceId,
      rand(),
    )) as string[];
    if (status === 'NOTFOUND') {
      throw new HarborError('E_API_NOT_FOUND', `service ${serviceId} has no instance ${instanceId}`);
    }
    await this.#replicated();
    return revision!;
  }

  async expireInstance(serviceId: string, instanceId: string): Promise<ExpireResult> {
    const [status, value] = (await this.#call(
      'harborExpire',
      serviceId,
      instanceId,
      rand(),
      STORE_GAP_MS,
    )) as [string, string | number | undefined];
    if (status === 'EXPIRED') return { expired: true, remainingMs: undefined, revision: String(value) };
    if (status === 'LEFT') return { expired: false, remainingMs: Number(value), revision: undefined };
    return { expired: false, remainingMs: undefined, revision: undefined };
  }

  async putMember(view: MemberView, ttlMs: number): Promise<MemberView | undefined> {
    const previous = await this.#call('harborPutMember', view.member, JSON.stringify(view), ttlMs);
    return typeof previous === 'string' ? (JSON.parse(previous) as MemberView) : undefined;
  }

  async deleteMember(member: string): Promise<void> {
    await this.#call('harborDeleteMember', member);
  }

  async members(): Promise<MemberReport[]> {
    const flat = (await this.#call('harborMembers')) as (string | number)[];
    const reports: MemberReport[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      reports.push({ ...(JSON.parse(String(flat[i])) as MemberView), age_ms: Number(flat[i + 1]) });
    }
    return reports.sort((a, b) => a.member.localeCompare(b.member));
  }

  async close(): Promise<void> {
    this.#redis.disconnect(false);
  }

  /** Runs a script; any failure to reach Redis is E_STORE_UNAVAILABLE (the API's 503). */
  async #call(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const call = (this.#redis as unknown as Record<ScriptName, ScriptCall>)[name];
    try {
      return await call.apply(this.#redis, args);
    } catch (error) {
      throw unavailable(this.description, error, this.#connectionError);
    }
  }

  /**
   * Under Sentinel, waits until a replica has the change, so a failover right after the
   * answer cannot lose it (redis.io on WAIT); when none confirms in time, `undo` runs and
   * the change is refused (503: the client retries). A single Redis has no replica to wait for.
   */
  async #replicated(undo?: () => Promise<void>): Promise<void> {
    if (!this.#sentinel) return;
    // A master with no replica left (one died, or a failover promoted the only one) has
    // nobody to wait for: WAIT would take its whole timeout on every change. While the
    // master was last seen without one, a look at INFO (one round trip) stands in for it.
    if (this.#replicaless && (await connectedReplicas(this.#redis)) === 0) return;
    let acknowledged = 0;
    try {
      acknowledged = Number(await this.#redis.wait(1, REPLICA_WAIT_MS));
    } catch {
      acknowledged = 0;
    }
    if (acknowledged >= 1) {
      this.#replicaless = false;
      return;
    }
    // The change stands, said once, rather than refusing every write.
    if ((await connectedReplicas(this.#redis)) === 0) {
      if (!this.#replicaless) {
        this.#replicaless = true;
        this.#logger.warn(
          { store: this.description },
          'the store master has no replica: changes are acknowledged without one, and a failover now could lose them',
        );
      }
      return;
    }
    this.#replicaless = false;
    await undo?.();
    throw new HarborError(
      'E_STORE_UNAVAILABLE',
      `store ${this.description}: no replica confirmed the change within ${REPLICA_WAIT_MS} ms; it was not acknowledged`,
    );
  }
}

/** connected_slaves of INFO replication; -1 when it cannot be read. */
async function connectedReplicas(redis: Redis): Promise<number> {
  try {
    const info = await redis.info('replication');
    const match = /connected_slaves:(\d+)/.exec(info);
    return match ? Number(match[1]) : -1;
  } catch {
    return -1;
  }
}

function unavailable(description: string, error: unknown, connectionError: string | undefined): HarborError {
  if (error instanceof HarborError) return error;
  const message = (error as Error).message?.split('\n')[0] ?? String(error);
  // ioredis refuses commands while offline with words about its queue; the connection's own error says why.
  const offline = /Stream isn't writeable|max retries per request|Connection is closed/.test(message);
  const reason = offline && connectionError !== undefined ? connectionError : message;
  return new HarborError('E_STORE_UNAVAILABLE', `store ${description} cannot be reached: ${reason}`, {
    cause: error,
  });
}

/** A connection error in words an operator can act on. */
function connectionProblem(error: Error): string {
  const message = error.message.split('\n')[0] ?? String(error);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EPIPE' || code === 'ECONNRESET' || /^DENIED/.test(message)) {
    // What a Redis in protected mode (no password set) does to a client not on its loopback.
    return `${message}: the server closed the connection as it opened; a Redis in protected mode does that to clients on other machines (set requirepass and put the password in the store URL, or protected-mode no)`;
  }
  return message;
}

/** A service as the store keeps it: the state file's shape without its instances. */
function serviceJson(record: ServiceRecord): string {
  const text = serializeState({ services: [{ ...record, instances: [] }] });
  const [service] = (JSON.parse(text) as { services: Record<string, unknown>[] }).services;
  const { instances: _ignored, ...rest } = service!;
  return JSON.stringify(rest);
}
