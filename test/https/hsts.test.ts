// --hsts: Strict-Transport-Security on every answer that lacks one, HTTP/1 and
// HTTP/2, the proxy's own answers included; the app's own header wins.
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
const HSTS = 'max-age=31536000; includeSubDomains';

const h2Get = (port: number, path: string) => h2Request(port, pair, { ':path': path });

t.test('added where missing, the app own kept, on the proxy own answers too', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair, hsts: HSTS });
  t.teardown(() => fx.proxy.close());
  t.equal(
    (await httpsRequest(fx.port, pair, { path: '/' })).headers['strict-transport-security'],
    HSTS,
    'HTTP/1',
  );
  t.equal((await h2Get(fx.port, '/'))['strict-transport-security'], HSTS, 'HTTP/2');
  const own = '/?header=strict-transport-security:max-age%3D5';
  t.equal(
    (await httpsRequest(fx.port, pair, { path: own })).headers['strict-transport-security'],
    'max-age=5',
    'the app own wins (HTTP/1)',
  );
  t.equal((await h2Get(fx.port, own))['strict-transport-security'], 'max-age=5', 'the app own wins (HTTP/2)');

  // No backend at all: the proxy's 503 carries it too.
  const down = await startProxy(await deadBackend(), { pair, hsts: HSTS });
  t.teardown(() => down.proxy.close());
  const refused = await httpsRequest(down.port, pair, { path: '/' });
  t.equal(refused.status, 503);
  t.equal(refused.headers['strict-transport-security'], HSTS, "the proxy's own 503 (HTTP/1)");
  const refused2 = await h2Get(down.port, '/');
  t.equal(refused2['strict-transport-security'], HSTS, "the proxy's own 503 (HTTP/2)");
});

t.test('off by default: nothing added', async (t) => {
  const backend = await startEchoBackend();
  t.teardown(() => backend.close());
  const fx = await startProxy(backend.address, { pair });
  t.teardown(() => fx.proxy.close());
  t.equal((await httpsRequest(fx.port, pair, { path: '/' })).headers['strict-transport-security'], undefined);
});
