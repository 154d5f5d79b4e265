// One harbor-node per state file, spawned for real: a second node on a file a
// running node holds is refused (exit 78, E_STATE_IN_USE) and the first keeps
// every service and keeps taking changes; `store copy` reads a running node's
// file but may not write into it; a node stopped with SIGTERM lets go at once.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, spawnNode, startNodeProcess } from '../node/fixtures/spawn.js';

const names = async (path: string): Promise<string[]> =>
  (JSON.parse(await readFile(path, 'utf8')) as { services: { name: string }[] }).services
    .map((s) => s.name)
    .sort();

t.test(
  'a second node on a held state file is refused; the holder loses nothing; store copy reads it but may not write it',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-node-'));
    const path = join(dir, 'state.json');
    const range = await freeRange(6);
    const first = await startNodeProcess(t, [
      '--ports',
      `${range.first}-${range.first + 2}`,
      '--state',
      path,
    ]);
    t.equal((await api(first.api, 'POST', '/v1/services', { name: 'tcp-one' })).status, 201);

    // Before this, the second node ran too, each wrote its own view over the other's, and the
    // first's services were gone from the file.
    const second = spawnNode(t, [
      '--ports',
      `${range.first + 3}-${range.last}`,
      '--state',
      path,
      '--api',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1',
    ]);
    const copy = join(dir, 'copy.json');
    const copyFrom = spawnNode(t, ['store', 'copy', '--from', `file:${path}`, '--to', `file:${copy}`]);
    const copyInto = spawnNode(t, ['store', 'copy', '--from', `file:${copy}`, '--to', `file:${path}`]);

    t.equal(await copyFrom.exited, 0, 'a running node file can be read');
    t.match(copyFrom.output(), /1 service\(s\) copied/);
    t.same(await names(copy), ['tcp-one']);

    t.equal(await second.exited, 78);
    t.match(second.output(), /waiting up to 11 s in case that node has stopped/);
    t.match(
      second.output(),
      new RegExp(`state file ${path} is in use by another harbor-node.*\\[E_STATE_IN_USE\\]`),
    );
    t.notMatch(second.output(), /harbor-node ready/);

    t.equal(await copyInto.exited, 78, 'but not written');
    t.match(copyInto.output(), /\[E_STATE_IN_USE\]/);

    // The holder lost nothing and still takes changes.
    t.equal((await api(first.api, 'POST', '/v1/services', { name: 'tcp-two' })).status, 201);
    t.same(await names(path), ['tcp-one', 'tcp-two']);

    // Stopped, it lets go at once: the next node starts without waiting.
    first.child.kill('SIGTERM');
    t.equal(await first.exited, 0);
    const next = await startNodeProcess(t, ['--ports', `${range.first}-${range.first + 2}`, '--state', path]);
    t.notMatch(next.output(), /waiting up to/);
    const listed = await api(next.api, 'GET', '/v1/services');
    t.same(listed.json.services.map((s: { service: string }) => s.service).sort(), ['tcp-one', 'tcp-two']);
    next.child.kill('SIGTERM');
    t.equal(await next.exited, 0);
  },
);
