// The harbor program: a developer's client of the Harbor node API, with the
// seed's verbs (create-service, service) and the manifest's services: block.
// The only code of it that reads process.argv and process.env.
import { readFileSync } from 'node:fs';
import { NODE_DEFAULTS } from '../config/defaults.js';
import { parseChoice } from '../config/values.js';
import type { VariableFormat } from '../config/variables.js';
import { HarborError } from '../errors/index.js';
import { NodeClient } from '../harbor/client.js';
import {
  type CommandIO,
  createService,
  deleteService,
  manifest,
  service,
  services,
} from '../harbor/commands.js';
import { readNodeCa } from '../node-api/index.js';
import { parseCommandLine, unknownCommand } from './args.js';
import { reportError } from './report.js';

const PROGRAM = 'harbor';
const DEFAULT_NODE_URL = `http://${NODE_DEFAULTS.api.host}:${NODE_DEFAULTS.api.port}`;

const COMMANDS: Readonly<Record<string, (io: CommandIO) => Promise<number>>> = {
  'create-service': createService,
  service,
  services,
  'delete-service': deleteService,
  manifest,
};

const HELP = `Usage: harbor COMMAND [ARGS] [flags]

Asks a Harbor node for ports and shows what they are (the seed's stackato verbs).

Commands:
  create-service [harbor] NAME   provision a port; prints the credentials and what each field means
  service NAME                   the settings and credentials, instances, UDP primary, traffic, conflicts
  services                       every service of the node, as a table
  delete-service NAME            remove a service and free its port
  manifest apply [PATH]          create the Harbor services of manifest.yml that do not exist yet (reusing
                                 those that do) and print the app's STACKATO_SERVICES and VCAP_SERVICES:
                                   eval "$(harbor manifest apply)"
  manifest delete [PATH]         delete them

Flags:
  --node-url URL[,URL...]      HARBOR_NODE_URL    the node API; several: the first that answers (default ${DEFAULT_NODE_URL})
                               HARBOR_NODE_TOKEN  the API's bearer token, when it has one
                               HARBOR_NODE_CA     PEM file of the CA an https:// node's certificate must chain to
  --app NAME                   the manifest's app (several under applications:), or the name \${name} stands for
  --format shell|dotenv|json   manifest apply's environment (default shell)
  --json                       print what the node answered, as JSON
  -h, --help                   this text

Exit status: 0 done, 1 the node refused or could not be reached, 2 usage, 78 configuration.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  'node-url': { type: 'string' },
  app: { type: 'string' },
  format: { type: 'string' },
} as const;

/** The node URLs: the flag, else the variable, else the default; each must be http(s)://host[:port]. */
function nodeUrls(flag: string | undefined, env: NodeJS.ProcessEnv): string[] {
  const source = flag !== undefined ? '--node-url' : 'HARBOR_NODE_URL';
  const text = flag ?? env.HARBOR_NODE_URL ?? DEFAULT_NODE_URL;
  const urls = text
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0)
    throw new HarborError('E_SETTING', `${source} is empty: give a node URL (${DEFAULT_NODE_URL})`);
  return urls.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new HarborError('E_SETTING', `${source} ${JSON.stringify(u)}: not a URL (http://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new HarborError('E_SETTING', `${source} ${JSON.stringify(u)}: must be http:// or https://`);
    }
    return url.origin;
  });
}

/** HARBOR_NODE_CA's certificates, when it is set. */
function nodeCa(env: NodeJS.ProcessEnv): string | undefined {
  const file = env.HARBOR_NODE_CA;
  if (!file) return undefined;
  const read = readNodeCa(file, 'HARBOR_NODE_CA', (path) => readFileSync(path, 'utf8'));
  if (!read.ok) throw new HarborError(read.problem.code, read.problem.message);
  return read.pem;
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { stdout, stderr } = process;
  try {
    const { flags, positionals } = parseCommandLine(argv, OPTIONS);
    const [word, ...args] = positionals;
    if (flags.help || word === 'help') {
      stdout.write(HELP);
      return 0;
    }
    if (word === undefined) {
      throw new HarborError('E_USAGE', `a command is needed (${Object.keys(COMMANDS).join(', ')})`);
    }
    const command = COMMANDS[word];
    if (!command) {
      throw new HarborError('E_USAGE', unknownCommand(word, Object.keys(COMMANDS)));
    }
    const format = parseChoice<VariableFormat>((flags.format as string | undefined) ?? 'shell', [
      'shell',
      'dotenv',
      'json',
    ]);
    if (!format.ok) throw new HarborError('E_USAGE', `--format: ${format.reason}`);
    const client = new NodeClient(
      nodeUrls(flags['node-url'] as string | undefined, env),
      env.HARBOR_NODE_TOKEN || undefined,
      nodeCa(env),
    );
    return await command({
      client,
      args,
      json: flags.json === true,
      app: flags.app as string | undefined,
      format: format.value,
      out: (text) => stdout.write(text),
      note: (text) => stderr.write(text),
    });
  } catch (error) {
    return reportError(error, stderr, PROGRAM);
  }
}
