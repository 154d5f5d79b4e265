// `harbor-sidecar --help`: commands and settings, from the same table the
// configuration pipeline reads.
import { SIDECAR_SETTINGS } from '../../config/settings.js';

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
    'Make a self-signed pair: --name S --host H [--host H2...] --out DIR [--days N] [--type ecdsa|rsa].',
  ],
  ['status', 'Ask a running sidecar (through its admin endpoint) what it is doing; exit 1 when not ready.'],
];

export function helpText(): string {
  let text = 'Usage: harbor-sidecar [command] [flags]\n\nCommands:\n';
  for (const [name, summary] of COMMAND_SUMMARIES) text += `  ${name.padEnd(22)}${summary}\n`;
  text += '\nSettings (a flag wins over its environment variable):\n';
  for (const d of SIDECAR_SETTINGS) {
    const flag = d.type === 'boolean' ? `--${d.flag}` : `--${d.flag} VALUE`;
    text += `  ${flag.padEnd(28)}${d.env.join(', ')}\n  ${''.padEnd(28)}${d.description}${d.defaultText ? ` Default: ${d.defaultText}.` : ''}\n`;
  }
  text +=
    '\nAlso read: STACKATO_SERVICES, HELION_SERVICES, VCAP_SERVICES, VCAP_APPLICATION, STACKATO_APP_NAME,\n';
  text += 'PORT, VCAP_APP_PORT, HARBOR_KEY_PASSPHRASE, HARBOR_NODE_TOKEN, CF_INSTANCE_GUID.\n';
  return text;
}
