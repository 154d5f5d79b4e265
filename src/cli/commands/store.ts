// `harbor-node store copy --from STORE --to STORE`: moves a node's services
// (ports, ids, credentials, instances) from one store to another, e.g. a
// single node's state file into a cluster's Redis, so apps keep working.
// Services the destination already has (same id) are left as they are.
import { parseArgs } from 'node:util';
import { HarborError, isHarborError } from '../../errors/index.js';
import { createLogger } from '../../log/index.js';
import type { FixedCredentials } from '../../node/state.js';
import { createStore, parseStoreLocation, type StoreLocation } from '../../node/store/index.js';
import { reportError } from '../report.js';

const PROGRAM = 'harbor-node store';

const HELP = `Usage: harbor-node store copy --from STORE --to STORE [--host IP --hostname NAME --node-id ID]

Copies every service (port, id, credentials, instances) from one store to another:
  harbor-node store copy --from file:/var/lib/harbor/state.json --to redis://10.0.0.7:6379

A store is file:PATH, memory, redis://, rediss:// or redis-sentinel://...; the password
comes from HARBOR_NODE_STORE_PASSWORD or the URL. Services the destination already
holds (same id) are kept as they are; a port the destination gives another service is
an error. Services from a state file written before clusters carry no host, hostname
or node_id: give the old node's --host, --hostname, --node-id (and --ext-host,
--ext-hostname if it had them) so their credentials stay what the apps were given.
`;

interface Streams {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

function location(flag: string, text: string | undefined, password: string | undefined): StoreLocation {
  if (!text)
    throw new HarborError(
      'E_USAGE',
      `--${flag} is required (a store such as file:PATH or redis://host:port)`,
    );
  const parsed = parseStoreLocation(text, password);
  if (typeof parsed === 'string') throw new HarborError('E_SETTING', `--${flag}: ${parsed}`);
  return parsed;
}

export async function storeCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  { stdout, stderr }: Streams,
): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        host: { type: 'string' },
        hostname: { type: 'string' },
        'node-id': { type: 'string' },
        'ext-host': { type: 'string' },
        'ext-hostname': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    return reportError(new HarborError('E_USAGE', (error as Error).message.split('\n')[0]!), stderr, PROGRAM);
  }
  if (values.help || positionals.length === 0) {
    stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  if (positionals[0] !== 'copy' || positionals.length > 1) {
    return reportError(
      new HarborError('E_USAGE', `unknown store command "${positionals.join(' ')}" (try: store copy)`),
      stderr,
      PROGRAM,
    );
  }
  const logger = createLogger({ level: 'warn', pretty: false, name: PROGRAM });
  try {
    const from = await createStore(
      location('from', values.from as string, env.HARBOR_NODE_STORE_PASSWORD),
      logger,
      { readOnly: true },
    );
    const to = await createStore(location('to', values.to as string, env.HARBOR_NODE_STORE_PASSWORD), logger);
    try {
      const source = await from.open();
      if (!source)
        throw new HarborError('E_STORE_UNAVAILABLE', `--from ${from.description} cannot be reached`);
      const destination = await to.open();
      if (!destination)
        throw new HarborError('E_STORE_UNAVAILABLE', `--to ${to.description} cannot be reached`);
      const have = new Set(destination.services.map((s) => s.id));
      let copied = 0;
      let kept = 0;
      for (const service of source.services) {
        if (have.has(service.id)) {
          kept++;
          continue;
        }
        const credentials = service.credentials ?? oldCredentials(values, service.name);
        await to.createService({ ...service, credentials, instances: [] });
        for (const { remainingMs: _left, ...instance } of service.instances)
          await to.putInstance(service.id, instance);
        copied++;
        stdout.write(`copied ${service.name} (${service.id}) on port ${service.port}\n`);
      }
      stdout.write(
        `${copied} service(s) copied from ${from.description} to ${to.description}; ${kept} already there\n`,
      );
      return 0;
    } finally {
      await from.close();
      await to.close();
    }
  } catch (error) {
    if (isHarborError(error) && error.code === 'E_PORT_TAKEN') {
      stderr.write(
        `${PROGRAM}: ${error.message}: the destination gives that port to another service; nothing after it was copied [E_PORT_TAKEN]\n`,
      );
      return 1;
    }
    return reportError(error, stderr, PROGRAM);
  }
}

function oldCredentials(
  values: Record<string, string | boolean | undefined>,
  name: string,
): FixedCredentials {
  const host = values.host as string | undefined;
  const nodeId = values['node-id'] as string | undefined;
  if (!host || !nodeId) {
    throw new HarborError(
      'E_USAGE',
      `service ${name} was stored before credentials were kept with it: give the old node's --host and --node-id (and --hostname, --ext-host, --ext-hostname if it had them)`,
    );
  }
  return {
    host,
    hostname: (values.hostname as string | undefined) ?? host,
    node_id: nodeId,
    ...((values['ext-host'] || values['ext-hostname']) && {
      ext_host: (values['ext-host'] as string | undefined) ?? '',
      ext_hostname: (values['ext-hostname'] as string | undefined) ?? '',
    }),
  };
}
