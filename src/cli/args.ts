// Turning argv into a command and flag values, with usage errors (exit 2)
// that name the flag. Built on node:util parseArgs, strict.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { FlagValues, SettingDefinition } from '../config/settings.js';
import { HarborError } from '../errors/index.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function optionsFor(definitions: readonly SettingDefinition[], extra: OptionSpec = {}): OptionSpec {
  const options: OptionSpec = { help: { type: 'boolean', short: 'h' }, ...extra };
  for (const d of definitions) {
    options[d.flag] =
      d.type === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: d.type === 'list' };
  }
  return options;
}

export interface ParsedCommandLine {
  readonly flags: FlagValues;
  readonly positionals: readonly string[];
}

export function parseCommandLine(args: readonly string[], options: OptionSpec): ParsedCommandLine {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { flags: values as FlagValues, positionals };
  } catch (error) {
    throw new HarborError('E_USAGE', usageMessage(error as NodeJS.ErrnoException, options), { cause: error });
  }
}

/** parseArgs' complaint as one line that names the flag, with the closest known one for a typo. */
function usageMessage(error: NodeJS.ErrnoException, options: OptionSpec): string {
  const text = error.message;
  const flags = Object.keys(options).map((name) => `--${name}`);
  const unknown = /Unknown option '([^']+)'/.exec(text)?.[1];
  if (unknown !== undefined) {
    const flag = unknown.split('=')[0]!;
    const near = closest(flag, flags);
    return `unknown flag ${flag}${near === undefined ? '' : ` (did you mean ${near}?)`}`;
  }
  const missing = /Option '(-\S+)(?:, (--\S+))? <value>' argument missing/.exec(text);
  if (missing) return `${missing[2] ?? missing[1]} needs a value`;
  const noValue = /Option '(-\S+)(?:, (--\S+))?' does not take an argument/.exec(text);
  if (noValue) return `${noValue[2] ?? noValue[1]} takes no value`;
  return text.split('\n')[0] ?? 'bad command line';
}

/** "unknown command", with the nearest command for a typo, and the list. */
export function unknownCommand(word: string, commands: readonly string[]): string {
  const near = closest(word, commands);
  return `unknown command "${word}"${near === undefined ? '' : ` (did you mean ${near}?)`}; commands: ${commands.join(', ')}`;
}

/** The candidate nearest to `word` by edit distance, when near enough to be a typo of it. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(1, Math.floor(word.replace(/^-+/, '').length / 3));
  return bestDistance <= allowed ? best : undefined;
}

/** Edits (insert, delete, replace, swap two neighbours) from `a` to `b`: a swapped pair is one typo. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(
        rows[i - 1]![j]! + 1,
        row[j - 1]! + 1,
        rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
