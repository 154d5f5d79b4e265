import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type NodeState, StateFile } from '../../src/node/index.js';

const sample: NodeState = {
  services: [
    {
      id: '3f1c1d8e-0000-4000-8000-000000000001',
      name: 'both-dns',
      port: 35001,
      intPort: 4100,
      createdAt: '2026-01-01T00:00:00.000Z',
      instances: [
        { id: 'i-1', host: '10.0.0.1', port: 4100, ttl: 30 },
        { id: 'i-2', host: '10.0.0.2', port: 4100 },
      ],
    },
  ],
};

async function folder(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'harbor-state-'));
}

t.test('round trip; no file yet is an empty start; no temporary file left behind', async (t) => {
  const dir = await folder();
  const file = new StateFile(join(dir, 'state.json'));
  t.equal(await file.load(true), undefined);
  t.match(
    await file.load().catch((e: unknown) => e),
    { code: 'E_STATE_CORRUPT', message: /cannot be read/ },
    'gone later (SIGHUP): refused',
  );
  await file.save(sample);
  t.same(await file.load(), sample);
  t.same(await readdir(dir), ['state.json']);
});

t.test('concurrent saves coalesce and the last one wins', async (t) => {
  const dir = await folder();
  const file = new StateFile(join(dir, 'state.json'));
  const states = [1, 2, 3, 4].map((n) => ({ services: [{ ...sample.services[0]!, port: 35000 + n }] }));
  await Promise.all(states.map((s) => file.save(s)));
  t.equal((await file.load())?.services[0]?.port, 35004);
});

t.test(
  'an empty file is no state yet at start (a touch), refused later (emptied), and left as it is',
  async (t) => {
    for (const text of ['', '\n', '  \n\t']) {
      const dir = await folder();
      const path = join(dir, 'state.json');
      await writeFile(path, text);
      const file = new StateFile(path);
      t.equal(await file.load(true), undefined, `${JSON.stringify(text)}: no state at start`);
      const later = await file.load().catch((e: unknown) => e);
      t.match(later, { code: 'E_STATE_CORRUPT' }, 'emptied later (SIGHUP): refused');
      t.equal(await readFile(path, 'utf8'), text, 'the file is not rewritten by reading it');
    }
  },
);

t.test('a corrupt file is E_STATE_CORRUPT naming it, and is left untouched', async (t) => {
  const dir = await folder();
  const path = join(dir, 'state.json');
  const cases: [string, RegExp][] = [
    ['{"version": 1, "services": [', /is not valid JSON/],
    ['[]', /is not a JSON object/],
    ['{"version": 2, "services": []}', /version 2/],
    ['{"version": 1}', /no "services" array/],
    [
      '{"version": 1, "services": [{"id": "a", "name": "x", "port": 70000, "int_port": 1, "created_at": "t", "instances": []}]}',
      /services\[0\] without a valid/,
    ],
    [
      '{"version": 1, "services": [{"id": "a", "name": "x", "port": 5, "int_port": 1, "created_at": "t", "instances": [{"id": "i", "host": "h", "port": 1, "ttl": -1}]}]}',
      /services\[0\]\.instances\[0\] with a ttl/,
    ],
  ];
  for (const [text, reason] of cases) {
    await writeFile(path, text);
    const file = new StateFile(path);
    const error = await file.load().catch((e: unknown) => e);
    t.match(error, { code: 'E_STATE_CORRUPT' });
    t.match((error as Error).message, reason);
    t.match((error as Error).message, path);
    t.equal(await readFile(path, 'utf8'), text, 'the file is not rewritten');
  }
});

t.test('a write that fails is E_STATE_WRITE and the old file stays', async (t) => {
  const dir = await folder();
  const file = new StateFile(join(dir, 'missing-folder', 'state.json'));
  await t.rejects(file.save(sample), { code: 'E_STATE_WRITE' });
});
