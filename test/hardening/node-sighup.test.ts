// SIGHUP to harbor-node (issue 9, item 5): a closing terminal sends it, and
// operators send it to reload. The node never dies of it: it re-reads its
// state file and applies what an operator changed, says so in one log line,
// and keeps serving every connection. Signals while it starts: SIGHUP does not
// end it, SIGTERM stops it cleanly once it has started.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { tagServer, tcpRequest } from '../forward/fixtures/net.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from '../node/fixtures/ranges.js';
import { api, spawnNode, startNodeProcess } from '../node/fixtures/spawn.js';

t.test('SIGHUP re-reads the state file, applies the change, and the node serves on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-sighup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = join(dir, 'state.json');
  const range = await freeRange(4);
  const node = await startNodeProcess(t, ['--ports', `${range.first}-${range.last}`, '--state', state]);
  const { json: creds } = await api(node.api, 'POST', '/v1/services', { name: 'tcp-app' });
  const first = await tagServer(t, 'first');
  const second = await tagServer(t, 'second');
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/a`, {
    host: '127.0.0.1',
    port: first.port,
  });
  t.equal(await tcpRequest(creds.port), 'first');

  // An operator moves instance a to the second app by editing the state file, then SIGHUP.
  const document = JSON.parse(readFileSync(state, 'utf8'));
  const text = JSON.stringify(document).replace(`"port":${first.port}`, `"port":${second.port}`);
  t.not(text, JSON.stringify(document), 'the edit applies');
  writeFileSync(state, text);
  node.child.kill('SIGHUP');
  const line = await node.waitLog((l) => String(l.msg).startsWith('reloaded:'), 'the reload line');
  t.match(line.msg, /1 instance change/, `the log says what changed: ${line.msg}`);
  await waitFor(
    async () => (await tcpRequest(creds.port).catch(() => '')) === 'second',
    'the moved instance',
  );

  // A state file that no longer parses: an error line, and nothing changes.
  writeFileSync(state, '{"services": [');
  node.child.kill('SIGHUP');
  await node.waitLog((l) => String(l.msg).startsWith('state file not reloaded'), 'the refusal');
  t.equal(await tcpRequest(creds.port), 'second', 'still serving as before');
  // Emptied (`> state.json`): refused the same way, not read as "no services".
  writeFileSync(state, '');
  node.child.kill('SIGHUP');
  await waitFor(
    async () => node.logs().filter((l) => String(l.msg).startsWith('state file not reloaded')).length === 2,
    'the second refusal',
  );
  t.equal(await tcpRequest(creds.port), 'second', 'an emptied file drops no service');
  // Removed: the same; the next change writes the file again.
  rmSync(state);
  node.child.kill('SIGHUP');
  await waitFor(
    async () => node.logs().filter((l) => String(l.msg).startsWith('state file not reloaded')).length === 3,
    'the third refusal',
  );
  t.equal(await tcpRequest(creds.port), 'second', 'a removed file drops no service');
  await api(node.api, 'PUT', `/v1/services/${creds.name}/instances/b`, {
    host: '127.0.0.1',
    port: first.port,
  });
  t.match(JSON.parse(readFileSync(state, 'utf8')), { services: [{ name: 'tcp-app' }] }, 'written again');
  t.equal(node.child.exitCode, null, 'SIGHUP never ends the node');
  node.child.kill('SIGTERM');
  t.equal(await node.exited, 0);
});

t.test(
  'signals while it starts: SIGHUP does not end it; SIGTERM drains it once started (exit 0)',
  async (t) => {
    // A store that takes the connection and never answers: the node stays in its start-up
    // (store.open) until its 2 s command timeout, the window the signals are sent in.
    const held: Socket[] = [];
    let connected!: () => void;
    const reached = new Promise<void>((resolve) => {
      connected = resolve;
    });
    const silent = createServer((socket) => {
      held.push(socket);
      connected();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const socket of held) socket.destroy();
      silent.close();
    });
    const { port } = silent.address() as { port: number };
    const range = await freeRange(2);
    const node = spawnNode(t, [
      '--api',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1',
      '--ports',
      `${range.first}-${range.last}`,
      '--store',
      `redis://127.0.0.1:${port}`,
    ]);
    await reached;
    node.child.kill('SIGHUP');
    node.child.kill('SIGTERM');
    t.equal(await node.exited, 0, 'a clean exit, not death by signal');
    const said = node.logs().map((l) => l.msg);
    t.ok(said.includes('stop asked while starting: stopping once started'), 'it said so at once');
    t.ok(said.includes('draining'), 'and drained what had started');
  },
);
