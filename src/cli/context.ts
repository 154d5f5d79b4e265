// What every command receives: resolved settings, the problems found while
// resolving them, and the process's streams and environment, passed in so
// that tests can run commands in-process.
import type { Environment, FlagValues, SidecarSettings } from '../config/settings.js';
import type { Problem } from '../errors/index.js';

export interface CommandContext {
  readonly settings: SidecarSettings;
  readonly problems: readonly Problem[];
  readonly flags: FlagValues;
  /** Positionals after the command word (and for exec, the command to run). */
  readonly positionals: readonly string[];
  readonly env: Environment;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** A command returns its exit status; long-running ones resolve when they are done. */
export type Command = (context: CommandContext) => Promise<number>;
