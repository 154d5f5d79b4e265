// The PROXY protocol headers as a real peer reads them: nginx with
// `listen ... proxy_protocol` answers with the client address it was told.
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fixedPicker, TcpForwarder } from '../../src/forward/index.js';
import { silentLogger } from '../../src/log/index.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

const haveNginx = await new Promise<boolean>((resolve) => {
  const probe = spawn('nginx', ['-v'], { stdio: 'ignore' });
  probe.on('error', () => resolve(false));
  probe.on('exit', (code) => resolve(code === 0));
});

/** A raw HTTP/1.0 GET through `port`; resolves with the response body. */
function get(port: number): Promise<{ body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let localPort = 0;
    socket.on('connect', () => {
      localPort = socket.localPort!;
      socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    });
    socket.on('data', (c: Buffer) => {
      text += c.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ body: text.split('\r\n\r\n')[1] ?? '', localPort }));
  });
}

t.test(
  'nginx reads the client address from v1 and v2 headers',
  { skip: haveNginx ? false : 'nginx is not installed' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'harbor-nginx-'));
    const port = await freePort();
    await writeFile(
      join(dir, 'nginx.conf'),
      // One process (no master and worker), so killing it leaves nothing behind.
      `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr warn;
worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / { return 200 "$proxy_protocol_addr $proxy_protocol_port"; }
  }
}
`,
    );
    const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let errors = '';
    nginx.stderr!.on('data', (c: Buffer) => {
      errors += c.toString();
    });
    t.teardown(() => {
      nginx.kill('SIGKILL');
    });
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          s.on('connect', () => resolve(s.destroy() !== undefined));
          s.on('error', () => resolve(false));
        }),
      `nginx to listen (${errors})`,
      10_000,
    );
    for (const version of [1, 2] as const) {
      const forwarder = new TcpForwarder({
        listen: { host: '127.0.0.1', port: 0 },
        picker: fixedPicker({ host: '127.0.0.1', port }),
        logger: silentLogger(),
        name: `pp${version}`,
        proxyProtocol: version,
      });
      await forwarder.start();
      t.teardown(() => forwarder.close());
      const { body, localPort } = await get(forwarder.port!);
      t.equal(body, `127.0.0.1 ${localPort}`, `v${version}: nginx saw the client's address and port`);
    }
  },
);
