// TLS 1.2 resumption by session id, for clients that take no tickets: the cache
// on its own (real sessions from a real server, its bounds), then through the
// proxy with Node's client and `openssl s_client -no_ticket`.
import { execFile } from 'node:child_process';
import { constants } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { SessionCache, sessionIdOf } from '../../src/https/session-cache.js';
import { serverTlsOptions } from '../../src/https/tls.js';
import { makePair, type Pair, resumingGet, startEchoBackend, startProxy } from './fixtures/helpers.js';

const pair = makePair();
const backend = await startEchoBackend();
t.teardown(() => backend.close());

/** One connection and request; whether it resumed, and the session it left. */
async function visit(
  port: number,
  trust: Pair,
  options: { maxVersion: tls.SecureVersion; session?: Buffer | undefined; noTicket?: boolean },
): Promise<{ resumed: boolean; session: Buffer | undefined; answered: boolean }> {
  const got = await resumingGet(port, {
    ca: trust.cert,
    maxVersion: options.maxVersion,
    ...(options.session === undefined ? {} : { session: options.session }),
    ...(options.noTicket ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
  });
  return { resumed: got.resumed, session: got.session, answered: got.answer === '200' };
}

t.test('the cache keeps new TLS 1.2 sessions only, within its count and their lifetime', async (t) => {
  // Real sessions, as OpenSSL serialises them: the ids Node's 'newSession' names them by, and
  // what the cache keeps from each connection as it is set up.
  const told: { id: Buffer; data: Buffer }[] = [];
  const kept = new SessionCache({ lifetimeSeconds: 300 });
  const server = tls.createServer(serverTlsOptions(pair), (socket) => {
    kept.keep(socket);
    socket.end('hi');
  });
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    told.push({ id, data });
    done();
  });
  kept.serve(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  // Without tickets: given one, a TLS 1.2 client needs nothing kept (the ticket holds the session).
  const connect = (maxVersion: tls.SecureVersion, session?: Buffer) =>
    new Promise<{ resumed: boolean; session: Buffer | undefined }>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: pair.cert,
        servername: 'localhost',
        maxVersion,
        secureOptions: constants.SSL_OP_NO_TICKET,
        ...(session === undefined ? {} : { session }),
      });
      let resumed = false;
      let latest: Buffer | undefined;
      socket.on('session', (s: Buffer) => {
        latest = s;
      });
      socket.on('secureConnect', () => {
        resumed = socket.isSessionReused();
      });
      socket.on('data', () => {});
      socket.on('error', reject);
      socket.on('close', () => resolve({ resumed, session: latest }));
    });
  const first = await connect('TLSv1.2');
  t.equal(told.length, 1, 'one TLS 1.2 session');
  t.same(sessionIdOf(told[0]!.data), told[0]!.id, "the id read from the session is OpenSSL's");
  t.equal(kept.size, 1, 'kept');
  const again = await connect('TLSv1.2', first.session);
  t.ok(again.resumed, 'and resumed by its id');
  t.equal(kept.size, 1, 'a resumed session is not kept twice');
  await connect('TLSv1.3');
  t.ok(told.length >= 2, `OpenSSL tells of TLS 1.3 tickets too (${told.length - 1})`);
  t.equal(kept.size, 1, 'TLS 1.3 sessions are not kept: they resume by ticket');
  for (const { id, data } of told) t.same(sessionIdOf(data), id, 'ids read back');
  t.equal(sessionIdOf(Buffer.from('not DER')), undefined, 'anything else has none');
  t.equal(sessionIdOf(told[0]!.data.subarray(0, 20)), undefined, 'nor has a cut one');

  let now = 1_000_000;
  const cache = new SessionCache({ capacity: 3, lifetimeSeconds: 300, now: () => now });
  const data = told[0]!.data;
  const id = (n: number) => Buffer.alloc(32, n);
  for (let n = 1; n <= 3; n++) cache.set(id(n), data);
  t.equal(cache.get(id(1)), data, 'a kept session comes back by its id');
  t.equal(cache.get(Buffer.alloc(32, 9)), undefined, 'an unknown id: none');
  cache.set(id(4), data);
  t.equal(cache.size, 3, 'never more than its capacity');
  t.equal(cache.get(id(1)), undefined, 'the oldest made room');
  now += 299_000;
  t.equal(cache.get(id(4)), data, 'within its lifetime');
  now += 2_000;
  t.equal(cache.get(id(4)), undefined, 'past its lifetime: gone');
  cache.set(id(5), data);
  t.equal(cache.size, 1, 'expired ones leave as new ones come');
});

t.test('through the proxy: a TLS 1.2 client without tickets resumes by session id', async (t) => {
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const first = await visit(fx.port, pair, { maxVersion: 'TLSv1.2', noTicket: true });
  t.ok(first.answered && !first.resumed && first.session, 'a full handshake, a session');
  for (let i = 0; i < 3; i++) {
    const again = await visit(fx.port, pair, {
      maxVersion: 'TLSv1.2',
      noTicket: true,
      session: first.session,
    });
    t.ok(again.resumed, `resumed by id (${i + 1})`);
    t.ok(again.answered, 'and answered');
  }
  // A pair swap keeps it, as it keeps tickets.
  fx.proxy.setTls(serverTlsOptions(pair));
  const swapped = await visit(fx.port, pair, {
    maxVersion: 'TLSv1.2',
    noTicket: true,
    session: first.session,
  });
  t.ok(swapped.resumed, 'resumed after the pair was swapped');
  // Tickets, TLS 1.2 and 1.3, still resume as before.
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    const ticketed = await visit(fx.port, pair, { maxVersion });
    const back = await visit(fx.port, pair, { maxVersion, session: ticketed.session });
    t.ok(back.resumed && back.answered, `${maxVersion} with a ticket resumes`);
  }

  // openssl s_client -no_ticket: a client of another TLS stack that offers only its session id.
  const dir = mkdtempSync(join(tmpdir(), 'harbor-sess-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sClient = (extra: string[]) =>
    new Promise<string>((resolve) => {
      const child = execFile(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${fx.port}`,
          '-tls1_2',
          '-no_ticket',
          '-CAfile',
          pair.certFile,
          ...extra,
        ],
        { timeout: 20_000 },
        (_error, stdout) => resolve(stdout),
      );
      child.stdin?.end();
    });
  const made = await sClient(['-sess_out', join(dir, 'session.pem')]);
  t.match(made, /^New, TLSv1\.2/m, 's_client: a full handshake');
  t.match(made, /Verify return code: 0 \(ok\)/);
  const resumed = await sClient(['-sess_in', join(dir, 'session.pem')]);
  t.match(resumed, /^Reused, TLSv1\.2/m, 's_client: resumed by its session id');
});
