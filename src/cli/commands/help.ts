// `harbor-sidecar --help`: commands and settings, from the same table the
// configuration pipeline reads.
import { commandReads, SIDECAR_SETTINGS } from '../../config/settings.js';

export const COMMAND_SUMMARIES: readonly (readonly [string, string])[] = [
  ['run', 'Serve: HTTPS for each *https service, forwards, node registration (the default command).'],
  ['env', 'Print the STACKATO_HARBOR* variables (--format shell|dotenv|json).'],
  [
    'exec -- CMD ARGS...',
    'Run CMD with the STACKATO_HARBOR* variables set; signals and exit status pass through.',
  ],
  ['check', 'Check services and certificates for staging hooks and debug shells; exit 1 on problems.'],
  [
    'certs generate',
    'Make a self-signed pair: --name S --host H [--host H2...] --out DIR [--days N] [--type ecdsa|rsa] [--force].',
  ],
  ['status', 'Ask a running sidecar (through its admin endpoint) what it is doing; exit 1 when not ready.'],
];

/** The flags of `certs generate`, which are its arguments, not settings. */
const CERTS_FLAGS: readonly (readonly [string, string])[] = [
  ['--name SERVICE', 'The service name: the files are SERVICE.crt and SERVICE.key.'],
  ['--host H', 'A DNS name or IP address the certificate is for (repeat it; the first is the common name).'],
  ['--out DIR', 'The folder to write them to (made if missing).'],
  ['--days N', 'Validity in days (default 365).'],
  ['--type ecdsa|rsa', 'EC P-256 (the default) or RSA 2048.'],
  ['--force', 'Replace a pair of that name that exists already (refused otherwise).'],
];

/** `--help`, or `COMMAND --help`: that command's usage and only the settings it reads. */
export function helpText(command?: string): string {
  const entry = COMMAND_SUMMARIES.find(([name]) => name.split(' ')[0] === command);
  if (command === undefined || entry === undefined) return generalHelp();
  let text = `Usage: harbor-sidecar ${entry[0]} [flags]\n\n${entry[1]}\n`;
  if (command === 'certs') {
    text += '\nFlags:\n';
    for (const [flag, what] of CERTS_FLAGS) text += `  ${flag.padEnd(28)}${what}\n`;
  }
  const settings = SIDECAR_SETTINGS.filter((d) => commandReads(d, command));
  text += '\nSettings it reads (a flag wins over its environment variable):\n';
  text += settingLines(settings);
  return text;
}

function settingLines(settings: typeof SIDECAR_SETTINGS): string {
  let text = '';
  for (const d of settings) {
    const flag = d.type === 'boolean' ? `--${d.flag}` : `--${d.flag} VALUE`;
    text += `  ${flag.padEnd(28)}${d.env.join(', ')}\n  ${''.padEnd(28)}${d.description}${d.defaultText ? ` Default: ${d.defaultText}.` : ''}\n`;
  }
  return text;
}

function generalHelp(): string {
  let text = 'Usage: harbor-sidecar [command] [flags]\n\nCommands (harbor-sidecar COMMAND --help for one):\n';
  for (const [name, summary] of COMMAND_SUMMARIES) text += `  ${name.padEnd(22)}${summary}\n`;
  text += '\nSettings (a flag wins over its environment variable):\n';
  text += settingLines(SIDECAR_SETTINGS);
  text +=
    '\nAlso read: STACKATO_SERVICES, HELION_SERVICES, VCAP_SERVICES, VCAP_APPLICATION, STACKATO_APP_NAME,\n';
  text += 'PORT, VCAP_APP_PORT, HARBOR_KEY_PASSPHRASE, HARBOR_NODE_TOKEN, CF_INSTANCE_GUID.\n';
  return text;
}
