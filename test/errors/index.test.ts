import { readFileSync } from 'node:fs';
import t from 'tap';
import { CATALOGUE, exitStatusOf, HarborError, isHarborError } from '../../src/errors/index.js';

t.test('an error carries its code, kind and exit status', async (t) => {
  const error = new HarborError('E_SERVICE_FIELD', 'service "x": int_port must be an integer 1-65535');
  t.equal(error.code, 'E_SERVICE_FIELD');
  t.equal(error.kind, 'config');
  t.equal(error.exitStatus, 78);
  t.ok(isHarborError(error, 'E_SERVICE_FIELD'));
  t.notOk(isHarborError(error, 'E_USAGE'));
  t.equal(new HarborError('E_USAGE', 'x').exitStatus, 2);
});

t.test('problems: errors decide the exit status, warnings alone give 0', async (t) => {
  t.equal(exitStatusOf([{ code: 'W_SELF_SIGNED', message: 'w' }]), 0);
  t.equal(
    exitStatusOf([
      { code: 'W_SELF_SIGNED', message: 'w' },
      { code: 'E_KEY_MISMATCH', message: 'e' },
    ]),
    78,
  );
});

t.test('docs/errors.md lists every code and no other', async (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([EW]_[A-Z_]+)` +\|/gm)].map((m) => m[1]));
  t.same([...documented].sort(), Object.keys(CATALOGUE).sort());
});
