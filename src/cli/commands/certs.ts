// `harbor-sidecar certs generate`: a self-signed pair for local use, written
// atomically, the key 0600. Its flags are arguments of this one command, not
// settings, so they have no environment variables.
import { resolve } from 'node:path';
import { type GeneratedKeyType, generateSelfSigned } from '../../certs/index.js';
import { HarborError } from '../../errors/index.js';
import type { CommandContext } from '../context.js';

export async function certsCommand(context: CommandContext): Promise<number> {
  const { flags, positionals, stdout } = context;
  const [sub, ...extra] = positionals;
  if (sub !== 'generate' || extra.length > 0) {
    throw new HarborError(
      'E_USAGE',
      `certs needs "generate" (got ${sub === undefined ? 'nothing' : `"${positionals.join(' ')}"`})`,
    );
  }
  const name = flags.name;
  const out = flags.out;
  if (typeof name !== 'string') throw new HarborError('E_USAGE', 'certs generate needs --name SERVICE');
  if (typeof out !== 'string') throw new HarborError('E_USAGE', 'certs generate needs --out DIR');
  const days = typeof flags.days === 'string' ? Number(flags.days) : undefined;
  if (days !== undefined && !/^\d+$/.test(String(flags.days))) {
    throw new HarborError('E_USAGE', `--days ${JSON.stringify(flags.days)}: must be a whole number`);
  }
  const hosts = Array.isArray(flags.host) ? (flags.host as string[]) : [];
  const pair = generateSelfSigned({
    name,
    hosts,
    days,
    type: typeof flags.type === 'string' ? (flags.type as GeneratedKeyType) : undefined,
    outDir: resolve(out),
    force: flags.force === true,
  });
  const i = pair.inspection;
  stdout.write(
    `wrote ${pair.certFile} and ${pair.keyFile} (key 0600)\n` +
      `  ${i.publicKey.description}, ${i.subject}, names ${[...i.sans.dns, ...i.sans.ip].join(', ')}\n` +
      `  valid until ${i.notAfter.toISOString()}, sha256 ${i.fingerprint256}\n` +
      '  self-signed: for local use only\n',
  );
  return 0;
}
