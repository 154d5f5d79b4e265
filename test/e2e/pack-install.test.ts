// What the runtime stage of Dockerfile.sidecar does, without Docker: build
// the package from the same context the image gets (.dockerignore's list),
// `npm pack` it (its production dependencies bundled, as locked), install the
// tarball into an empty folder --offline with --omit=dev and compare the
// installed tree with package-lock.json, show that a newer version of a
// dependency on the registry is not taken, and run the installed
// `harbor-sidecar run` end to end: HTTPS through it to a real backend, the
// admin endpoint on a unix socket, `harbor-sidecar status` (the HEALTHCHECK),
// /readyz following the backend, and SIGTERM. Then once more as the image
// runs it: tini as PID 1 (a PID namespace of its own), uid 1000, the image's
// ENV and PATH, its HEALTHCHECK command, SIGTERM to PID 1.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, get as httpGet, type IncomingHttpHeaders, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { installedPackagePaths, lockedTreeDifferences } from '../../scripts/locked-tree.mjs';
import { fetchReadiness } from '../../src/admin/index.js';
import type { Address } from '../../src/config/types.js';
import { cleanEnv, exited } from '../helpers/cli.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'harbor-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

// Under `npm test` the environment carries npm_config_local_prefix and friends for the
// repo; nested npm commands here must work on their own folders only.
const npmFreeEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

