// The bench scripts' command lines: an unknown option, an option without its value or a
// number that is not one is a usage error (exit 2) told in one line that names the option,
// never a stack trace, and never a run that measures nothing (`--rounds x` made zero rounds).
import { parseArgs } from 'node:util';

/** Prints `message` and the script's usage line, and exits 2. */
export function usageError(message, usage) {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

/** The option values of `parseArgs({ options })`; a command line it refuses is a usage error. */
export function parseOptions(usage, options) {
  try {
    return parseArgs({ options }).values;
  } catch (error) {
    return usageError(error.message, usage);
  }
}

/** `values[name]` as a whole number from `min` to `max`; anything else is a usage error. */
export function wholeNumber(values, name, min, max, usage) {
  const text = values[name];
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    usageError(`--${name}: ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`, usage);
  }
  return n;
}
