// How a command ends: problems printed one per line to stderr, and the exit
// status their kind gives.
import { CATALOGUE, exitStatusOf, HarborError, isWarning, type Problem } from '../errors/index.js';

export function printProblems(problems: readonly Problem[], stderr: NodeJS.WritableStream): void {
  for (const p of problems) stderr.write(`${isWarning(p) ? 'warning' : 'error'}: ${p.message} [${p.code}]\n`);
}

/** Prints the problems and returns the exit status when any is an error, else undefined. */
export function failOnErrors(
  problems: readonly Problem[],
  stderr: NodeJS.WritableStream,
): number | undefined {
  const errors = problems.filter((p) => !isWarning(p));
  if (errors.length === 0) return undefined;
  printProblems(problems, stderr);
  return exitStatusOf(problems);
}

export function reportError(error: unknown, stderr: NodeJS.WritableStream, program: string): number {
  if (error instanceof HarborError) {
    stderr.write(`${program}: ${error.message} [${error.code}]\n`);
    if (CATALOGUE[error.code].kind === 'usage') stderr.write(`Try '${program} --help'.\n`);
    return error.exitStatus;
  }
  stderr.write(`${program}: unexpected failure: ${(error as Error)?.stack ?? String(error)}\n`);
  return 70;
}
