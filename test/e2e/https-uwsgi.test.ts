// The HTTPS proxy in front of a real framework server: uWSGI (Debian
// uwsgi-core + uwsgi-plugin-python3) serving a small WSGI app that echoes the
// headers it received, on a TCP port and on a unix socket. uWSGI closes its
// connection after each response, so this also exercises the pool's handling
// of backend connections that do not stay alive.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Address } from '../../src/config/types.js';
import { acceptsConnections } from '../helpers/net.js';
import { httpsRequest, makePair, removeDir, startProxy } from '../https/fixtures/helpers.js';

const APP = `
import json
def application(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    body = environ['wsgi.input'].read(length) if length else b''
    headers = {k[5:].replace('_', '-').lower(): v for k, v in environ.items() if k.startswith('HTTP_')}
    out = json.dumps({'method': environ['REQUEST_METHOD'], 'path': environ.get('PATH_INFO', ''),
                      'headers': headers, 'bodyLength': len(body)}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(out)))])
    return [out]
`;

const dir = mkdtempSync(join(tmpdir(), 'harbor-uwsgi-'));
writeFileSync(join(dir, 'app.py'), APP);
const pair = makePair();
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true });
  removeDir(pair.dir);
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startUwsgi(socket: string): Promise<ChildProcess> {
  const child = spawn(
    'uwsgi',
    [
      '--plugin',
      'python3',
      '--http-socket',
      socket,
      '--wsgi-file',
      join(dir, 'app.py'),
      '--disable-logging',
      '--die-on-term',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const address = socket.startsWith('/')
    ? { path: socket }
    : { host: '127.0.0.1', port: Number(socket.split(':')[1]) };
  for (let i = 0; i < 200; i++) {
    const up = await acceptsConnections(address as net.NetConnectOpts);
    if (up) return child;
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`uwsgi did not start on ${socket}: ${log.slice(-500)}`);
}

/** curl POSTs app.py to the proxy with one extra header; resolves what it printed (the app's JSON). */
function curlUpload(port: number, header: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      [
        '-sS',
        '--cacert',
        pair.certFile,
        '-H',
        header,
        '--data-binary',
        `@${join(dir, 'app.py')}`,
        `https://localhost:${port}/upload`,
      ],
      { timeout: 10_000 },
      (_e, stdout) => resolve(stdout),
    );
  });
}

for (const kind of ['tcp', 'unix'] as const) {
  t.test(`uWSGI on a ${kind} socket sees https and the external port`, async (t) => {
    const socket = kind === 'tcp' ? `127.0.0.1:${await freePort()}` : join(dir, 'uwsgi.sock');
    const child = await startUwsgi(socket);
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const backend: Address =
      kind === 'tcp'
        ? { kind: 'tcp', host: '127.0.0.1', port: Number(socket.split(':')[1]) }
        : { kind: 'unix', path: socket };
    const fx = await startProxy(backend, { pair });
    t.teardown(() => fx.proxy.close());

    const r = await httpsRequest(fx.port, pair, {
      path: '/hello',
      headers: { 'x-forwarded-proto': 'http', 'x-forwarded-port': '80', 'x-custom': 'kept' },
    });
    t.equal(r.status, 200);
    const echo = JSON.parse(r.body.toString());
    t.equal(echo.path, '/hello');
    t.equal(echo.headers['x-forwarded-proto'], 'https');
    t.equal(echo.headers['x-forwarded-port'], '35048');
    t.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    t.equal(echo.headers['x-custom'], 'kept');
    t.equal(echo.headers.forwarded, `for=127.0.0.1;host="127.0.0.1:${fx.port}";proto=https`);

    // R16: a header name with `_` is never forwarded. uWSGI (as every CGI/WSGI server) maps
    // `_` like `-`, so these would spoof what the proxy sets and move the body's end.
    const spoof = await httpsRequest(fx.port, pair, {
      method: 'POST',
      path: '/spoof',
      headers: {
        x_forwarded_proto: 'http',
        x_forwarded_for: '10.9.9.9',
        x_client_cert_subject: 'CN=admin',
        content_length: '3',
        x_custom_kept: 'dropped too',
      },
      body: 'ten bytes!',
    });
    const seen = JSON.parse(spoof.body.toString());
    t.equal(seen.headers['x-forwarded-proto'], 'https', 'X_Forwarded_Proto does not reach the app');
    t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'nor X_Forwarded_For');
    t.notOk('x-client-cert-subject' in seen.headers, 'nor X_Client_Cert_Subject');
    t.notOk('x-custom-kept' in seen.headers, 'no underscore name at all');
    t.equal(seen.bodyLength, 10, 'Content_Length cannot move the end of the body');

    // An HTTP/2 upload without content-length (as browsers' streams and gRPC-style clients
    // send): uWSGI's --http-socket reads no chunked body, so the proxy sends the length.
    const h2 = http2.connect(`https://localhost:${fx.port}`, { ca: pair.cert });
    t.teardown(() => h2.close());
    const h2Echo = await new Promise<{ bodyLength: number }>((resolve, reject) => {
      const stream = h2.request({ ':method': 'POST', ':path': '/h2-upload' });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      stream.on('error', reject);
      stream.end('twenty-one bytes here');
    });
    t.equal(h2Echo.bodyLength, 21, 'the app reads the whole HTTP/2 upload');
    // Over 1 MiB the body is held in a file, and still reaches the app with its length.
    const big = 3 * 1024 * 1024 + 17;
    const h2Big = await new Promise<{ bodyLength: number }>((resolve, reject) => {
      const stream = h2.request({ ':method': 'POST', ':path': '/h2-upload-big' });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      stream.on('error', reject);
      for (let i = 0; i < big; i += 100_000) stream.write(Buffer.alloc(Math.min(100_000, big - i), 1));
      stream.end();
    });
    t.equal(h2Big.bodyLength, big, 'the app reads the whole 3 MiB HTTP/2 upload');

    const post = await httpsRequest(fx.port, pair, {
      method: 'POST',
      path: '/form',
      body: Buffer.alloc(200_000, 1),
    });
    t.equal(JSON.parse(post.body.toString()).bodyLength, 200_000);

    // curl asks Expect: 100-continue; uWSGI never answers it, the proxy does.
    const curl = await curlUpload(fx.port, 'Expect: 100-continue');
    t.equal(JSON.parse(curl).bodyLength, APP.length);

    // A chunked HTTP/1.1 upload (curl -T -, a streaming client): uWSGI's --http-socket reads
    // no chunked body (its app saw 0 bytes), so the proxy holds it and sends its length.
    const chunked = await curlUpload(fx.port, 'Transfer-Encoding: chunked');
    t.equal(JSON.parse(chunked).bodyLength, APP.length, 'the app reads a chunked upload whole');

    // Sequential and concurrent requests over a backend that closes after every response.
    for (let i = 0; i < 20; i++) {
      const again = await httpsRequest(fx.port, pair, { path: `/seq/${i}` });
      t.equal(again.status, 200);
    }
    const all = await Promise.all(
      Array.from({ length: 10 }, (_, i) => httpsRequest(fx.port, pair, { path: `/par/${i}` })),
    );
    t.same(
      all.map((x) => x.status),
      Array(10).fill(200),
    );
    t.equal(fx.stats.requests['5xx'], 0);
  });
}
