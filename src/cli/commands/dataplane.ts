// `harbor-node dataplane clean`: removes the nftables tables the kernel data
// plane (--dataplane nftables) left in place. The node never deletes them at
// exit, since live flows would lose their translation; an operator who turns
// the kernel data plane off (or uninstalls the node) runs this once.
import { HarborError } from '../../errors/index.js';
import { runNft } from '../../node/dataplane/nft.js';
import { dataplaneHolder } from '../../node/dataplane/owner.js';
import { FAMILIES, TABLE } from '../../node/dataplane/rules.js';
import { describeProcess } from '../../sockets/port-owner.js';
import { unknownCommand } from '../args.js';
import { reportError } from '../report.js';

const PROGRAM = 'harbor-node dataplane';

const HELP = `Usage: harbor-node dataplane clean

Removes the nftables tables of --dataplane nftables (${FAMILIES.map((f) => `${f} ${TABLE}`).join(', ')}).
Connections the kernel forwarded keep going only while their conntrack entries
live. Refused while a harbor-node runs the data plane here: stop it first.
Needs CAP_NET_ADMIN.
`;

interface Streams {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export async function dataplaneCommand(
  argv: readonly string[],
  { stdout, stderr }: Streams,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout.write(HELP);
    return 0;
  }
  try {
    if (argv[0] !== 'clean' || argv.length > 1) {
      throw new HarborError(
        'E_USAGE',
        argv[0] === undefined || argv[0] === 'clean'
          ? `usage: ${HELP.split('\n')[0]!.slice(7)}`
          : unknownCommand(argv[0], ['clean']),
      );
    }
    // A running node would rebuild its table within seconds: removing it would only disturb it.
    const holder = await dataplaneHolder();
    if (holder !== null) {
      throw new HarborError(
        'E_DATAPLANE',
        `a harbor-node, ${describeProcess(holder)}, runs the kernel data plane in this network namespace: stop it first (it keeps its tables up while it runs)`,
      );
    }
    // `add` first: deleting a table that is not there is not an error here.
    const script = FAMILIES.flatMap((f) => [`add table ${f} ${TABLE}`, `delete table ${f} ${TABLE}`]).join(
      '\n',
    );
    await runNft(`${script}\n`);
    stdout.write(`removed ${FAMILIES.map((f) => `${f} ${TABLE}`).join(' and ')}\n`);
    return 0;
  } catch (error) {
    return reportError(error, stderr, PROGRAM);
  }
}
