// The harbor-sidecar program: with the harbor-node one, the only code that
// reads process.argv and process.env. It resolves settings once and hands them to
// the command chosen from an explicit map.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolveSidecarSettings, SIDECAR_SETTINGS } from '../config/settings.js';
import { HarborError } from '../errors/index.js';
import { optionsFor, parseCommandLine, unknownCommand } from './args.js';
import { CERTS_OPTIONS } from './commands/certs-options.js';
import { helpText } from './commands/help.js';
import type { Command, CommandContext } from './context.js';
import { reportError } from './report.js';

// Loaded on demand: `env` in a staging hook should not pay for the TLS proxy, node-forge or prom-client.
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  env: async () => (await import('./commands/env.js')).envCommand,
  exec: async () => (await import('./commands/exec.js')).execCommand,
  check: async () => (await import('./commands/check.js')).checkCommand,
  certs: async () => (await import('./commands/certs.js')).certsCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
};

export async function main(argv: readonly string[]): Promise<number> {
  const { stdout, stderr } = process;
  try {
    const options = optionsFor(SIDECAR_SETTINGS, { ...CERTS_OPTIONS, version: { type: 'boolean' } });
    const { flags, positionals } = parseCommandLine(argv, options);
    const [word, ...rest] = positionals;
    if (flags.version) {
      stdout.write(`${readVersion()}\n`);
      return 0;
    }
    if (flags.help || word === 'help') {
      stdout.write(helpText(word === 'help' ? rest[0] : word));
      return 0;
    }
    const name = word ?? 'run';
    const load = COMMANDS[name];
    if (!load) throw new HarborError('E_USAGE', unknownCommand(name, Object.keys(COMMANDS)));
    const { settings, problems } = resolveSidecarSettings(
      flags,
      process.env,
      {
        cwd: process.cwd(),
        hostname: hostname(),
        readFile: (path) => readFileSync(path, 'utf8'),
        stdoutIsTerminal: Boolean(stdout.isTTY),
      },
      name,
    );
    const context: CommandContext = {
      settings,
      problems,
      flags,
      positionals: rest,
      env: process.env,
      stdout,
      stderr,
    };
    const command = await load();
    return await command(context);
  } catch (error) {
    return reportError(error, stderr, 'harbor-sidecar');
  }
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
