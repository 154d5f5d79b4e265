// The kernel data plane's start-up checks that need no privileges to test: a
// process without CAP_NET_ADMIN is told so in one line (E_DATAPLANE); with it,
// the programs are looked for (the CLI test in nftables.test.ts runs the rest).
import t from 'tap';
import { isHarborError } from '../../../src/errors/index.js';
import { preflight } from '../../../src/node/dataplane/preflight.js';

t.test('no CAP_NET_ADMIN: E_DATAPLANE naming it and how to grant it', async (t) => {
  const error = await preflight({
    status: 'Name:\tnode\nCapEff:\t0000000000000000\n',
    remoteInstances: false,
  }).catch((e: unknown) => e);
  t.ok(isHarborError(error) && error.code === 'E_DATAPLANE');
  t.match((error as Error).message, /needs CAP_NET_ADMIN \(run as root, or grant it/);
  const other = await preflight({ status: 'CapEff:\t0000000000000fff\n', remoteInstances: false }).catch(
    (e: unknown) => e,
  );
  t.ok(isHarborError(other) && other.code === 'E_DATAPLANE', 'bit 12 is the one that counts');
  t.match((other as Error).message, /CAP_NET_ADMIN/);
});

t.test('CAP_NET_ADMIN present: the check goes on to the programs', async (t) => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  const error = await preflight({ status: 'CapEff:\t0000000000001000\n', remoteInstances: false }).catch(
    (e: unknown) => e,
  );
  t.match((error as Error).message, /needs the nft program \(Debian: apt-get install nftables\)/);
});
