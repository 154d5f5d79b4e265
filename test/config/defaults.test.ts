// One table of defaults: what the settings resolve to with nothing given, what
// the settings table (README, --help) shows, and what the proxy falls back to
// when built without settings are the same values.
import t from 'tap';
import { durationText, SIDECAR_DEFAULTS, sizeText } from '../../src/config/defaults.js';
import { resolveSidecarSettings, SIDECAR_SETTINGS } from '../../src/config/settings.js';
import { formatAddress } from '../../src/config/types.js';
import { DEFAULT_LIMITS } from '../../src/https/index.js';

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
