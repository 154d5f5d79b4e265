// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the docs hold ${name} as text
// The command blocks of README.md and docs/node.md, run as written by a real
// bash: extracted from the markdown (never copied here), in a sandbox folder,
// in a network namespace of their own (so that 9700, 9701 and 8080 are free
// whatever else runs) with a tmpfs on /var/lib (docs/node.md's state path),
// and the three programs on the PATH as an installed package puts them. A
// server a block starts (a line ending in `&`, or harbor-node in the
// foreground) runs in the background and is waited for before the next line.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { DEADLINE_MS } from './helpers/wait.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function blocks(file: string, language: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/```(\w*)\n([\s\S]*?)```/g)].filter((m) => m[1] === language).map((m) => m[2]!);
}

/** The command lines of a block: comments after the command dropped. */
function commands(block: string): string[] {
  return block
    .split('\n')
    .map((line) => line.replace(/\s{2,}#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Where a backgrounded server answers once it is up (its documented default address). */
function readyUrl(line: string): string | undefined {
  if (/^harbor-node(\s|$)/.test(line) && !/^harbor-node store\b/.test(line))
    return 'http://127.0.0.1:9700/readyz';
  if (/^harbor-sidecar run\b/.test(line)) return 'http://127.0.0.1:9701/readyz';
  const http = /http\.server (\d+)/.exec(line);
  if (http) return `http://127.0.0.1:${http[1]}/`;
  return undefined;
}

/** Single-quoted for bash: printed as it is, nothing expanded. */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A bash script that runs the lines in order, stopping at the first that fails. */
function script(lines: readonly string[]): string {
  const out = [
    'set -u',
    'wait_ready() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "NOT READY: $1"; return 1; }',
  ];
  lines.forEach((line, i) => {
    const server = readyUrl(line);
    const background = line.endsWith('&') || server !== undefined;
    const command = line.replace(/&$/, '').trim();
    out.push(`echo ${quote(`+ ${command}`)}`);
    if (background) {
      out.push(`${command} > server-${i}.log 2>&1 &`);
      if (server) out.push(`wait_ready ${server} || { cat server-${i}.log; exit 1; }`);
    } else {
      out.push(`${command} || { echo "FAILED with $?:" ${quote(command)}; exit 1; }`);
    }
  });
  return `${out.join('\n')}\n`;
}

const canIsolate =
  process.getuid?.() !== 0 ||
  spawnSync('unshare', ['-n', '-m', '-p', '-f', '--mount-proc', 'true']).status !== 0
    ? 'needs root for network, mount and PID namespaces (unshare -n -m -p), as in CI'
    : spawnSync('ip', ['-V']).status !== 0
      ? 'needs ip (iproute2) to bring up the namespace loopback, as in CI'
      : spawnSync('python3', ['--version']).status !== 0
        ? 'needs python3 (the README block serves an app with it), as in CI'
        : false;

/** Runs `lines` in a fresh sandbox; resolves with the exit status and everything printed. */
function runInSandbox(t: Test, lines: readonly string[]): Promise<{ status: number | null; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-docs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  spawnSync('mkdir', ['-p', bin]);
  for (const [name, file] of [
    ['harbor-sidecar', 'sidecar.js'],
    ['harbor-node', 'node.js'],
    ['harbor', 'harbor.js'],
  ]) {
    const path = join(bin, name!);
    writeFileSync(path, `#!/bin/sh\nexec ${process.execPath} ${join(ROOT, 'dist', 'cli', file!)} "$@"\n`, {
      mode: 0o755,
    });
  }
  writeFileSync(join(dir, 'run.sh'), script(lines));
  const inner = `ip link set lo up && mount -t tmpfs tmpfs /var/lib && cd ${dir} && bash run.sh; status=$?; kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; exit $status`;
  return new Promise((resolve) => {
    // A PID namespace too (-p -f): when bash ends, every process the block started ends with it,
    // grandchildren included (a node behind an npm bin wrapper outlived pkill -P before).
    const child = spawn(
      'unshare',
      ['-n', '-m', '-p', '-f', '--mount-proc', '--kill-child', 'bash', '-c', inner],
      {
        env: { PATH: `${bin}:${process.env.PATH}`, HOME: dir, LANG: 'C.UTF-8' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS * 2);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

t.test('README: the debug-shell block, as written', { skip: canIsolate }, async (t) => {
  const block = blocks('README.md', 'sh').find((b) => b.includes('harbor-sidecar certs generate'));
  t.ok(block, 'found in README.md');
  const lines = commands(block!);
  t.ok(lines.length >= 5, lines.join(' | '));
  const { status, output } = await runInSandbox(t, lines);
  t.equal(status, 0, output);
  t.match(output, /wrote .*certs\/shop-https\.crt/, 'the pair was made');
  t.match(output, /answered at 127\.0\.0\.1:9701\nSERVICE/, 'status read the sidecar just started');
  t.match(output, /Directory listing|<html/i, "the app's page came back over HTTPS");
});

t.test(
  "README: a developer's block (harbor, the manifest, harbor-sidecar env), as written",
  { skip: canIsolate },
  async (t) => {
    const block = blocks('README.md', 'sh').find((b) => b.includes('harbor create-service'));
    t.ok(block, 'found in README.md');
    const { status, output } = await runInSandbox(t, commands(block!));
    t.equal(status, 0, output);
    t.match(output, /created debug-port on http:\/\/127\.0\.0\.1:9700/);
    t.match(output, /^debug-port +tcp +\d+/m, 'the services table');
    t.match(output, /export STACKATO_HARBOR_UDP_MY_APP='\d+'/, 'udp-${name} reached the app as its variable');
  },
);

t.test(
  'docs/node.md: the first command, then a create answers 201 with its state written',
  { skip: canIsolate },
  async (t) => {
    const block = blocks('docs/node.md', '').find((b) => b.startsWith('harbor-node '));
    t.ok(block, 'found in docs/node.md');
    const lines = [
      ...commands(block!),
      `curl -sf -X POST http://127.0.0.1:9700/v1/services -d '{"name":"my-port"}'`,
      'grep -q my-port /var/lib/harbor/state.json',
    ];
    const { status, output } = await runInSandbox(t, lines);
    t.equal(status, 0, output);
    t.match(output, /"name":"[0-9a-f-]{36}","node_id":"harbor_node_1"/);
  },
);
