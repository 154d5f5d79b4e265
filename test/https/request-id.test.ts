// X-Request-Id: every request reaches the backend with one, a new one unless
// --trust-request-id keeps the client's well-formed own; the proxy's own
// error answers carry the same id.
import t from 'tap';
import {
  deadBackend,
  h2Request,
  httpsRequest,
  makePair,
  removeDir,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const pair = makePair();
t.teardown(() => removeDir(pair.dir));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function seenBy(port: number, headers: Record<string, string> = {}): Promise<string> {
  const r = await httpsRequest(port, pair, { path: '/', headers });
  return JSON.parse(r.body.toString()).headers['x-request-id'];
}

t.test('a new id for every request; a client-given one is not believed by default', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  const [a, b] = [await seenBy(fx.port), await seenBy(fx.port)];
  t.match(a, UUID);
  t.match(b, UUID);
  t.not(a, b, 'one per request');
  const forged = await seenBy(fx.port, { 'x-request-id': 'client-chosen-1' });
  t.match(forged, UUID, "the client's own replaced");
});

t.test('--trust-request-id: a well-formed client id kept, a malformed one replaced', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair, trustRequestId: true });
  t.teardown(() => fx.proxy.close());
  t.equal(await seenBy(fx.port, { 'x-request-id': 'lb-7f3a:42' }), 'lb-7f3a:42');
  t.match(await seenBy(fx.port, { 'x-request-id': 'has space' }), UUID);
  t.match(await seenBy(fx.port, { 'x-request-id': 'x'.repeat(129) }), UUID, 'too long');
});

t.test("the proxy's own error answer carries the request's id, HTTP/1 and HTTP/2", async (t) => {
  const fx = await startProxy(await deadBackend(), { pair, trustRequestId: true });
  t.teardown(() => fx.proxy.close());
  const h1 = await httpsRequest(fx.port, pair, { path: '/', headers: { 'x-request-id': 'trace-1' } });
  t.equal(h1.status, 503);
  t.equal(h1.headers['x-request-id'], 'trace-1');
  const fresh = await httpsRequest(fx.port, pair, { path: '/' });
  t.match(fresh.headers['x-request-id'], UUID);
  const h2 = await h2Request(fx.port, pair, { ':path': '/', 'x-request-id': 'trace-2' });
  t.equal(h2[':status'], 503);
  t.equal(h2['x-request-id'], 'trace-2');
});
