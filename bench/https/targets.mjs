// The HTTPS bench's processes: the nginx origin every proxy forwards to, and
// the three front ends measured against each other (nginx as a reverse proxy,
// a bare Node TLS server answering by itself, harbor-sidecar). Each target is
// started with one certificate pair and exposes { name, pid, port, stop(),
// swapCert?(nextPair) } where pid is the root of the process tree to measure.
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CIPHERS } from '../../dist/https/tls.js';
import { freePort, startProcess, waitForPort } from '../lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');

export const SMALL_BODY = 'hello, harbor\n';
export const LARGE_PATH = '/1m.bin';
export const SMALL_PATH = '/small';
const LARGE_BYTES = 1024 * 1024;

function nginxCommon(dir, name) {
  const temp = join(dir, `${name}-temp`);
  mkdirSync(temp, { recursive: true });
  // Root runs the worker as root too: the temp dir is 0700 and the worker
  // must read the 1 MiB file; nothing here is reachable off loopback.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return {
    top: `${user}
worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 8192; }`,
    temps: `access_log off;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;`,
  };
}

async function startNginx(dir, name, config, port) {
  const path = join(dir, `${name}.conf`);
  writeFileSync(path, config);
  const proc = startProcess('nginx', ['-p', dir, '-c', path, '-e', join(dir, `${name}-error.log`)], {
    name: `nginx ${name}`,
  });
  await waitForPort(port, { proc });
  return proc;
}

/**
 * nginx, one worker, serving /small (14 bytes) and /1m.bin (1 MiB) over plain HTTP/1.1 keep-alive;
 * with `h2c`, also over clear-text HTTP/2 (prior knowledge) on `h2cPort`.
 */
export async function startOrigin(dir, { h2c = false } = {}) {
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  const large = Buffer.alloc(LARGE_BYTES);
  for (let i = 0; i < large.length; i++) large[i] = (i * 7 + 13) & 0xff;
  writeFileSync(join(www, LARGE_PATH.slice(1)), large);
  const port = await freePort();
  const h2cPort = h2c ? await freePort() : undefined;
  const { top, temps } = nginxCommon(dir, 'origin');
  const config = `${top}
http {
  ${temps}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  http2_max_requests 1000000;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    ${h2c ? `listen 127.0.0.1:${h2cPort} http2 backlog=4096;` : ''}
    root ${www};
    location = ${SMALL_PATH} { default_type text/plain; return 200 "${SMALL_BODY.replace('\n', '\\n')}"; }
    location / { }
  }
}
`;
  const proc = await startNginx(dir, 'origin', config, port);
  return { name: 'origin', pid: proc.pid, port, h2cPort, proc, stop: () => proc.stop('SIGQUIT') };
}

/**
 * nginx's access log like the sidecar's (issue 14), for the server block: the same fields,
 * JSON-escaped, or nginx's own "combined"; buffered as the sidecar batches (32 KiB, written at
 * least every 100 ms). '' without one.
 */
function nginxAccessLog(accessLog) {
  if (accessLog === undefined) return { format: '', log: '' };
  if (accessLog.format !== 'json')
    return { format: '', log: `access_log ${accessLog.file} combined buffer=32k flush=100ms;` };
  const json =
    '{"time":"$time_iso8601","type":"access","service":"bench-https","client":"$remote_addr",' +
    '"method":"$request_method","path":"$uri","protocol":"$server_protocol","status":$status,' +
    '"bytes_in":$request_length,"bytes_out":$bytes_sent,"duration_ms":$request_time,' +
    '"backend_ms":"$upstream_header_time","tls":"$ssl_protocol","request_id":"$request_id"}';
  return {
    format: `log_format harbor_json escape=json '${json}';`,
    log: `access_log ${accessLog.file} harbor_json buffer=32k flush=100ms;`,
  };
}

/**
 * nginx as an HTTPS reverse proxy: one worker, keep-alive upstream pool, headers like the
 * sidecar's; `accessLog` ({ file, format }): with an access log like the sidecar's, else none.
 */
/**
 * The sidecar's TLS policy in nginx's words (src/https/tls.ts): its suites in its order, held
 * (ssl_prefer_server_ciphers), ChaCha20 for a client that asks for it first, its curves. Every
 * front end seals with the same suite, so no figure differs by the cipher (AES-128-GCM for the
 * bench's OpenSSL clients, which list AES-256-GCM first).
 */
