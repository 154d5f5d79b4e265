import t from 'tap';
import { readServices } from '../../src/config/services.js';

const seedPort = {
  hostname: 'harbor.internal',
  host: '10.0.0.5',
  port: 30134,
  name: 'cf7f868a-8b7b-4ac8-ab4d-9fd87efb7c09',
  node_id: 'harbor_node_1',
  int_port: 4100,
  ext_hostname: 'ports.example.com',
  ext_host: '',
};

t.test('STACKATO_SERVICES: Harbor entries are the ones with int_port; others ignored', async (t) => {
  const { services, problems } = readServices({
    STACKATO_SERVICES: JSON.stringify({ 'my-port': seedPort, mydb: { host: 'db', port: 5432, user: 'u' } }),
  });
  t.same(problems, []);
  t.equal(services.length, 1);
  t.match(services[0], {
    name: 'my-port',
    instanceId: seedPort.name,
    nodeId: 'harbor_node_1',
    hostname: 'harbor.internal',
    host: '10.0.0.5',
    port: 30134,
    intPort: 4100,
    extHostname: 'ports.example.com',
    extHost: '',
    transport: 'tcp',
    https: false,
    variable: 'STACKATO_HARBOR_MY_PORT',
  });
});

t.test(
  'VCAP_SERVICES: entries under labels beginning "harbor", name from name, fields from credentials',
  async (t) => {
    const { services, problems } = readServices({
      VCAP_SERVICES: JSON.stringify({
        harbor: [
          {
            name: 'udp-port',
            label: 'harbor',
            credentials: { ...seedPort, int_port: '4101', port: '30135' },
          },
        ],
        'harbor-2.0': [
          { name: 'tcp-port', label: 'harbor-2.0', credentials: { ...seedPort, int_port: 4102 } },
        ],
        mysql: [{ name: 'db', credentials: { int_port: 1 } }],
      }),
    });
    t.same(problems, []);
    t.same(
      services.map((s) => [s.name, s.intPort, s.port, s.transport]),
      [
        ['udp-port', 4101, 30135, 'udp'],
        ['tcp-port', 4102, 30134, 'tcp'],
      ],
    );
  },
);

t.test('HELION_SERVICES has the STACKATO shape', async (t) => {
  const { services } = readServices({ HELION_SERVICES: JSON.stringify({ 'h-port': seedPort }) });
  t.equal(services[0]?.name, 'h-port');
});

t.test('merged by name; STACKATO_SERVICES wins and the difference is reported', async (t) => {
  const { services, problems } = readServices({
    STACKATO_SERVICES: JSON.stringify({ shared: seedPort }),
    HELION_SERVICES: JSON.stringify({ shared: { ...seedPort }, other: { ...seedPort, int_port: 4200 } }),
    VCAP_SERVICES: JSON.stringify({
      harbor: [{ name: 'shared', credentials: { ...seedPort, int_port: 4999 } }],
    }),
  });
  t.same(
    services.map((s) => [s.name, s.intPort]),
    [
      ['shared', 4100],
      ['other', 4200],
    ],
  );
  t.equal(problems.length, 1);
  t.equal(problems[0]?.code, 'W_SOURCES_DISAGREE');
  t.match(
    problems[0]?.message,
    /"shared".*STACKATO_SERVICES and VCAP_SERVICES disagree on int_port; using STACKATO_SERVICES/,
  );
});

t.test('ports: numbers or numeric strings 1-65535; anything else names service and field', async (t) => {
  for (const bad of [0, 65536, -1, 4100.5, '41x', '', null, true, '1e3']) {
    const { services, problems } = readServices({
      STACKATO_SERVICES: JSON.stringify({ p: { ...seedPort, int_port: bad } }),
    });
    t.equal(services.length, 0, `int_port ${JSON.stringify(bad)} is refused`);
    t.equal(problems[0]?.code, 'E_SERVICE_FIELD');
    t.match(problems[0]?.message, /service "p" \(STACKATO_SERVICES\): int_port must be an integer 1-65535/);
  }
  const { problems } = readServices({
    STACKATO_SERVICES: JSON.stringify({ p: { ...seedPort, port: 70000 } }),
  });
  t.match(problems[0]?.message, /service "p" .*: port must be an integer 1-65535, not 70000/);
  const ok = readServices({
    STACKATO_SERVICES: JSON.stringify({ p: { ...seedPort, int_port: ' 65535 ', port: '1' } }),
  });
  t.same([ok.services[0]?.intPort, ok.services[0]?.port], [65535, 1]);
  const noPort = readServices({ STACKATO_SERVICES: JSON.stringify({ p: { int_port: 4100 } }) });
  t.same(noPort.problems, []);
  t.equal(noPort.services[0]?.port, undefined, 'a missing external port is allowed');
});

t.test('JSON that does not parse names the variable and where it breaks', async (t) => {
  const { problems } = readServices({ STACKATO_SERVICES: '{\n  "a": {"int_port": 1},\n  "b": }' });
  t.equal(problems[0]?.code, 'E_ENV_JSON');
  t.match(
    problems[0]?.message,
    /^STACKATO_SERVICES is not valid JSON \(at line 3 column 8: unexpected "}"\)/,
  );
  const shape = readServices({ VCAP_SERVICES: '[1]' });
  t.match(shape.problems[0], { code: 'E_ENV_SHAPE', message: /VCAP_SERVICES must be a JSON object/ });
  const list = readServices({ VCAP_SERVICES: '{"harbor": {"name": "x"}}' });
  t.match(list.problems[0]?.message, /VCAP_SERVICES\["harbor"\] must be a list/);
});

t.test('two services mapping to one variable are a config error naming both', async (t) => {
  const { problems } = readServices({
    STACKATO_SERVICES: JSON.stringify({ 'my-port': seedPort, 'my.port': { ...seedPort, int_port: 4101 } }),
  });
  t.match(problems, [
    { code: 'E_VARIABLE_CLASH', message: /"my-port" and "my\.port" both map to STACKATO_HARBOR_MY_PORT/ },
  ]);
});

t.test('a udp name ending in https warns that https is dropped', async (t) => {
  const { services, problems } = readServices({
    STACKATO_SERVICES: JSON.stringify({ 'udp-x-https': seedPort }),
  });
  t.match(services[0], { transport: 'udp', https: false });
  t.match(problems, [{ code: 'W_PROTOCOL' }]);
});

t.test('the JSON error position is found for several kinds of breakage', async (t) => {
  const cases: [string, RegExp][] = [
    ['{"a":', /at the end: the text ends early/],
    ['nope', /at line 1 column 2: unexpected "o"/],
    ['{"a": 1,}', /at line 1 column 9: unexpected "}"/],
    ['{"a": 01}', /at line 1 column 8: unexpected "1"/],
    ['{"a": "x\ny"}', /at line 1 column 9: unexpected "\\n"/],
    ['{} x', /at line 1 column 4: unexpected "x"/],
  ];
  for (const [text, expected] of cases) {
    t.match(readServices({ HELION_SERVICES: text }).problems[0]?.message, expected, text);
  }
});
