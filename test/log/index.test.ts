import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger, isRoutineSocketError } from '../../src/log/index.js';
import { startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';

function capture(level: 'info' | 'warn' | 'debug') {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
  });
  return { logger: createLogger({ name: 'test', level, pretty: false, destination: stream }), lines };
}

t.test('JSON lines at the chosen level; secrets are redacted', async (t) => {
  const { logger, lines } = capture('info');
  logger.debug('hidden');
  logger.info({ key: '-----BEGIN PRIVATE KEY-----', passphrase: 'pw', token: 'tk', service: 's' }, 'shown');
  logger.warn({ nested: { passphrase: 'pw2' } }, 'warned');
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 2);
  t.match(lines[0], {
    level: 30,
    name: 'test',
    msg: 'shown',
    key: '[redacted]',
    passphrase: '[redacted]',
    token: '[redacted]',
  });
  t.match(lines[1], { nested: { passphrase: '[redacted]' } });
  t.notMatch(JSON.stringify(lines), /BEGIN PRIVATE KEY|"pw"|"pw2"|"tk"/);
});

t.test('pretty: one line per event, only the fields the message does not already say', async (t) => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const logger = createLogger({ name: 'test', level: 'info', pretty: true, destination: stream });
  logger.info(
    { service: 'shop-https', port: 4443, code: 'W_X', token: 'tk' },
    'shop-https listening on 4443',
  );
  logger.warn({ err: { message: 'boom' } }, 'a listener failed');
  await new Promise((r) => setImmediate(r));
  const lines = text.trimEnd().split('\n');
  t.equal(lines.length, 2, `one line each: ${JSON.stringify(text)}`);
  t.match(lines[0], /INFO.*shop-https listening on 4443 \(code=W_X token=\[redacted\]\)$/);
  t.notMatch(lines[0], /service=|port=/, 'fields the message says are left out');
  t.match(lines[1], /WARN.*a listener failed \(err=boom\)$/);
});

t.test('routine socket ends are recognised by code', async (t) => {
  t.ok(isRoutineSocketError(Object.assign(new Error('x'), { code: 'ECONNRESET' })));
  t.ok(isRoutineSocketError(Object.assign(new Error('x'), { code: 'EPIPE' })));
  t.notOk(isRoutineSocketError(Object.assign(new Error('x'), { code: 'EACCES' })));
  t.notOk(isRoutineSocketError(null));
});

t.test('the real sidecar: --pretty gives readable lines, HARBOR_LOG_LEVEL=warn hides info', async (t) => {
  const certs = new URL('../../certs-example/', import.meta.url).pathname;
  const args = (port: number) => [
    'run',
    '--listen',
    '127.0.0.1',
    '--service',
    'x-https',
    '--int-port',
    String(port),
    '--backend',
    '9',
    '--certs-dir',
    certs,
  ];
  const pretty = startSidecar([...args(await freePort()), '--pretty']);
  t.teardown(() => pretty.kill('SIGKILL'));
  const line = await waitForOutput(pretty, /harbor-sidecar serving/);
  t.notMatch(line, /^\{/, 'not JSON');
  t.match(line, /INFO/);
  pretty.kill('SIGTERM');

  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const taken = `127.0.0.1:${(holder.address() as { port: number }).port}`;
  const quiet = startSidecar([...args(await freePort()), '--admin', taken], { HARBOR_LOG_LEVEL: 'warn' });
  t.teardown(() => quiet.kill('SIGKILL'));
  let output = '';
  quiet.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  // The admin address is taken: a warning, which shows at level warn, while info lines do not.
  await waitForOutput(quiet, /"level":40/);
  await new Promise((r) => setTimeout(r, 300));
  t.notMatch(output, /"level":30/);
  quiet.kill('SIGTERM');
});