const NGINX_TLS_POLICY = [
  `ssl_ciphers ${CIPHERS.split(':')
    .filter((c) => !c.startsWith('TLS_'))
    .join(':')};`,
  `ssl_conf_command Ciphersuites ${CIPHERS.split(':')
    .filter((c) => c.startsWith('TLS_'))
    .join(':')};`,
  'ssl_conf_command Options PrioritizeChaCha;',
  'ssl_prefer_server_ciphers on;',
  'ssl_ecdh_curve X25519:prime256v1:secp384r1;',
].join('\n    ');

const NGINX_FORWARD_HTTP1 = `proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_buffer_size 64k;
      proxy_buffers 16 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;`;
const NGINX_FORWARD_H2C = `grpc_pass grpc://origin;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      grpc_set_header X-Forwarded-Proto https;
      grpc_set_header X-Forwarded-Port $server_port;
      grpc_buffer_size 64k;`;

/**
 * nginx as the HTTPS proxy in front of the origin: HTTP/1.1 to it, or with `h2c` HTTP/2 in clear
 * text (grpc_pass, what nginx offers a gRPC app).
 */
export async function startNginxProxy(dir, sourcePair, originPort, { accessLog, h2c = false } = {}) {
  const logging = nginxAccessLog(accessLog);
  const pair = ownCopy(sourcePair, join(dir, 'nginx-certs'), 'proxy');
  const port = await freePort();
  const { top, temps } = nginxCommon(dir, 'proxy');
  const config = `${top}
http {
  ${temps}
  ${logging.format}
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl http2 backlog=4096;
    ssl_certificate ${pair.cert};
    ssl_certificate_key ${pair.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ${NGINX_TLS_POLICY}
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    ${logging.log}
    location / {
      ${h2c ? NGINX_FORWARD_H2C : NGINX_FORWARD_HTTP1}
    }
  }
}
`;
  const proc = await startNginx(dir, 'proxy', config, port);
  return {
    name: 'nginx',
    h2: true,
    pid: proc.pid,
    port,
    proc,
    stop: () => proc.stop('SIGQUIT'),
    // nginx does not watch files: the fair comparison is a rename plus the
    // reload signal an operator (or a watcher script) would send.
    swapCert(next) {
      renameSync(next.key, pair.key);
      renameSync(next.cert, pair.cert);
      process.kill(proc.pid, 'SIGHUP');
    },
    swapNote: 'rename + SIGHUP',
  };
}

/**
 * nginx as the WebSocket proxy its documentation shows (Upgrade and Connection passed on), in
 * front of `originPort`. HTTP/1.1 only: nginx does not allow WebSockets over HTTP/2 (RFC 8441).
 */
export async function startNginxWebSocketProxy(dir, sourcePair, originPort) {
  const pair = ownCopy(sourcePair, join(dir, 'nginx-ws-certs'), 'proxy');
  const port = await freePort();
  const { top, temps } = nginxCommon(dir, 'ws-proxy');
  const config = `${top}
http {
  ${temps}
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${pair.cert};
    ssl_certificate_key ${pair.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ${NGINX_TLS_POLICY}
    location / {
      proxy_pass http://127.0.0.1:${originPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`;
  const proc = await startNginx(dir, 'ws-proxy', config, port);
  return { name: 'nginx', pid: proc.pid, port, proc, stop: () => proc.stop('SIGQUIT') };
}

/** A bare Node TLS server that answers by itself: what Node costs with no proxying. */
export async function startBareNode(_dir, pair, { extraNodeArgs = [] } = {}) {
  const port = await freePort();
  const h2Port = await freePort();
  const proc = startProcess(
    process.execPath,
    [
      ...extraNodeArgs,
      join(here, 'bare-node.mjs'),
      JSON.stringify({ port, h2Port, key: pair.key, cert: pair.cert }),
    ],
    { name: 'bare node' },
  );
  await waitForPort(port, { proc });
  await waitForPort(h2Port, { proc });
  // HTTP/2 on a port of its own (h2Port): the HTTP/1 figures stay those of a plain https server.
  return { name: 'node', h2: true, h2Port, pid: proc.pid, port, proc, stop: () => proc.stop() };
}

/**
 * The floor of a Node proxy built as the sidecar is: each client connection piped to a backend
 * connection of its own, no HTTP logic (relay.mjs); `flags` add one piece of the sidecar's work
 * each. Serves only what a 1:1 pipe can: keep-alive requests to the origin.
 */
