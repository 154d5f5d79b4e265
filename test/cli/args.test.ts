// Command lines the three programs refuse: one line naming the flag or the
// command, the closest known one for a typo, exit 2; and help per command.

import { spawnSync } from 'node:child_process';
import t from 'tap';
import { closest } from '../../src/cli/args.js';
import { HARBOR_BIN, NODE_BIN, runHarbor, runSidecar } from '../helpers/cli.js';

t.test('closest: a typo of one known word, else nothing', async (t) => {
  t.equal(closest('--servce', ['--service', '--int-port']), '--service', 'a letter missing');
  t.equal(closest('--prots', ['--ports', '--api']), '--ports', 'two letters swapped');
  t.equal(closest('stats', ['run', 'status', 'check']), 'status');
  t.equal(closest('--zzz', ['--service', '--ports']), undefined, 'nothing near');
});

t.test('unknown flags and commands: one line, the closest match, exit 2', async (t) => {
  const sidecar = runSidecar(['run', '--servce', 'x']);
  t.equal(sidecar.status, 2);
  t.equal(
    sidecar.stderr,
    "harbor-sidecar: unknown flag --servce (did you mean --service?) [E_USAGE]\nTry 'harbor-sidecar --help'.\n",
  );
  t.match(
    runSidecar(['stats']).stderr,
    /^harbor-sidecar: unknown command "stats" \(did you mean status\?\); commands: run, env/,
  );
  t.match(
    runSidecar(['certs', 'generate', '--name']).stderr,
    /^harbor-sidecar: --name needs a value \[E_USAGE\]/,
  );
  t.match(runSidecar(['check', '--json=yes']).stderr, /^harbor-sidecar: --json takes no value \[E_USAGE\]/);
  const node = spawnSync(process.execPath, [NODE_BIN, '--prots', '1-2'], { encoding: 'utf8' });
  t.equal(node.status, 2);
  t.match(node.stderr, /^harbor-node: unknown flag --prots \(did you mean --ports\?\) \[E_USAGE\]/);
  t.match(
    spawnSync(process.execPath, [NODE_BIN, 'stor'], { encoding: 'utf8' }).stderr,
    /did you mean store\?/,
  );
  const client = await runHarbor(['servics']);
  t.equal(client.status, 2);
  t.match(client.stderr, /^harbor: unknown command "servics" \(did you mean service/);
  t.ok(HARBOR_BIN);
});

t.test('help per command: its usage and only the settings it reads', async (t) => {
  const status = runSidecar(['status', '--help']);
  t.equal(status.status, 0);
  t.match(status.stdout, /^Usage: harbor-sidecar status \[flags\]/);
  t.match(status.stdout, /--admin VALUE/);
  t.notMatch(status.stdout, /--forward/, 'not the run-only settings');
  const certs = runSidecar(['help', 'certs']);
  t.match(certs.stdout, /^Usage: harbor-sidecar certs generate \[flags\]/);
  t.match(certs.stdout, /--force +Replace a pair/);
  t.match(runSidecar(['--help']).stdout, /Commands \(harbor-sidecar COMMAND --help for one\)/);
});
