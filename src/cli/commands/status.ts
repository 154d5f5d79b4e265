// `harbor-sidecar status`: ask a running sidecar, through the admin endpoint
// named by --admin / HARBOR_ADMIN, what it is doing. Exit 1 when not ready;
// the image's HEALTHCHECK runs this.
import { runStatusCommand } from '../../admin/index.js';
import { HarborError } from '../../errors/index.js';
import type { CommandContext } from '../context.js';
import { failOnErrors } from '../report.js';

export async function statusCommand(context: CommandContext): Promise<number> {
  const { settings, stdout, stderr } = context;
  // Only the settings status reads matter here; a broken STACKATO_SERVICES must not fail a health check.
  const own = context.problems.filter((p) => /^(--admin|HARBOR_ADMIN|--json|HARBOR_JSON)\b/.test(p.message));
  const failed = failOnErrors(own, stderr);
  if (failed !== undefined) return failed;
  if (settings.admin === 'off') {
    throw new HarborError(
      'E_SETTING',
      'status needs the admin endpoint, but HARBOR_ADMIN (or --admin) is off',
    );
  }
  // What this configuration would serve: the sidecar that answers must be serving some of it.
  const expectedServices = settings.services
    .filter((s) => s.https || settings.forwards.some((f) => f.service === s.name))
    .map((s) => s.name);
  const result = await runStatusCommand({
    address: settings.admin,
    json: settings.json,
    timeoutMs: 3000,
    expectedServices,
  });
  stdout.write(result.output);
  return result.exitStatus;
}
