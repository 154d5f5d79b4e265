// The harbor-sidecar program: with the harbor-node one, the only code that
// reads process.argv and process.env. It resolves settings once and hands them to
// the command chosen from an explicit map.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolveSidecarSettings, SIDECAR_SETTINGS } from '../config/settings.js';
import { HarborError } from '../errors/index.js';
import { optionsFor, parseCommandLine } from './args.js';
import { CERTS_OPTIONS, certsCommand } from './commands/certs.js';
import { checkCommand } from './commands/check.js';
import { envCommand } from './commands/env.js';
import { execCommand } from './commands/exec.js';
import { helpText } from './commands/help.js';
import { runCommand } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import type { Command, CommandContext } from './context.js';
import { reportError } from './report.js';

const COMMANDS: Readonly<Record<string, Command>> = {
  run: runCommand,
  env: envCommand,
  exec: execCommand,
  check: checkCommand,
  certs: certsCommand,
  status: statusCommand,
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
      stdout.write(helpText());
      return 0;
    }
    const name = word ?? 'run';
    const command = COMMANDS[name];
    if (!command)
      throw new HarborError(
        'E_USAGE',
        `unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`,
      );
    const { settings, problems } = resolveSidecarSettings(flags, process.env, {
      cwd: process.cwd(),
      hostname: hostname(),
      readFile: (path) => readFileSync(path, 'utf8'),
      stdoutIsTerminal: Boolean(stdout.isTTY),
    });
    const context: CommandContext = {
      settings,
      problems,
      flags,
      positionals: rest,
      env: process.env,
      stdout,
      stderr,
    };
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
