import { readFileSync } from 'node:fs';
import t from 'tap';
import { COMMAND_SUMMARIES } from '../src/cli/commands/help.js';
import { SIDECAR_SETTINGS } from '../src/config/settings.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

t.test('the README opens with the two commands: the demo and the tests', async (t) => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const commands = firstBlock
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.replace(/\s+#.*$/, '').trim());
  t.same(commands, ['npm ci && npm run demo', 'npm ci && npm test']);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  t.ok(pkg.scripts.demo, 'package.json has the demo script');
  t.ok(pkg.scripts.test, 'package.json has the test script');
});

t.test('every setting of harbor-sidecar is in the README table, flag and variable', async (t) => {
  for (const setting of SIDECAR_SETTINGS) {
    t.match(readme, `\`--${setting.flag}`, `--${setting.flag}`);
    for (const variable of setting.env) t.match(readme, `\`${variable}\``, variable);
  }
});

t.test('every command is in the README', async (t) => {
  for (const [name] of COMMAND_SUMMARIES) {
    const word = name.split(' ')[0] ?? name;
    t.match(readme, `harbor-sidecar ${word}`, word);
  }
});

t.test('docs/architecture.md has a line for every folder of src/', async (t) => {
  const { readdirSync } = await import('node:fs');
  const architecture = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');
  const folders = readdirSync(new URL('../src/', import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  t.ok(folders.length > 5);
  for (const folder of folders) t.match(architecture, `| \`src/${folder}/\``, folder);
});

t.test('every setting of harbor-node is in the README', async (t) => {
  const { NODE_SETTINGS } = await import('../src/node/settings.js');
  for (const setting of Object.values(NODE_SETTINGS)) {
    t.match(readme, `\`--${setting.flag}\``, `--${setting.flag}`);
    for (const variable of setting.env) t.match(readme, `\`${variable}\``, variable);
  }
  t.match(readme, '`HARBOR_NODE_TOKEN`');
});

t.test('every test path a package.json script hands tap is test files that exist', async (t) => {
  // tap 21 takes files (a shell glob expands to them), not a folder: `tap test/hardening/` ran
  // nothing and failed the soak script until 2026-12-03.
  const { existsSync, readdirSync, statSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const paths: string[] = [];
  for (const script of Object.values(pkg.scripts) as string[]) {
    for (const run of script.split('&&')) {
      if (!/(^|\s)tap\s/.test(run)) continue;
      paths.push(...run.split(/\s+/).filter((word) => word.startsWith('test/')));
    }
  }
  t.ok(paths.length >= 2, `the scripts run tap on ${paths.join(', ')}`);
  for (const path of paths) {
    const url = new URL(`../${path}`, import.meta.url);
    if (path.includes('*')) {
      const folder = new URL('.', url);
      const pattern = new RegExp(
        `^${path
          .slice(path.lastIndexOf('/') + 1)
          .replaceAll('.', '\\.')
          .replaceAll('*', '.*')}$`,
      );
      const matches = readdirSync(folder).filter((name) => pattern.test(name));
      t.ok(matches.length > 0, `${path} matches test files`);
    } else {
      t.ok(existsSync(url) && statSync(url).isFile() && path.endsWith('.test.ts'), `${path} is a test file`);
    }
  }
});
