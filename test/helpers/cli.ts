// Spawning the built CLIs (dist/, made by `npm run build`, which `npm test` runs first).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEADLINE_MS } from './wait.js';

export const SIDECAR_BIN = fileURLToPath(new URL('../../dist/cli/sidecar.js', import.meta.url));
export const NODE_BIN = fileURLToPath(new URL('../../dist/cli/node.js', import.meta.url));
export const HARBOR_BIN = fileURLToPath(new URL('../../dist/cli/harbor.js', import.meta.url));

/** An environment with nothing of the platform's in it, so tests see only what they set. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, HARBOR_ADMIN: 'off', ...extra };
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runSidecar(args: string[], env: Record<string, string> = {}, cwd?: string): RunResult {
  const result = spawnSync(process.execPath, [SIDECAR_BIN, ...args], {
    env: cleanEnv(env),
    encoding: 'utf8',
    cwd,
    timeout: 20_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The `harbor` client, run to its end without blocking the test process (its node may live here). */
export function runHarbor(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<RunResult> {
  return runBinAsync(HARBOR_BIN, args, env, cwd, DEADLINE_MS);
}

export function startSidecar(args: string[], env: Record<string, string> = {}, cwd?: string): ChildProcess {
  return spawn(process.execPath, [SIDECAR_BIN, ...args], {
    env: cleanEnv(env),
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * `harbor-sidecar run --listen 127.0.0.1` with `folder` a tmpfs of `size` of its own (a private
 * mount namespace, `unshare -m`: a disk that fills up), resolved once it serves. `output()` is
 * its stdout so far; its files are at /proc/<child.pid>/root<path>.
 */
export async function startSidecarOnSmallDisk(
  folder: string,
  size: string,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(
    'unshare',
    [
      '-m',
      '--',
      'sh',
      '-c',
      'mount -t tmpfs -o size="$1" harbor-small "$2" && exec "$0" "$3" run --listen 127.0.0.1',
      process.execPath,
      size,
      folder,
      SIDECAR_BIN,
    ],
    { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  try {
    await waitForOutput(child, /harbor-sidecar serving/);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return { child, output: () => output };
}

/** Resolves with the first stdout/stderr line matching `pattern` (JSON log lines included). */
export function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = DEADLINE_MS,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const line = seen.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        cleanup();
        resolve(line);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${pattern}; output so far:\n${seen}`));
    }, timeoutMs);
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before ${pattern}; output:\n${seen}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/**
 * Like runSidecar, without blocking this process's event loop: for commands
 * (such as `status`) that talk to servers living in the test process.
 */
export function runSidecarAsync(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runBinAsync(SIDECAR_BIN, args, env, undefined, 15_000);
}

/** One of the built programs, run to its end (killed after `limitMs`), its output collected. */
function runBinAsync(
  bin: string,
  args: string[],
  env: Record<string, string>,
  cwd: string | undefined,
  limitMs: number,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: cleanEnv(env),
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code, stdout, stderr });
    });
  });
}
