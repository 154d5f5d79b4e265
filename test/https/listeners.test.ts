// The proxy's listening sockets: every host or none, one port for all, errors that name it.
import * as net from 'node:net';
import t from 'tap';
import { isHarborError } from '../../src/errors/index.js';
import { addressesOf, openListeners } from '../../src/https/listeners.js';
import { silentLogger } from '../../src/log/index.js';
import { acceptsConnections } from '../helpers/net.js';

const closeAll = (servers: net.Server[]) =>
  Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));

t.test('port 0: the first listener picks a port and every other host takes the same one', async (t) => {
  const servers = await openListeners({
    hosts: ['127.0.0.1', '::1'],
    port: 0,
    service: 'web-https',
    logger: silentLogger(),
    onConnection: (socket) => socket.destroy(),
  });
  t.teardown(() => closeAll(servers));
  const addresses = addressesOf(servers);
  t.same(
    addresses.map((a) => a.host),
    ['127.0.0.1', '::1'],
  );
  t.equal(addresses[1]!.port, addresses[0]!.port, 'one port for both families');
  t.ok(await acceptsConnections(addresses[0]!.port));
});

t.test('all or none: a host that cannot be had closes the ones already open', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '::1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const error = await openListeners({
    hosts: ['127.0.0.1', '::1'],
    port,
    service: 'web-https',
    logger: silentLogger(),
    onConnection: (socket) => socket.destroy(),
  }).catch((e: unknown) => e);
  t.ok(isHarborError(error, 'E_PORT_IN_USE'), 'E_PORT_IN_USE');
  t.equal(
    (error as Error).message,
    `port ${port} (int_port of service "web-https") is already taken on [::1]:${port} by this process (another of its own listeners)`,
  );
  t.notOk(await acceptsConnections(port), 'the IPv4 listener opened first was closed again');
});
