// The request-head intake of an HTTP/1 connection, on a real loopback socket's
// inactivity watch: a head in pieces, what follows it kept for later, the
// refusals with their statuses and reasons, and the header timeout of a head
// that keeps arriving too slowly.
import t, { type Test } from 'tap';
import { DEFAULT_LIMITS, type Limits } from '../../src/https/core.js';
import { Head } from '../../src/https/head.js';
import { HEAD_PARTIAL, HEAD_READ, RequestIntake } from '../../src/https/http1-intake.js';
import { InactivitySweep } from '../../src/sockets/inactivity.js';
import { socketPair } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

async function intakeOn(t: Test, limits: Limits = DEFAULT_LIMITS): Promise<RequestIntake> {
  const [accepted] = await socketPair(t);
  const sweep = new InactivitySweep(limits.headerTimeoutMs, limits.idleTimeoutMs);
  t.teardown(() => sweep.stop());
  return new RequestIntake(
    limits,
    sweep.watch(accepted, () => {}),
  );
}

t.test('a head in pieces is read once whole; the bytes after it stay pending', async (t) => {
  const intake = await intakeOn(t);
  const head = new Head();
  intake.add(Buffer.from('GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\n'));
  t.equal(intake.read(head, true), HEAD_PARTIAL);
  intake.add(Buffer.from('\r\nGET /next HTTP/1.1\r\n'));
  t.equal(intake.read(head, false), HEAD_READ);
  t.equal(head.method, 'GET');
  t.equal(head.target, '/a?b=1');
  t.equal(head.host, 'app.example');
  t.equal(intake.pending?.toString(), 'GET /next HTTP/1.1\r\n', 'the pipelined start stays');
  t.equal(intake.take()?.toString(), 'GET /next HTTP/1.1\r\n');
  t.equal(intake.pending, null, 'taken: nothing pending');
  t.equal(intake.read(head, true), HEAD_PARTIAL, 'nothing to read');
  intake.keep(Buffer.from('PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n'));
  t.equal(intake.read(head, true), HEAD_READ, 'bytes kept after a body are read as the next head');
  t.equal(head.method, 'PUT');
  t.equal(intake.pending, null);
});

t.test('refused heads: the status and the reason', async (t) => {
  const limits = { ...DEFAULT_LIMITS, maxHeaderBytes: 256 };
  const head = new Head();
  const bare = await intakeOn(t, limits);
  bare.add(Buffer.from('GET / HTTP/1.1\nHost: h\n\n'));
  t.equal(bare.read(head, true), 400);
  t.equal(bare.refusal, 'bad-line-ending');

  const endless = await intakeOn(t, limits);
  endless.add(Buffer.from(`GET / HTTP/1.1\r\nX-Long: ${'a'.repeat(300)}`));
  t.equal(endless.read(head, true), 431, 'over the limit with no end in sight');
  t.equal(endless.refusal, undefined);

  const long = await intakeOn(t, limits);
  long.add(Buffer.from(`GET / HTTP/1.1\r\nHost: h\r\nX-Long: ${'a'.repeat(300)}\r\n\r\n`));
  t.equal(long.read(head, true), 431, 'a whole head over the limit');

  // The request line alone over the limit: its target is too long (414, as nginx answers).
  const longTarget = await intakeOn(t, limits);
  longTarget.add(Buffer.from(`GET /${'a'.repeat(300)}`));
  t.equal(longTarget.read(head, true), 414, 'a request line over the limit with no end in sight');
  const wholeLongTarget = await intakeOn(t, limits);
  wholeLongTarget.add(Buffer.from(`GET /${'a'.repeat(300)} HTTP/1.1\r\nHost: h\r\n\r\n`));
  t.equal(wholeLongTarget.read(head, true), 414, 'a whole head whose request line is over the limit');
  const lineFits = await intakeOn(t, limits);
  lineFits.add(Buffer.from(`GET /${'a'.repeat(200)} HTTP/1.1\r\nX-Long: ${'a'.repeat(100)}\r\n\r\n`));
  t.equal(
    lineFits.read(head, true),
    431,
    'a request line within the limit: the head as a whole is too large',
  );

  const smuggling = await intakeOn(t, limits);
  smuggling.add(Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'));
  const status = smuggling.read(head, true);
  t.equal(status, 400, 'two lengths');
  t.type(smuggling.refusal, 'string', 'with the parser’s reason');
});

t.test('a head still partial past the header timeout is refused with 408', async (t) => {
  const limits = { ...DEFAULT_LIMITS, headerTimeoutMs: 100, idleTimeoutMs: 60_000 };
  const intake = await intakeOn(t, limits);
  const head = new Head();
  intake.add(Buffer.from('GET / HTTP/1.1\r\n'));
  const began = Date.now();
  t.equal(intake.read(head, true), HEAD_PARTIAL);
  intake.add(Buffer.from('Host: h\r\n'));
  t.equal(intake.read(head, false), HEAD_PARTIAL, 'in time: still waiting');
  await waitFor(() => Date.now() - began > 150, 'the header timeout to pass');
  intake.add(Buffer.from('X-A: b\r\n'));
  t.equal(intake.read(head, false), 408);
});
