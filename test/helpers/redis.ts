// Real redis-server and redis-sentinel processes for store and cluster tests,
// on loopback, each in its own temporary folder, killed at teardown. Ports are
// free ones the kernel picked a moment before (checked by binding).
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { daemon } from './daemon.js';
import { freePort } from './net.js';
import { waitFor } from './wait.js';

export const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
export const HAVE_SENTINEL = spawnSync('redis-sentinel', ['--version']).status === 0;

/** One line of RESP to a Redis/Sentinel port: `PING` -> `+PONG`. Answers '' when it cannot connect. */
export async function redisCommand(port: number, ...args: string[]): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = () => {
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(2000, done);
    socket.on('error', done);
    socket.on('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.endsWith('\r\n')) done();
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  child: ChildProcess;
  /** Stops it (SIGKILL: no save on the way out). */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder: with its data (appendonly), or `empty`. */
  start(options?: { empty?: boolean }): Promise<void>;
}

async function spawnUntil(t: Test, command: string, args: string[], port: number): Promise<ChildProcess> {
  const { child, output } = daemon(t, command, args);
  try {
    await waitFor(
      async () => (await redisCommand(port, 'PING')).startsWith('+PONG'),
      `${command} on ${port}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${output()}`);
  }
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * A redis-server with an append-only file (a restart keeps its data unless told `empty`).
 * `replicaOf`: a master's port. `alsoOn`: an address it listens on besides 127.0.0.1 (its URL's).
 */
export async function startRedis(
  t: Test,
  options: { replicaOf?: number; alsoOn?: string } = {},
): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-redis-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const args = (): string[] => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    // Reached from another namespace: not loopback to Redis, which refuses such clients in
    // protected mode (no password set).
    ...(options.alsoOn ? [options.alsoOn, '--protected-mode', 'no'] : []),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    ...(options.replicaOf ? ['--replicaof', '127.0.0.1', String(options.replicaOf)] : []),
  ];
  const server: RedisServer = {
    port,
    url: `redis://${options.alsoOn ?? '127.0.0.1'}:${port}`,
    dir,
    child: await spawnUntil(t, 'redis-server', args(), port),
    async kill() {
      server.child.kill('SIGKILL');
      await exited(server.child);
    },
    async start({ empty = false } = {}) {
      if (empty) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
      }
      server.child = await spawnUntil(t, 'redis-server', args(), port);
    },
  };
  return server;
}

export interface Sentinel {
  readonly port: number;
  readonly child: ChildProcess;
}

/**
 * A redis-sentinel watching `masterPort` as `name`, deciding fast (1 s down, quorum `quorum`).
 * `replicaPorts` are told to it in its configuration (`known-replica`): it would otherwise learn
 * them from the master's INFO, seconds later.
 */
export async function startSentinel(
  t: Test,
  masterPort: number,
  name: string,
  quorum = 1,
  replicaPorts: readonly number[] = [],
): Promise<Sentinel> {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-sentinel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${quorum}`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      ...replicaPorts.map((replica) => `sentinel known-replica ${name} 127.0.0.1 ${replica}`),
      '',
    ].join('\n'),
  );
  const child = await spawnUntil(t, 'redis-sentinel', [conf], port);
  return { port, child };
}
