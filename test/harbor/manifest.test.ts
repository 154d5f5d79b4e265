// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests hold ${name} as text
// The manifest's services: block in the forms the platform accepted, read from
// real YAML text.
import t from 'tap';
import { readManifest, splitHarbor } from '../../src/harbor/manifest.js';

const read = (text: string, app?: string) => readManifest('manifest.yml', text, app);

t.test('the Stackato map form: name: type, ${name} expanded, other types kept apart', async (t) => {
  const app = read(`name: port-test
memory: 256
services:
  my-port: harbor
  udp-\${name}: harbor
  mydb: mysql
`);
  t.equal(app.name, 'port-test');
  t.same(app.services, [
    { name: 'my-port', type: 'harbor' },
    { name: 'udp-port-test', type: 'harbor' },
    { name: 'mydb', type: 'mysql' },
  ]);
  const { harbor, skipped } = splitHarbor(app);
  t.same(
    harbor.map((s) => s.name),
    ['my-port', 'udp-port-test'],
  );
  t.same(
    skipped.map((s) => s.name),
    ['mydb'],
  );
  t.equal(
    read('name: a\nservices:\n  tcp-${name}: harbor\n', 'other').services[0]?.name,
    'tcp-other',
    '--app names ${name}',
  );
});

t.test('the Cloud Foundry v1 form (name: {type: harbor}) and the v2 list (bind only)', async (t) => {
  t.same(read('name: a\nservices:\n  my-port:\n    type: harbor\n  db: { type: postgresql }\n').services, [
    { name: 'my-port', type: 'harbor' },
    { name: 'db', type: 'postgresql' },
  ]);
  t.same(read('name: a\nservices:\n  - my-port\n  - udp-${name}\n').services, [
    { name: 'my-port', type: undefined },
    { name: 'udp-a', type: undefined },
  ]);
});

t.test('applications: top-level keys apply to each; --app chooses among several', async (t) => {
  const text = `services:
  shared-port: harbor
applications:
  - name: web
  - name: worker
    services:
      udp-\${name}: harbor
`;
  t.same(read(text, 'web'), { name: 'web', services: [{ name: 'shared-port', type: 'harbor' }] });
  t.same(read(text, 'worker'), { name: 'worker', services: [{ name: 'udp-worker', type: 'harbor' }] });
  t.throws(() => read(text), {
    code: 'E_MANIFEST',
    message: 'manifest.yml: holds 2 apps (web, worker): choose one with --app NAME',
  });
  t.throws(() => read(text, 'db'), { message: 'manifest.yml: --app db: no such app (apps: web, worker)' });
  t.same(
    read('applications:\n  - name: solo\n    services: { p: harbor }\n').name,
    'solo',
    'one app needs no --app',
  );
});

t.test('what cannot be used is refused by name', async (t) => {
  const cases: [string, RegExp][] = [
    [
      'name: a\nservices:\n  udp-${random-word}: harbor\n',
      /udp-\$\{random-word\}: unknown symbol \$\{random-word\}/,
    ],
    ['name: a\nservices: [\n', /not valid YAML \(line \d\)/],
    ['- just\n- a list\n', /must be a YAML mapping/],
    ['services:\n  p: harbor\n', /the app has no name/],
    ['name: a\nservices:\n  p: { size: 2 }\n', /services: p: must name a type/],
    ['name: a\nservices: harbor\n', /services: must be a map \(name: type\) or a list of names/],
    ['name: a\napplications: 3\n', /applications: must be a list of apps/],
  ];
  for (const [text, message] of cases) {
    t.throws(() => read(text), { code: 'E_MANIFEST', message }, JSON.stringify(text));
  }
});