function sh(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = npmFreeEnv) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 180_000 });
  return {
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    error: result.error,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const seen: IncomingHttpHeaders[] = [];
function startBackend(port: number): Promise<Server> {
  const backend = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello from the backend: ${req.method} ${req.url}\n`);
  });
  return new Promise((resolve, reject) => {
    backend.once('error', reject);
    backend.listen(port, '127.0.0.1', () => resolve(backend));
  });
}

function httpsGet(port: number, ca: string, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, ca, servername: 'localhost', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Polls /readyz until it says `ready` (bounded: 150 tries, 100 ms apart), or the child exits. */
async function waitForReadiness(child: ChildProcess, admin: Address, ready: boolean) {
  let last = await fetchReadiness(admin);
  for (let i = 0; i < 150 && last.ready !== ready && child.exitCode === null; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await fetchReadiness(admin);
  }
  return last;
}

const stage = join(work, 'stage');
const pkgDir = join(work, 'pkg');
const app = join(work, 'app');
let tarball = '';

t.test('npm pack of the build context holds what the image runs, and nothing else', async (t) => {
  // The build context: exactly the paths .dockerignore lets through.
  const allowed = readFileSync(join(repo, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('!'))
    .map((line) => line.slice(1).replace(/\/$/, ''));
  mkdirSync(stage);
  for (const path of allowed) {
    if (existsSync(join(repo, path))) cpSync(join(repo, path), join(stage, path), { recursive: true });
  }
  // The image's `npm ci` gives the build its dependencies; the repo's are the same lockfile's.
  symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'), 'dir');

  // --noCheck: the same emit as the image's `npm run build` (verbatimModuleSyntax makes
  // it type-independent) at half the CPU; type checking is `npm test`'s own pretest step.
  const build = sh('npm', ['run', 'build', '--silent', '--', '--noCheck'], stage);
  t.equal(build.status, 0, 'npm run build succeeds', {
    output: `${build.stdout}${build.stderr}`.slice(-4000),
  });
  mkdirSync(pkgDir);
  const pack = sh('npm', ['pack', '--json', '--pack-destination', pkgDir], stage);
  t.equal(pack.status, 0, 'npm pack succeeds (its prepack check finds the locked tree)', {
    stderr: pack.stderr,
  });
  const [info] = JSON.parse(pack.stdout) as Array<{
    filename: string;
    files: Array<{ path: string }>;
    bundled: string[];
  }>;
  tarball = join(pkgDir, info?.filename ?? 'missing.tgz');
  const files = (info?.files ?? []).map((f) => f.path);
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
    dependencies: Record<string, string>;
  };
  for (const target of Object.values(pkg.bin)) {
    t.ok(files.includes(target), `the tarball has the bin ${target}`);
  }
  for (const needed of ['package.json', 'README.md', 'dist/admin/index.js']) {
    t.ok(files.includes(needed), `the tarball has ${needed}`);
  }
  const bundled = info?.bundled ?? [];
  for (const name of Object.keys(pkg.dependencies))
    t.ok(bundled.includes(name), `the tarball bundles ${name}`);
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  t.same(
    bundled.filter((name) => lock.packages[`node_modules/${name}`]?.dev === true),
    [],
    'it bundles production dependencies only',
  );
  const own = files.filter((f) => !f.startsWith('node_modules/'));
  const strays = own.filter((f) => /^(src|test|bench|scripts|\.tap)\/|\.ts$|^tsconfig/.test(f));
  t.same(strays, [], 'no sources, tests or build config in the tarball');

  // The prepack check is what keeps a drifted tree out of a tarball: it must refuse one.
  const drifted = join(work, 'drifted');
  mkdirSync(join(drifted, 'node_modules/fast-copy'), { recursive: true });
  cpSync(join(repo, 'package-lock.json'), join(drifted, 'package-lock.json'));
  writeFileSync(
    join(drifted, 'node_modules/fast-copy/package.json'),
    JSON.stringify({ name: 'fast-copy', version: '99.0.0' }),
  );
  const check = sh(process.execPath, [join(repo, 'scripts/locked-tree.mjs'), drifted], work);
  t.equal(check.status, 1, 'prepack refuses a node_modules that differs from the lock');
  t.match(
    check.stderr,
    /node_modules\/fast-copy: locked at [\d.]+, installed 99\.0\.0/,
    'naming the package',
  );
});

/** `npm install` of the tarball into `folder` (created), with the flags the recipes use. */
function installTarball(folder: string, extra: string[]) {
  mkdirSync(folder, { recursive: true });
  return sh(
    'npm',
    ['install', '--omit=dev', '--no-audit', '--no-fund', '--no-save', ...extra, tarball],
    folder,
  );
}

interface FakeRegistry {
  readonly url: string;
  /** The path of every request it has had so far (a marker request it answers last tells when all are in). */
  readonly requests: () => Promise<string[]>;
}

/** test/fixtures/npm-registry.mjs in a process of its own, offering `offers` (NAME@VERSION). */
async function startFakeRegistry(t: Test, offers: string[]): Promise<FakeRegistry> {
  const dir = join(work, 'registry');
  mkdirSync(dir);
  const fixture = join(repo, 'test/fixtures/npm-registry.mjs');
  const child = spawn(process.execPath, [fixture, dir, ...offers], {
    env: npmFreeEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      const found = /^url (\S+)$/m.exec(output)?.[1];
      if (found) resolve(found);
    });
    child.once('exit', (code) => reject(new Error(`the test registry exited (${code}) before listening`)));
  });
  let markers = 0;
  const requests = async () => {
    const marker = `/-/marker-${++markers}`;
    await new Promise<void>((resolve, reject) =>
      httpGet(`${url}${marker.slice(1)}`, { agent: false }, (res) => res.resume().on('end', resolve)).on(
        'error',
        reject,
      ),
    );
    // The registry prints each request as it comes, in order: once the marker's line is
    // read, every request before it has been read too.
    while (!output.includes(`request ${marker}\n`)) await new Promise((resolve) => setImmediate(resolve));
    return [...output.matchAll(/^request (\S+)$/gm)]
      .map((m) => m[1] ?? '')
      .filter((path) => !path.startsWith('/-/marker-'));
  };
  return { url, requests };
}

/** Every difference between the tree installed under `packageRoot` and package-lock.json's production tree. */
const treeDrift = (packageRoot: string) =>
  lockedTreeDifferences(join(repo, 'package-lock.json'), packageRoot, { production: true });

t.test('the tarball installs the locked tree, offline, with production dependencies only', async (t) => {
  // An empty cache and --offline: the tarball alone must be enough. No registry, so nothing
  // the registry publishes can reach the install.
  const install = installTarball(app, ['--offline', '--cache', join(work, 'empty-cache')]);
  t.equal(install.status, 0, 'npm install --offline --omit=dev of the tarball succeeds', {
    stderr: install.stderr,
  });
  t.ok(existsSync(join(app, 'node_modules/.bin/harbor-sidecar')), 'node_modules/.bin/harbor-sidecar');
  const version = sh(join(app, 'node_modules/.bin/harbor-sidecar'), ['--version'], app, cleanEnv());
  t.equal(
    version.stdout.trim(),
    JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version,
    '--version',
  );
  const nodeHelp = sh(join(app, 'node_modules/.bin/harbor-node'), ['--help'], app, cleanEnv());
  t.equal(nodeHelp.status, 0, 'the installed harbor-node starts (--help)', { stderr: nodeHelp.stderr });

  t.same(
    installedPackagePaths(app).filter((path) => !path.includes('/node_modules/')),
    ['node_modules/harbor-sidecar'],
    'one package at the top: ours',
  );
  t.same(
    treeDrift(join(app, 'node_modules/harbor-sidecar')),
    [],
    'every installed dependency is where and the version package-lock.json locks, no dev dependency',
  );

  // The figure docs/operations.md quotes for the image's own layer; a budget so that a
  // development tool slipping into "dependencies" (typescript alone is ~23 MiB) is caught.
  const kib = Number(sh('du', ['-sk', join(app, 'node_modules')], app).stdout.split('\t')[0]);
  const count = installedPackagePaths(join(app, 'node_modules/harbor-sidecar')).length;
  t.comment(`installed: ${count} dependencies, ${kib} KiB on disk (du -sk node_modules)`);
  t.ok(kib > 0 && kib < 25 * 1024, `the production install stays under 25 MiB (${kib} KiB)`);
});

t.test('a newer transitive dependency on the registry is not taken, locally or globally', async (t) => {
  // The day's registry: fast-copy (pino-pretty's dependency, the one that drifted on
  // 2026-11-30) at a version inside every caret range of the locked one.
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const locked = lock.packages['node_modules/fast-copy']?.version ?? '';
  t.match(locked, /^\d+\.\d+\.\d+$/, `fast-copy is locked (${locked})`);
  const newer = `${locked.split('.')[0]}.999.0`;
  const registry = await startFakeRegistry(t, [`fast-copy@${newer}`]);
  const online = ['--registry', registry.url, '--prefer-online'];

  // The control: a project that asks for fast-copy by range gets the newer version from it.
  const probe = join(work, 'probe');
  mkdirSync(probe);
  writeFileSync(
    join(probe, 'package.json'),
    JSON.stringify({ name: 'probe', version: '1.0.0', dependencies: { 'fast-copy': `^${locked}` } }),
  );
  const control = sh(
    'npm',
    ['install', '--no-audit', '--no-fund', ...online, '--cache', join(work, 'c1')],
    probe,
  );
  t.equal(control.status, 0, 'the control install succeeds', { stderr: control.stderr });
  t.equal(
    JSON.parse(readFileSync(join(probe, 'node_modules/fast-copy/package.json'), 'utf8')).version,
    newer,
    `the registry really offers fast-copy ${newer}, and a range takes it`,
  );

  const controlRequests = (await registry.requests()).length;
  t.ok(controlRequests > 0, `the control install asked the registry (${controlRequests} requests)`);
  const local = join(work, 'app-online');
  const install = installTarball(local, [...online, '--cache', join(work, 'c2')]);
  t.equal(install.status, 0, 'the tarball installs with that registry online', { stderr: install.stderr });
  t.same(treeDrift(join(local, 'node_modules/harbor-sidecar')), [], 'the locked tree, not the newer one');

  // The systemd recipe's global install (npm install -g), into a prefix of its own.
  const prefix = join(work, 'global');
  const global = installTarball(prefix, ['-g', '--prefix', prefix, ...online, '--cache', join(work, 'c3')]);
  t.equal(global.status, 0, 'npm install -g of the tarball succeeds', { stderr: global.stderr });
  t.same(treeDrift(join(prefix, 'lib/node_modules/harbor-sidecar')), [], 'a global install gets it too');
  t.ok(existsSync(join(prefix, 'bin/harbor-sidecar')), 'and links the bin');
  t.same(
    (await registry.requests()).slice(controlRequests),
    [],
    'neither install asked the registry for anything',
  );
});

t.test(
  'the installed harbor-sidecar serves HTTPS to a backend, with admin, status and SIGTERM',
  async (t) => {
    const certs = join(work, 'certs');
    mkdirSync(certs);
    const openssl = sh(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(certs, 'web-https.key'),
        '-out',
        join(certs, 'web-https.crt'),
        '-days',
        '30',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      work,
    );
    t.equal(openssl.status, 0, 'openssl makes the pair', { stderr: openssl.stderr });
    const ca = readFileSync(join(certs, 'web-https.crt'), 'utf8');

    const backendPort = await freePort();
    let backend = await startBackend(backendPort);
    t.teardown(() => new Promise<void>((resolve) => backend.close(() => resolve())));
    const intPort = await freePort();
    const socket = join(work, 'admin.sock');
    const admin: Address = { kind: 'unix', path: socket };
    const bin = join(app, 'node_modules/.bin/harbor-sidecar');

    const child = spawn(
      bin,
      [
        'run',
        '--service',
        'web-https',
        '--int-port',
        String(intPort),
        '--backend',
        `127.0.0.1:${backendPort}`,
        '--certs-dir',
        certs,
        '--admin',
        socket,
      ],
      { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });

    const ready = await waitForReadiness(child, admin, true);
    t.same(ready, { ready: true, reasons: [], httpStatus: 200 }, '/readyz says ready', {
      output: output.slice(-3000),
    });
    if (!ready.ready) return;

    const answer = await httpsGet(intPort, ca, '/hello?x=1');
    t.equal(answer.status, 200, 'HTTPS through the installed sidecar: 200');
    t.equal(answer.body, 'hello from the backend: GET /hello?x=1\n', "the body is the backend's");
    t.equal(seen.at(-1)?.['x-forwarded-proto'], 'https', 'the backend sees X-Forwarded-Proto: https');

    // The image's HEALTHCHECK: `harbor-sidecar status`, installed, against the running sidecar.
    const env = cleanEnv({ HARBOR_ADMIN: socket });
    const status = sh(bin, ['status'], app, env);
    t.equal(status.status, 0, 'status exits 0 when ready', { output: `${status.stdout}${status.stderr}` });
    t.match(
      status.stdout,
      new RegExp(`^web-https +https +${intPort} .*CN=localhost +(29|30) `, 'm'),
      'the table shows the service, its port, subject and days left',
    );
    t.match(status.stdout, /\nready\n$/, 'and says ready');
    const json = sh(bin, ['status', '--json'], app, env);
    t.equal(json.status, 0, 'status --json exits 0');
    const document = JSON.parse(json.stdout);
    t.match(
      document,
      {
        ready: true,
        services: [{ name: 'web-https', protocol: 'https', int_port: intPort }],
      },
      'status --json: the /status document with ready',
    );
    t.ok(document.services[0].counters.requests['2xx'] >= 1, '/status counts the request');

    // Real traffic moved the Prometheus counters.
    const metrics = await new Promise<string>((resolve, reject) => {
      const req = httpGet({ socketPath: socket, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
    });
    const requests2xx =
      /^harbor_requests_total\{(?=[^}]*service="web-https")(?=[^}]*class="2xx")[^}]*\} (\d+)$/m.exec(metrics);
    t.ok(Number(requests2xx?.[1]) >= 1, 'harbor_requests_total{class="2xx"} counts the request');
    t.match(metrics, /^harbor_connections_total\{service="web-https"\} [1-9]\d*$/m, 'connections counted');
    t.match(metrics, /^process_resident_memory_bytes \d+/m, 'process metrics present');

    // The backend goes away: /readyz is 503 and status exits 1; it comes back: 200 again.
    await new Promise<void>((resolve) => backend.close(() => resolve()));
    const down = await waitForReadiness(child, admin, false);
    t.equal(down.httpStatus, 503, 'not ready while the backend is down');
    t.ok(
      down.reasons.some((r) => r.startsWith('web-https') && /backend/.test(r)),
      `the reason names the service and its backend: ${down.reasons}`,
    );
    const downStatus = sh(bin, ['status'], app, env);
    t.equal(downStatus.status, 1, 'status exits 1 when not ready');
    t.match(downStatus.stdout, /\nnot ready\n {2}web-https/, 'and prints the reason');
    backend = await startBackend(backendPort);
    t.equal((await waitForReadiness(child, admin, true)).httpStatus, 200, 'ready again');

    child.kill('SIGTERM');
    t.same(await exited(child), { code: 0, signal: null }, 'SIGTERM: exit 0');
    t.notOk(existsSync(socket), 'the admin socket is removed on exit');
  },
);

/** Why the image-like run cannot happen here, or false when it can. */
function imageRunUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (unshare --pid, setpriv) as in CI';
  if (!existsSync('/usr/bin/tini')) return 'tini is not installed (Debian package tini)';
  if (sh('unshare', ['--pid', '--fork', 'true'], work).status !== 0)
    return 'unshare --pid is not permitted here';
  return false;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

const procField = (pid: number, field: string) =>
  new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';

t.test(
  'as the image runs it: tini as PID 1, uid 1000, PATH and settings from ENV, HEALTHCHECK, SIGTERM',
  { skip: imageRunUnavailable() },
  async (t) => {
    // What the runtime stage sets up: a certificate mount readable by uid 1000, the image's ENV.
    chmodSync(work, 0o755);
    const certs = join(work, 'image-certs');
    mkdirSync(certs);
    const openssl = sh(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certs, 'harbor.key')]
        .concat(['-out', join(certs, 'harbor.crt'), '-days', '10', '-subj', '/CN=localhost'])
        .concat(['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']),
      work,
    );
    t.equal(openssl.status, 0, 'openssl makes the pair', { stderr: openssl.stderr });
    chmodSync(join(certs, 'harbor.key'), 0o644); // a Kubernetes secret volume's defaultMode
    const backendPort = await freePort();
    const backend = await startBackend(backendPort);
    t.teardown(() => new Promise<void>((resolve) => backend.close(() => resolve())));
    const intPort = await freePort();
    const adminPort = await freePort();
    const env = {
      ...cleanEnv(),
      PATH: `${join(app, 'node_modules/.bin')}:${process.env.PATH}`,
      NODE_ENV: 'production',
      HARBOR_APP_ROOT: app,
      HARBOR_CERTS_DIR: certs,
      HARBOR_ADMIN: `127.0.0.1:${adminPort}`,
      STACKATO_SERVICES: JSON.stringify({ 'shop-https': { int_port: intPort, port: 35048 } }),
      HARBOR_BACKEND: `127.0.0.1:${backendPort}`,
    };
    // `USER 1000:1000`, emulated by setpriv, which execs in place as Docker does.
    const asUser = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'];
    // ENTRYPOINT ["/usr/bin/tini", "--", "harbor-sidecar"] + CMD ["run"], in a PID namespace of its own.
    const box = spawn(
      'unshare',
      ['--pid', '--fork', '--kill-child', '/usr/bin/tini', '--', ...asUser, 'harbor-sidecar', 'run'],
      { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.teardown(() => {
      if (box.exitCode === null) box.kill('SIGKILL');
    });
    let output = '';
    box.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    box.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });

    const admin: Address = { kind: 'tcp', host: '127.0.0.1', port: adminPort };
    const ready = await waitForReadiness(box, admin, true);
    t.equal(ready.httpStatus, 200, 'ready', { output: output.slice(-3000) });
    if (!ready.ready) return;

    const [tini] = childrenOf(box.pid ?? 0);
    t.ok(tini, 'unshare started tini');
    t.equal(procField(tini ?? 0, 'Name'), 'tini', 'PID 1 is tini');
    t.match(procField(tini ?? 0, 'NSpid'), /\s1$/, 'tini is PID 1 in its namespace');
    const [sidecar] = childrenOf(tini ?? 0);
    t.match(procField(sidecar ?? 0, 'Uid'), /^1000\s/, 'harbor-sidecar runs as uid 1000');

    const answer = await httpsGet(intPort, readFileSync(join(certs, 'harbor.crt'), 'utf8'), '/image');
    t.equal(
      answer.body,
      'hello from the backend: GET /image\n',
      'HTTPS through it, harbor.crt from HARBOR_CERTS_DIR',
    );

    // HEALTHCHECK CMD ["harbor-sidecar", "status"], as the image's user with the image's ENV.
    const health = sh(asUser[0] ?? 'setpriv', [...asUser.slice(1), 'harbor-sidecar', 'status'], app, env);
    t.equal(health.status, 0, 'the HEALTHCHECK command passes', { output: health.stdout + health.stderr });
    t.match(health.stdout, /^shop-https +https /m, 'and prints the service');

    // `docker stop` signals PID 1; tini passes it on and exits with harbor-sidecar's status.
    process.kill(tini ?? 0, 'SIGTERM');
    t.same(await exited(box), { code: 0, signal: null }, 'SIGTERM to PID 1: a clean drain, exit 0');
  },
);
