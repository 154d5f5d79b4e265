// `harbor-sidecar check`: for staging hooks and debug shells. Lists every
// Harbor service with what users reach and which variable holds its port; for
// HTTPS services, the pair chosen and why, its inspection and the backend.
// Every problem is listed at once. Exit 1 when what was checked is wrong, 78
// when the configuration itself cannot be read, 0 with warnings only.

import { readFileSync } from 'node:fs';
import type { Inspection } from '../../certs/inspect.js';
import { displayPath } from '../../certs/pair.js';
import { type Selection, selectPair } from '../../certs/select.js';
import { staplingTarget } from '../../certs/stapler.js';
import { validatePair } from '../../certs/validate.js';
import { formatAddress, type HarborService, protocolLabel } from '../../config/index.js';
import type { SidecarSettings } from '../../config/settings.js';
import { CATALOGUE, HarborError, isWarning, type Problem } from '../../errors/index.js';
import type { CommandContext } from '../context.js';

interface ServiceReport {
  readonly name: string;
  readonly protocol: string;
  readonly int_port: number;
  readonly variable: string;
  /** What users dial: ext_hostname (else hostname, else host) and the external port. */
  readonly reach: string | null;
  readonly backend: string | null;
  /** How HTTP/2 clients' streams reach the backend: http1 or h2c (--backend-protocol); null without a backend. */
  readonly backendProtocol: 'http1' | 'h2c' | null;
  readonly pair: { certFile: string; keyFile: string; caFile: string | null; reason: string } | null;
  readonly inspection: Inspection | null;
  /** OCSP stapling: the responder the certificate names, or why it is off. */
  readonly ocsp: { readonly responder: string | null; readonly off: string | null } | null;
  readonly problems: readonly Problem[];
}

function reachOf(service: HarborService): string | null {
  const host = service.extHostname || service.extHost || service.hostname || service.host;
  if (service.port === undefined) return host || null;
  return `${host || '<node>'}:${service.port}`;
}

function checkService(service: HarborService, settings: SidecarSettings, now: Date): ServiceReport {
  const problems: Problem[] = [];
  const base = {
    name: service.name,
    protocol: protocolLabel(service),
    int_port: service.intPort,
    variable: service.variable,
    reach: reachOf(service),
  };
  if (!service.https)
    return {
      ...base,
      backend: null,
      backendProtocol: null,
      pair: null,
      inspection: null,
      ocsp: null,
      problems,
    };
  if (settings.backend === undefined) {
    problems.push({
      code: 'E_BACKEND',
      message: `service "${service.name}": no backend to forward HTTPS to; set HARBOR_BACKEND, --backend or PORT`,
    });
  }
  let selection: Selection | undefined;
  try {
    selection = selectPair({
      service: service.name,
      appRoot: settings.appRoot,
      certsDir: settings.certsDir,
      clientCa: settings.clientCa,
    });
    problems.push(...selection.warnings);
  } catch (error) {
    if (!(error instanceof HarborError)) throw error;
    problems.push({ code: error.code, message: error.message });
  }
  let inspection: Inspection | null = null;
  if (selection) {
    const validation = validatePair(selection, {
      now: () => now,
      passphrase: settings.keyPassphrase,
      warnDays: settings.warnDays,
      displayRoot: settings.appRoot,
      hostnames: [service.extHostname, service.hostname, service.extHost, service.host].filter(
        (h) => h !== '',
      ),
    });
    problems.push(...validation.problems);
    inspection = validation.inspection ?? null;
  }
  const target = selection ? staplingTarget(readFileSync(selection.certFile)) : undefined;
  return {
    ...base,
    ocsp: target === undefined ? null : { responder: target.responder, off: target.reason },
    backend: settings.backend ? formatAddress(settings.backend) : null,
    backendProtocol: settings.backend ? settings.backendProtocol : null,
    pair: selection
      ? {
          certFile: selection.certFile,
          keyFile: selection.keyFile,
          caFile: selection.caFile ?? null,
          reason: selection.reason,
        }
      : null,
    inspection,
    problems,
  };
}

