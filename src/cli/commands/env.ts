// `harbor-sidecar env`: the STACKATO_HARBOR* variables, for `eval` in a hook.
import { formatVariables, portVariables } from '../../config/variables.js';
import type { CommandContext } from '../context.js';
import { failOnErrors, printProblems } from '../report.js';

export async function envCommand(context: CommandContext): Promise<number> {
  const { settings, problems, stdout, stderr } = context;
  const failed = failOnErrors(problems, stderr);
  if (failed !== undefined) return failed;
  printProblems(problems, stderr);
  const variables = portVariables(settings.services, {
    name: settings.appName,
    upcaseAlreadySet: settings.appNameUpcaseSet,
  });
  stdout.write(formatVariables(variables, settings.format));
  return 0;
}
