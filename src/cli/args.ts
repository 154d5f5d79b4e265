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
    // parseArgs messages already name the flag ("Unknown option '--x'"); keep them on one line.
    const message = (error as Error).message.split('\n')[0] ?? 'bad command line';
    throw new HarborError('E_USAGE', message, { cause: error });
  }
}