const DAY_MS = 86_400_000;

function describe(report: ServiceReport, now: Date, appRoot: string): string {
  const shown = (file: string) => displayPath(file, appRoot);
  const lines = [`${report.name}  ${report.protocol}  int_port ${report.int_port}  ($${report.variable})`];
  lines.push(`  users reach: ${report.reach ?? '(no external port in the credentials)'}`);
  if (report.protocol.startsWith('https')) {
    const h2c =
      report.backendProtocol === 'h2c' ? ' (HTTP/2 clients over h2c, HTTP/1.1 clients over HTTP/1.1)' : '';
    lines.push(`  backend: ${report.backend ?? '(none)'}${h2c}`);
  }
  if (report.pair) {
    lines.push(
      `  pair: ${shown(report.pair.certFile)} + ${shown(report.pair.keyFile)} (${report.pair.reason})`,
    );
    if (report.pair.caFile) lines.push(`  client CA: ${shown(report.pair.caFile)}`);
  }
  const i = report.inspection;
  if (i) {
    const days = Math.floor((i.notAfter.getTime() - now.getTime()) / DAY_MS);
    lines.push(`  subject: ${i.subject}`);
    lines.push(`  names: ${[...i.sans.dns, ...i.sans.ip].join(', ') || '(none)'}`);
    lines.push(`  issuer: ${i.issuer}${i.selfSigned ? ' (self-signed)' : ''}`);
    lines.push(`  valid: ${i.notBefore.toISOString()} to ${i.notAfter.toISOString()} (${days} days left)`);
    lines.push(`  sha256: ${i.fingerprint256}`);
    lines.push(
      `  key: ${i.privateKey?.description ?? 'unreadable'}, ${i.keyMatches ? 'matches' : 'does NOT match'} the certificate; chain of ${i.chain.length} ${i.chainInOrder ? 'in order' : 'OUT OF ORDER'}`,
    );
  }
  if (report.ocsp) {
    lines.push(
      report.ocsp.off === null
        ? `  ocsp: stapled, fetched in the background from ${report.ocsp.responder}`
        : `  ocsp: off (${report.ocsp.off})`,
    );
  }
  return lines.join('\n');
}

export async function checkCommand(context: CommandContext): Promise<number> {
  const { settings, stdout } = context;
  const now = new Date();
  const reports = settings.services.map((service) => checkService(service, settings, now));
  const general: Problem[] = [...context.problems];
  if (settings.require && settings.services.length === 0 && !general.some((p) => !isWarning(p))) {
    general.push({
      code: 'E_NO_SERVICE',
      message: 'no Harbor service found in STACKATO_SERVICES, HELION_SERVICES or VCAP_SERVICES (--require)',
    });
  }
  const all = [...general, ...reports.flatMap((r) => r.problems)];
  const errors = all.filter((p) => !isWarning(p));
  const configBroken = general.some(
    (p) => !isWarning(p) && CATALOGUE[p.code].kind === 'config' && p.code !== 'E_NO_SERVICE',
  );
  const status = errors.length === 0 ? 0 : configBroken ? 78 : 1;
  if (settings.json) {
    stdout.write(
      `${JSON.stringify({ ok: errors.length === 0, services: reports, problems: all }, null, 2)}\n`,
    );
    return status;
  }
  const blocks = reports.map((r) => describe(r, now, settings.appRoot));
  if (reports.length === 0) blocks.push('no Harbor services');
  const verdict =
    all.length === 0
      ? 'ok'
      : all.map((p) => `${isWarning(p) ? 'warning' : 'error'}: ${p.message} [${p.code}]`).join('\n');
  stdout.write(`${blocks.join('\n\n')}\n\n${verdict}\n`);
  return status;
}
