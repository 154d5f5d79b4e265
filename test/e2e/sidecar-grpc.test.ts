// A gRPC app behind a running harbor-sidecar: HARBOR_BACKEND_PROTOCOL=h2c from
// the environment to the proxy, a real gRPC client over TLS to a real gRPC
// server in clear text, and `check` saying how the backend is spoken to.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { OpensslFactory, read } from '../fixtures/certs-helpers.js';
import { exited, runSidecar, startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';

const root = mkdtempSync(join(tmpdir(), 'harbor-grpc-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const certs = join(root, 'app', 'certs');
mkdirSync(certs, { recursive: true });
const pair = new OpensslFactory(root).pair('localhost', { type: 'ec' }, { hosts: ['localhost'] });
copyFileSync(pair.certFile, join(certs, 'harbor.crt'));
copyFileSync(pair.keyFile, join(certs, 'harbor.key'));

const bytes = (b: Buffer) => b;
const GREETER = {
  hello: {
    path: '/harbor.e2e.Greeter/Hello',
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
} as unknown as grpc.ServiceDefinition;

t.test('HARBOR_BACKEND_PROTOCOL=h2c: a gRPC call through a running sidecar', async (t) => {
  const server = new grpc.Server();
  server.addService(GREETER, {
    hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done(null, Buffer.from(`hello ${call.request} via ${call.metadata.get('x-forwarded-proto')[0]}`)),
  });
  const backendPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  t.teardown(() => server.forceShutdown());
  const intPort = await freePort();
  const env = {
    STACKATO_SERVICES: JSON.stringify({ 'rpc-https': { int_port: intPort, port: 35124 } }),
    PORT: String(backendPort),
    HARBOR_APP_ROOT: join(root, 'app'),
    HARBOR_BACKEND_PROTOCOL: 'h2c',
  };
  const checked = runSidecar(['check'], env);
  t.equal(checked.status, 0);
  t.match(checked.stdout, `backend: 127.0.0.1:${backendPort} (HTTP/2 clients over h2c`);
  const child = startSidecar(['run', '--listen', '127.0.0.1', '--admin', 'off'], env);
  t.teardown(() => child.kill('SIGKILL'));
  await waitForOutput(child, /harbor-sidecar serving/);

  // biome-ignore lint/suspicious/noExplicitAny: the generic client's methods are made at run time
  const Client = grpc.makeGenericClientConstructor(GREETER, 'Greeter') as any;
  const client = new Client(
    `localhost:${intPort}`,
    grpc.credentials.createSsl(Buffer.from(read(pair.certFile))),
  );
  const answer = await new Promise<string>((resolve, reject) =>
    client.hello(Buffer.from('app'), { deadline: Date.now() + 20_000 }, (e: Error | null, v: Buffer) =>
      e ? reject(e) : resolve(v.toString()),
    ),
  );
  client.close();
  t.equal(answer, 'hello app via https');
  child.kill('SIGTERM');
  t.same(await exited(child), { code: 0, signal: null });
});
