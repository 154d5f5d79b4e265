// `harbor-sidecar env`: the STACKATO_HARBOR* variables, for `eval` in a hook.
import { formatVariables, portVariables } from '../../config/variables.js';
import type { CommandContext } from '../context.js';
import { failOnErrors, printProblems } from '../report.js';

/**
 * The port variables for `env` and `exec`: the exit status instead when the
 * configuration has errors (printed, with any warnings, to stderr).
 */
export function portVariablesOrStatus(context: CommandContext): Map<string, string> | number {
  const { settings, problems, stderr } = context;
  const failed = failOnErrors(problems, stderr);
  if (failed !== undefined) return failed;
  printProblems(problems, stderr);
  return portVariables(settings.services, {
    name: settings.appName,
    upcaseAlreadySet: settings.appNameUpcaseSet,
  });
}

export async function envCommand(context: CommandContext): Promise<number> {
  const variables = portVariablesOrStatus(context);
  if (typeof variables === 'number') return variables;
  context.stdout.write(formatVariables(variables, context.settings.format));
  return 0;
}
