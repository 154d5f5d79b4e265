// One table of defaults: what the settings resolve to with nothing given, what
// the settings table (README, --help) shows, and what the proxy falls back to
// when built without settings are the same values.
import t from 'tap';
import {
  durationText,
  FORWARD_DEFAULTS,
  NODE_DEFAULTS,
  SIDECAR_DEFAULTS,
  sizeText,
} from '../../src/config/defaults.js';
import { resolveSidecarSettings, SIDECAR_SETTINGS } from '../../src/config/settings.js';
import { formatAddress } from '../../src/config/types.js';
import { DEFAULT_UDP_IDLE_TIMEOUT_MS, DEFAULT_UDP_MAX_SESSIONS_PER_SOURCE } from '../../src/forward/index.js';
import { DEFAULT_LIMITS } from '../../src/https/index.js';
import { NODE_SETTINGS, resolveNodeSettings } from '../../src/node/settings.js';
import { DEFAULT_TTL_SECONDS } from '../../src/registration/index.js';

const machine = {
  cwd: '/srv/app',
  hostname: 'c',
  readFile: () => {
    throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  },
  stdoutIsTerminal: false,
};

t.test('the resolver, the settings table and the proxy agree on every default', async (t) => {
  const { settings } = resolveSidecarSettings({}, {}, machine);
  const shown = (flag: string) => SIDECAR_SETTINGS.find((d) => d.flag === flag)?.defaultText;
  const durations: [string, keyof typeof SIDECAR_DEFAULTS][] = [
    ['backend-timeout', 'backendTimeoutMs'],
    ['drain-timeout', 'drainTimeoutMs'],
    ['header-timeout', 'headerTimeoutMs'],
    ['idle-timeout', 'idleTimeoutMs'],
    ['node-ttl', 'nodeTtlMs'],
  ];
  for (const [flag, key] of durations) {
    t.equal(
      settings[key as keyof typeof settings],
      SIDECAR_DEFAULTS[key],
      `--${flag} resolves to the default`,
    );
    t.equal(shown(flag), durationText(SIDECAR_DEFAULTS[key] as number), `--${flag} shows it`);
  }
  t.equal(shown('header-timeout'), '10s');
  t.equal(shown('max-header-size'), String(settings.maxHeaderBytes));
  t.equal(shown('max-connections'), String(settings.maxConnections));
  t.equal(shown('max-buffered-body'), sizeText(settings.maxBufferedBodyBytes));
  t.equal(shown('max-buffered-body'), '64m');
  t.equal(shown('admin'), formatAddress(settings.admin as Parameters<typeof formatAddress>[0]));
  t.equal(shown('listen'), settings.listenHosts.join(','));
  t.same(
    DEFAULT_LIMITS,
    {
      headerTimeoutMs: settings.headerTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      maxHeaderBytes: settings.maxHeaderBytes,
      maxConnections: settings.maxConnections,
      maxBufferedBodyBytes: settings.maxBufferedBodyBytes,
      backendTimeoutMs: settings.backendTimeoutMs,
    },
    'the proxy built without settings uses the same limits (its header timeout was 20 s)',
  );
});

t.test("harbor-node's resolver, its settings table and the parts built without settings agree", async (t) => {
  const context = { firstAddress: '10.0.0.5', stdoutIsTerminal: false, machineName: 'edge-1' };
  const { settings: resolved, problems } = resolveNodeSettings({}, {}, context);
  t.same(problems, []);
  if (resolved === undefined) throw new Error('no settings');
  const settings = resolved;
  t.same(settings.api, NODE_DEFAULTS.api);
  t.equal(settings.nodeId, NODE_DEFAULTS.nodeId);
  t.equal(`${settings.ports.first}-${settings.ports.last}`, NODE_DEFAULTS.ports);
  t.equal(settings.tcpIdleTimeoutMs, NODE_DEFAULTS.tcpIdleTimeoutMs);
  t.equal(NODE_SETTINGS.tcpIdleTimeout.default, '1h', 'an hour is shown as one');
  t.equal(settings.drainTimeoutMs, NODE_DEFAULTS.drainTimeoutMs);
  t.equal(settings.apiConnections, NODE_DEFAULTS.apiConnections);
  t.equal(settings.checkIntervalMs, NODE_DEFAULTS.checkIntervalMs);
  t.equal(settings.dataplane, NODE_DEFAULTS.dataplane);
  t.equal(settings.logLevel, NODE_DEFAULTS.logLevel);
  t.equal(settings.proxyProtocol, undefined, 'PROXY protocol off');
  t.equal(settings.udpIdleTimeoutMs, FORWARD_DEFAULTS.udpIdleTimeoutMs);
  t.equal(settings.udpSessionsPerSource, FORWARD_DEFAULTS.udpSessionsPerSource);
  t.equal(DEFAULT_UDP_IDLE_TIMEOUT_MS, settings.udpIdleTimeoutMs, 'the forwarder falls back to the same');
  t.equal(DEFAULT_UDP_MAX_SESSIONS_PER_SOURCE, settings.udpSessionsPerSource);
  t.equal(
    DEFAULT_TTL_SECONDS * 1000,
    SIDECAR_DEFAULTS.nodeTtlMs,
    'registration without settings: --node-ttl',
  );
});
