// There is no Docker engine on these machines, so Dockerfile.sidecar is
// proven in two halves: test/e2e/pack-install.test.ts runs what its runtime
// stage installs, and this file reads the recipe and fails when a step the
// image needs is dropped or weakened. The checks run on mutated copies too, so
// each one is known to be able to fail.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { DEFAULT_ADMIN_ADDRESS } from '../src/admin/index.js';

const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}
interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Dockerfile syntax as far as this recipe uses it: comments, `\` continuations, ARG defaults in FROM. */
function parseDockerfile(text: string): { stages: Stage[]; globalArgs: Map<string, string> } {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return; // comments inside a continued instruction
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const space = full.search(/\s/);
    instructions.push({
      keyword: (space === -1 ? full : full.slice(0, space)).toUpperCase(),
      args: space === -1 ? '' : full.slice(space + 1).trim(),
      line: start,
    });
  });
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      const image = (match?.[1] ?? '').replace(
        /\$\{?(\w+)\}?/g,
        (_, name: string) => globalArgs.get(name) ?? '',
      );
      stages.push({ image, name: match?.[2], instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name = '', value = ''] = instruction.args.split('=');
        globalArgs.set(name.trim(), value.trim());
      }
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { stages, globalArgs };
}

/** .dockerignore semantics for top-level paths: patterns in order, the last one that matches wins. */
function dockerignored(patterns: readonly string[], path: string): boolean {
  let ignored = false;
  const top = path.replace(/^\.\//, '').replace(/\/$/, '');
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/\/$/, '');
    const regex = new RegExp(
      `^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`,
    );
    if (regex.test(top)) ignored = !negated;
  }
  return ignored;
}

function jsonArray(args: string): string[] | undefined {
  try {
    const value = JSON.parse(args);
    return Array.isArray(value) ? value.map(String) : undefined;
  } catch {
    return undefined;
  }
}

interface PackageJson {
  readonly license: string;
  readonly files: readonly string[];
  readonly bin: Readonly<Record<string, string>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly bundleDependencies?: boolean | readonly string[];
  readonly scripts?: Readonly<Record<string, string>>;
}

/** Every problem with the recipe, one line each; empty when the image would be what the issue asks for. */
function checkRecipe(dockerfile: string, dockerignore: string, pkg: PackageJson): string[] {
  const problems: string[] = [];
  const { stages } = parseDockerfile(dockerfile);
  const ignore = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (stages.length < 2)
    return [`want a multi-stage build (build + runtime), found ${stages.length} stage(s)`];
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

  for (const stage of stages) {
    const pinned =
      /^node:\d+\.\d+\.\d+-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.test(stage.image) ||
      /@sha256:[0-9a-f]{64}$/.test(stage.image);
    if (!pinned) problems.push(`FROM ${stage.image || '(empty)'}: the base must be a pinned slim Node image`);
  }

  // Build stage: dev dependencies, compile, pack with the lockfile inside.
  const buildRuns = runs(build).join(' && ');
  if (!/\bnpm ci\b/.test(buildRuns) || /npm ci[^&]*--omit=dev/.test(buildRuns)) {
    problems.push('build stage: must install dev dependencies with npm ci');
  }
  if (!/\bnpm run build\b/.test(buildRuns)) problems.push('build stage: must run npm run build');
  if (!/\bnpm pack\b/.test(buildRuns)) problems.push('build stage: must npm pack the package');
  // The tarball carries the locked production tree (docs/operations.md, "Why the package
  // bundles its dependencies"): every dependency bundled, and the prepack check that refuses
  // a node_modules that differs from the lockfile must be in the build context to run.
  const bundled = pkg.bundleDependencies;
  const unbundled = Object.keys(pkg.dependencies ?? {}).filter(
    (name) => bundled !== true && !(Array.isArray(bundled) && bundled.includes(name)),
  );
  if (unbundled.length > 0) {
    problems.push(
      `package.json: ${unbundled.join(', ')} not in "bundleDependencies", so the install takes them from the registry`,
    );
  }
  if (!/scripts\/locked-tree\.mjs/.test(pkg.scripts?.prepack ?? '')) {
    problems.push('package.json: "prepack" must run scripts/locked-tree.mjs (no pack of an unlocked tree)');
  }
  const buildSources = of(build, 'COPY').flatMap((i) => {
    const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    return parts.slice(0, -1);
  });
  const copied = (path: string) =>
    buildSources.some((source) => source.replace(/\/$/, '') === path.replace(/\/$/, ''));
  for (const needed of [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src',
    'scripts',
  ]) {
    if (!copied(needed)) problems.push(`build stage: does not COPY ${needed}`);
  }
  for (const entry of pkg.files) {
    // dist/ is made by the build; everything else in "files" must be copied in or the tarball lacks it.
    if (entry.replace(/\/$/, '') === 'dist') continue;
    if (!copied(entry))
      problems.push(`build stage: package.json "files" has ${entry} but the build stage does not COPY it`);
  }
  for (const source of buildSources) {
    if (dockerignored(ignore, source))
      problems.push(`.dockerignore excludes ${source}, which the build stage copies`);
  }
  for (const [name, target] of Object.entries(pkg.bin)) {
    if (!target.startsWith('dist/'))
      problems.push(`bin ${name} (${target}) is not under dist/, so it is not built and packed`);
  }

  // Runtime stage: only the packed tarball, production dependencies.
  const fromBuild = of(runtime, 'COPY').filter((i) =>
    new RegExp(`--from=${build.name ?? '0'}\\b`).test(i.args),
  );
  if (fromBuild.length === 0) problems.push('runtime stage: copies nothing from the build stage');
  for (const copy of fromBuild) {
    if (/\b(src|node_modules|dist)\b/.test(copy.args)) {
      problems.push(
        `runtime stage: copies ${copy.args} from the build stage; install the packed tarball instead`,
      );
    }
  }
  const runtimeRuns = runs(runtime).join(' && ');
  if (!/npm install [^&]*--omit=dev[^&]*harbor-sidecar-\*\.tgz/.test(runtimeRuns)) {
    problems.push('runtime stage: must npm install --omit=dev the packed harbor-sidecar-*.tgz');
  }
  if (/\bnpm ci\b/.test(runtimeRuns)) problems.push('runtime stage: must not npm ci (dev dependencies)');
  if (!/npm install [^&]*--offline[^&]*harbor-sidecar-\*\.tgz/.test(runtimeRuns)) {
    problems.push('runtime stage: must install the tarball --offline (its bundled tree, never the registry)');
  }

  // PID 1, user, health, ports, mount point, labels.
  const entrypoint = jsonArray(of(runtime, 'ENTRYPOINT').at(-1)?.args ?? '') ?? [];
  if (!/tini$/.test(entrypoint[0] ?? '') || !entrypoint.includes('harbor-sidecar')) {
    problems.push(
      'runtime stage: ENTRYPOINT must be tini (PID 1: forwards signals, reaps) running harbor-sidecar',
    );
  }
  if (!/apt-get install[^&]*\btini\b/.test(runtimeRuns))
    problems.push('runtime stage: does not install tini');
  const user = of(runtime, 'USER').at(-1);
  const userName = user?.args.split(':')[0] ?? '';
  if (!user || userName === 'root' || userName === '0') {
    problems.push('runtime stage: must end with USER set to a non-root user');
  } else if (!/^\d+$/.test(userName)) {
    problems.push('runtime stage: USER must be numeric so Kubernetes runAsNonRoot can verify it');
  } else if (of(runtime, 'RUN').some((i) => i.line > user.line)) {
    problems.push('runtime stage: RUN after USER (the image would build files as the wrong owner)');
  }
  const health = of(runtime, 'HEALTHCHECK').at(-1);
  const healthCommand = health ? jsonArray(health.args.replace(/^.*?\bCMD\s+/, '')) : undefined;
  if (healthCommand?.[0] !== 'harbor-sidecar' || healthCommand[1] !== 'status') {
    problems.push('runtime stage: HEALTHCHECK must run ["harbor-sidecar", "status"] (the admin endpoint)');
  }
  const envText = of(runtime, 'ENV')
    .map((i) => i.args)
    .join(' ');
  const env = new Map([...envText.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
  const exposed = of(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => p.split('/')[0]));
  const adminPort = /:(\d+)$/.exec(env.get('HARBOR_ADMIN') ?? '')?.[1];
  if (!adminPort) problems.push('runtime stage: ENV HARBOR_ADMIN must set a host:port the kubelet can reach');
  else if (!exposed.includes(adminPort))
    problems.push(`runtime stage: EXPOSE does not list the admin port ${adminPort}`);
  if (env.get('HARBOR_ADMIN')?.startsWith('127.')) {
    problems.push('runtime stage: HARBOR_ADMIN on loopback cannot serve a Kubernetes readiness probe');
  }
  if (!/node_modules\/\.bin/.test(env.get('PATH') ?? '')) {
    problems.push(
      'runtime stage: PATH must include node_modules/.bin (HEALTHCHECK runs harbor-sidecar by name)',
    );
  }
  const certs = env.get('HARBOR_CERTS_DIR');
  const volumes = of(runtime, 'VOLUME').flatMap((i) => jsonArray(i.args) ?? i.args.split(/\s+/));
  if (!certs) problems.push('runtime stage: ENV HARBOR_CERTS_DIR must name the certificate mount point');
  else if (!volumes.includes(certs)) problems.push(`runtime stage: VOLUME does not declare ${certs}`);
  const labels = of(runtime, 'LABEL')
    .map((i) => i.args)
    .join(' ');
  for (const label of ['title', 'description', 'version', 'licenses']) {
    if (!labels.includes(`org.opencontainers.image.${label}=`)) {
      problems.push(`runtime stage: LABEL org.opencontainers.image.${label} missing`);
    }
  }
  if (!labels.includes(`org.opencontainers.image.licenses="${pkg.license}"`)) {
    problems.push(`runtime stage: the licenses label must say ${pkg.license}, as package.json does`);
  }
  return problems;
}

const dockerfile = read('Dockerfile.sidecar');
const dockerignore = read('.dockerignore');
const pkg = JSON.parse(read('package.json')) as PackageJson;

t.test('Dockerfile.sidecar has every step the image needs', async (t) => {
  t.same(checkRecipe(dockerfile, dockerignore, pkg), []);
  const { stages } = parseDockerfile(dockerfile);
  t.equal(stages.length, 2);
  t.equal(stages[0]?.name, 'build');
  t.equal(stages[1]?.name, 'runtime');
  t.match(stages[1]?.image, /^node:20\.\d+\.\d+-bookworm-slim/, 'Node 20 as package.json engines says');
  t.ok(
    /EXPOSE[^\n]*\b9701\b/.test(dockerfile) &&
      DEFAULT_ADMIN_ADDRESS.kind === 'tcp' &&
      DEFAULT_ADMIN_ADDRESS.port === 9701,
    'the image exposes the default admin port',
  );
});

t.test('the package ships what the runtime stage installs', async (t) => {
  t.ok(pkg.files.includes('dist/'), 'package.json "files" has dist/');
  t.ok(pkg.files.includes('README.md'), 'package.json "files" has README.md');
  t.equal(pkg.bin['harbor-sidecar'], 'dist/cli/sidecar.js');
  const build = JSON.parse(read('tsconfig.build.json')) as {
    compilerOptions: { outDir: string };
    include: string[];
  };
  t.equal(build.compilerOptions.outDir, 'dist', 'npm run build writes dist/');
  t.same(build.include, ['src'], 'and builds only src/, which the build stage copies');
  for (const path of ['node_modules', 'dist', '.git', 'test', 'certs/harbor.key', 'x.tgz', '.env']) {
    t.ok(dockerignored(dockerignore.split('\n'), path), `.dockerignore keeps ${path} out of the context`);
  }
});

t.test('each check fails when its step is dropped', async (t) => {
  const mutate = (from: RegExp | string, to: string) => {
    const changed = dockerfile.replace(from, to);
    t.not(changed, dockerfile, `mutation ${String(from)} applies`);
    return checkRecipe(changed, dockerignore, pkg);
  };
  const cases: Array<[RegExp | string, string, RegExp]> = [
    [/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, '', /HEALTHCHECK/],
    [/^USER .*$/m, '', /non-root/],
    [/^USER .*$/m, 'USER root', /non-root/],
    [/^USER .*$/m, 'USER node', /numeric/],
    ['ARG NODE_IMAGE=node:20.20.2-bookworm-slim', 'ARG NODE_IMAGE=node:20-slim', /pinned/],
    ['ARG NODE_IMAGE=node:20.20.2-bookworm-slim', 'ARG NODE_IMAGE=node:latest', /pinned/],
    [/npm pack --pack-destination \/pkg/, 'true', /npm pack/],
    [/npm ci --no-audit --no-fund/, 'npm install', /npm ci/],
    [/^COPY scripts .*$/m, '', /COPY scripts/],
    [/npm install --offline /, 'npm install ', /--offline/],
    [/^COPY certs-example .*$/m, '', /certs-example/],
    [/^COPY src .*$/m, '', /COPY src/],
    [/--omit=dev --no-audit --no-fund --no-save/, '--no-save', /--omit=dev/],
    [
      /COPY --from=build \/pkg\/ \/tmp\/pkg\//,
      'COPY --from=build /src/node_modules /app/node_modules',
      /packed tarball|copies/,
    ],
    [/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["harbor-sidecar"]', /tini/],
    [/apt-get install -y --no-install-recommends tini/, 'true', /install tini/],
    [/^EXPOSE .*$/m, 'EXPOSE 4100', /admin port/],
    [/HARBOR_ADMIN=0\.0\.0\.0:9701/, 'HARBOR_ADMIN=127.0.0.1:9701', /loopback/],
    [/^VOLUME .*$/m, '', /VOLUME/],
    [/ {6}org\.opencontainers\.image\.licenses="Apache-2\.0" \\\n/, '', /licenses/],
    [/^FROM \$\{NODE_IMAGE\} AS build[\s\S]*?(?=^FROM)/m, '', /multi-stage/],
  ];
  for (const [from, to, problem] of cases) {
    const problems = mutate(from, to);
    t.ok(
      problems.some((p) => problem.test(p)),
      `dropping ${String(from).slice(0, 60)} is caught (${problems.join('; ') || 'no problem found'})`,
    );
  }
  t.match(checkRecipe(dockerfile, `${dockerignore}\nsrc\n`, pkg).join('\n'), /\.dockerignore excludes src/);
  t.match(
    checkRecipe(dockerfile, dockerignore, { ...pkg, bundleDependencies: undefined }).join('\n'),
    /not in "bundleDependencies"/,
  );
  t.match(
    checkRecipe(dockerfile, dockerignore, { ...pkg, bundleDependencies: ['pino'] }).join('\n'),
    /chokidar.*not in "bundleDependencies"/,
  );
  t.match(
    checkRecipe(dockerfile, dockerignore, { ...pkg, scripts: { ...pkg.scripts, prepack: '' } }).join('\n'),
    /prepack/,
  );
  t.match(
    checkRecipe(dockerfile, dockerignore, { ...pkg, files: [...pkg.files, 'docs/'] }).join('\n'),
    /"files" has docs\//,
  );
});
