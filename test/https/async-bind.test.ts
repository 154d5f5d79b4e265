// AsyncResource#bind as installed for h2c backends: what Node's own does (the
// resource's async context inside, `this`, `length`, `asyncResource`), without
// the deprecation wrappers; and node:http2's client still works through it.
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { installFastAsyncBind } from '../../src/https/async-bind.js';
import { readText } from '../helpers/net.js';

const nodesBind = AsyncResource.prototype.bind;
installFastAsyncBind();
t.teardown(() => {
  AsyncResource.prototype.bind = nodesBind;
});

t.test('installed once, and in place of Node 20 own', async (t) => {
  t.not(AsyncResource.prototype.bind, nodesBind);
  const installed = AsyncResource.prototype.bind;
  installFastAsyncBind();
  t.equal(AsyncResource.prototype.bind, installed, 'a second install changes nothing');
});

t.test("a bound function runs in its resource's async context, as with Node's", async (t) => {
  const storage = new AsyncLocalStorage<string>();
  for (const [name, bind] of [
    ['fast', AsyncResource.prototype.bind],
    ['node', nodesBind],
  ] as const) {
    const resource = storage.run(`made in ${name}`, () => new AsyncResource('test'));
    const seen = storage.run('the caller', () => {
      const bound = bind.call(resource, function (this: unknown, a: number, b: number) {
        return { store: storage.getStore(), self: this, sum: a + b };
      }) as (this: unknown, a: number, b: number) => { store: string; self: unknown; sum: number };
      const self = { me: true };
      return { result: bound.call(self, 2, 3), self, bound };
    });
    t.equal(seen.result.store, `made in ${name}`, `${name}: the resource's context, not the caller's`);
    t.equal(seen.result.self, seen.self, `${name}: the caller's this`);
    t.equal(seen.result.sum, 5, `${name}: the arguments`);
    t.equal(seen.bound.length, 2, `${name}: the length of the function bound`);
    t.equal((seen.bound as unknown as { asyncResource: AsyncResource }).asyncResource, resource);
    const that = { that: true };
    const withThis = (
      bind as (this: AsyncResource, fn: () => unknown, thisArg: unknown) => () => unknown
    ).call(
      resource,
      function (this: unknown) {
        return this;
      },
      that,
    );
    t.equal(withThis.call({ other: true }), that, `${name}: a given thisArg wins`);
  }
  t.throws(() => AsyncResource.prototype.bind.call(new AsyncResource('x'), 42 as never), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.equal(typeof AsyncResource.bind(() => 1), 'function', 'the static bind goes through it too');
});

t.test('node:http2 requests go through it and are answered', async (t) => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(`to ${headers[':path']}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(() => client.destroy());
  const get = (path: string) => readText(client.request({ ':path': path }));
  // The first before the session connects (its request waits on 'connect', bound), then more.
  t.same(await Promise.all([get('/1'), get('/2')]), ['to /1', 'to /2']);
  t.equal(await get('/3'), 'to /3');
});
