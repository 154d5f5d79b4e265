// Where harbor-node keeps its services: one interface (types.ts), a store of
// one node alone (memory, or the state file) and a shared one (Redis, for a
// cluster). The node never asks which one it runs on.
import type { Logger } from '../../log/index.js';
import { StateFile } from '../state.js';
import { FileStore, MemoryStore } from './local.js';
import type { NodeStore } from './types.js';
import type { StoreLocation } from './url.js';

export { FileStore, MemoryStore } from './local.js';
export type {
  ExpireResult,
  MemberReport,
  MemberServiceView,
  MemberView,
  NodeStore,
  StoredInstance,
  StoredService,
  StoreKind,
  StoreSnapshot,
  SyncResult,
  UpsertResult,
} from './types.js';
export { parseStoreLocation, type StoreLocation } from './url.js';

/**
 * The store a location names. ioredis is loaded only for a Redis store. `readOnly`: a state file
 * is only read (a copy's source, which a running node may hold), not locked.
 */
export async function createStore(
  location: StoreLocation,
  logger: Logger,
  { readOnly = false }: { readOnly?: boolean } = {},
): Promise<NodeStore> {
  if (location.kind === 'memory') return new MemoryStore();
  if (location.kind === 'file') return new FileStore(new StateFile(location.path), logger, { readOnly });
  const { RedisStore } = await import('./redis.js');
  return new RedisStore({ location, logger });
}
