import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openssl } from '../fixtures/certs-helpers.js';
import { runSidecar } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'harbor-certs-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('certs generate writes a pair openssl accepts, key 0600, that check then passes', async (t) => {
  for (const type of ['ecdsa', 'rsa']) {
    const name = `${type}-https`;
    const result = runSidecar([
      'certs',
      'generate',
      '--name',
      name,
      '--host',
      'localhost',
      '--host',
      '::1',
      '--out',
      dir,
      '--type',
      type,
      '--days',
      '30',
    ]);
    t.equal(result.status, 0, result.stderr);
    t.match(result.stdout, type === 'rsa' ? /RSA 2048/ : /EC P-256/);
    const crt = join(dir, `${name}.crt`);
    t.equal(statSync(join(dir, `${name}.key`)).mode & 0o777, 0o600);
    t.match(openssl(['verify', '-CAfile', crt, crt]), /OK/);
    t.match(
      openssl(['x509', '-in', crt, '-noout', '-ext', 'subjectAltName']),
      /DNS:localhost, IP Address:0:0:0:0:0:0:0:1/,
    );
    const check = runSidecar([
      'check',
      '--certs-dir',
      dir,
      '--service',
      name,
      '--int-port',
      '4443',
      '--backend',
      '127.0.0.1:8080',
    ]);
    t.equal(check.status, 0, check.stdout);
    t.match(check.stdout, /per-service pair/);
  }
});

t.test('bad arguments are usage errors (exit 2) naming the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['certs', 'generate', '--name', 'x', '--out', dir], /--host: give at least one/],
    [['certs', 'generate', '--host', 'localhost', '--out', dir], /needs --name/],
    [['certs', 'generate', '--name', 'x', '--host', 'localhost'], /needs --out/],
    [
      ['certs', 'generate', '--name', 'x', '--host', 'localhost', '--out', dir, '--type', 'dsa'],
      /--type "dsa": must be ecdsa or rsa/,
    ],
    [
      ['certs', 'generate', '--name', 'x', '--host', 'localhost', '--out', dir, '--days', 'ten'],
      /--days "ten"/,
    ],
    [['certs', 'generate', '--name', '../x', '--host', 'localhost', '--out', dir], /--name "..\/x"/],
    [['certs', 'make'], /certs needs "generate"/],
  ];
  for (const [args, pattern] of cases) {
    const result = runSidecar(args);
    t.equal(result.status, 2, args.join(' '));
    t.match(result.stderr, pattern);
  }
});

t.test('an existing pair is not overwritten without --force', async (t) => {
  const args = ['certs', 'generate', '--name', 'kept-https', '--host', 'localhost', '--out', dir];
  t.equal(runSidecar(args).status, 0);
  const key = readFileSync(join(dir, 'kept-https.key'), 'utf8');
  const again = runSidecar(args);
  t.equal(again.status, 1);
  t.equal(
    again.stderr,
    `harbor-sidecar: ${join(dir, 'kept-https.crt')} and ${join(dir, 'kept-https.key')} exist already; pass --force to replace the pair [E_CERT_EXISTS]\n`,
  );
  t.equal(readFileSync(join(dir, 'kept-https.key'), 'utf8'), key, 'the key is untouched');
  t.equal(runSidecar([...args, '--force']).status, 0);
  t.not(readFileSync(join(dir, 'kept-https.key'), 'utf8'), key, '--force replaces it');
});

t.test('certs-example holds pairs check accepts for localhost', async (t) => {
  const examples = new URL('../../certs-example/', import.meta.url).pathname;
  for (const service of ['custom-cert-https', 'other-https']) {
    const result = runSidecar([
      'check',
      '--certs-dir',
      examples,
      '--service',
      service,
      '--int-port',
      '4443',
      '--backend',
      '8080',
    ]);
    t.equal(result.status, 0, result.stdout);
    t.match(result.stdout, service === 'other-https' ? /fallback harbor pair/ : /per-service pair/);
  }
});