export async function startRelay(pair, originPort, { flags = [], extraNodeArgs = [] } = {}) {
  const port = await freePort();
  const proc = startProcess(
    process.execPath,
    [
      ...extraNodeArgs,
      join(here, 'relay.mjs'),
      JSON.stringify({ port, origin: originPort, key: pair.key, cert: pair.cert, flags }),
    ],
    { name: `relay${flags.length > 0 ? ` (${flags.join(', ')})` : ''}` },
  );
  await waitForPort(port, { proc });
  return { name: 'relay', pid: proc.pid, port, proc, stop: () => proc.stop() };
}

/** The floor of a Node HTTP/2 proxy (h2-relay.mjs): bare Node's HTTP/2 plus a backend leg, nothing more. */
export async function startH2Relay(pair, originPort) {
  const port = await freePort();
  const proc = startProcess(
    process.execPath,
    [
      join(here, 'h2-relay.mjs'),
      JSON.stringify({ port, origin: originPort, key: pair.key, cert: pair.cert }),
    ],
    { name: 'h2-relay' },
  );
  await waitForPort(port, { proc });
  return { name: 'h2-relay', h2: true, pid: proc.pid, port, proc, stop: () => proc.stop() };
}

// HARBOR_BENCH_SIDECAR points at another build's entry point (e.g. a worktree
// of an older commit, to compare two versions in one run).
export const SIDECAR_CLI = process.env.HARBOR_BENCH_SIDECAR ?? join(repoRoot, 'dist', 'cli', 'sidecar.js');
export const SIDECAR_SERVICE = 'bench-https';

export function sidecarAvailable() {
  return existsSync(SIDECAR_CLI);
}

/**
 * harbor-sidecar in debug-shell mode in front of the origin. The pair is
 * placed as <service>.crt/.key in its own certs dir so a rename into place is
 * what the watcher sees. extraNodeArgs lets the profiler add --cpu-prof.
 */
export async function startSidecar(
  dir,
  pair,
  originPort,
  { extraNodeArgs = [], env = {}, cli = SIDECAR_CLI } = {},
) {
  const port = await freePort();
  const certsDir = join(dir, 'sidecar-certs');
  const { cert, key } = ownCopy(pair, certsDir, SIDECAR_SERVICE);
  const args = [...extraNodeArgs, ...sidecarCommand(cli, port, originPort, certsDir)];
  // A clean environment: the bench's own shell may hold platform variables.
  const childEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', ...env };
  const proc = startProcess(process.execPath, args, { name: 'harbor-sidecar', env: childEnv, cwd: dir });
  await waitForPort(port, { proc, timeoutMs: 15_000 });
  return {
    name: 'sidecar',
    h2: true,
    pid: proc.pid,
    port,
    proc,
    certsDir,
    stop: () => proc.stop('SIGTERM', 12_000),
    // The way a deploy tool swaps a pair: key then certificate, each renamed
    // into place (atomic per file); the watcher must pick it up by itself.
    swapCert(next) {
      renameSync(next.key, key);
      renameSync(next.cert, cert);
    },
    swapNote: 'rename only (watcher)',
  };
}

/** Copies a pair into a target's own folder, so that swapping one target's files leaves the others alone. */
/**
 * The sidecar's command line in the bench (after node's own flags): one service on `port` in
 * debug-shell mode in front of the origin, certificates from `certsDir`, no admin endpoint.
 */
export function sidecarCommand(cli, port, originPort, certsDir) {
  return [
    cli,
    'run',
    '--service',
    SIDECAR_SERVICE,
    '--int-port',
    String(port),
    '--backend',
    `127.0.0.1:${originPort}`,
    '--certs-dir',
    certsDir,
    '--admin',
    'off',
    '--log-level',
    'warn',
  ];
}

/** `pair` copied into `certsDir` as `<base>.crt` and `<base>.key` (the key 0600). */
export function ownCopy(pair, certsDir, base) {
  mkdirSync(certsDir, { recursive: true });
  const cert = join(certsDir, `${base}.crt`);
  const key = join(certsDir, `${base}.key`);
  copyFileSync(pair.key, key);
  chmodSync(key, 0o600);
  copyFileSync(pair.cert, cert);
  return { ...pair, cert, key };
}
