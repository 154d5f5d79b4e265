// The one configuration pipeline of harbor-sidecar: flags and environment in,
// one defaults object applied, validated by a pure function that returns every
// problem at once, frozen, handed down. The definitions table below is also
// what the README's settings table and `--help` are checked against.

import { isIP } from 'node:net';
import type { Problem } from '../errors/index.js';
import { LOG_LEVELS } from '../log/index.js';
import { MAX_INSTANCE_TTL_SECONDS, readNodeCa } from '../node-api/index.js';
import { resolveInstanceId } from '../registration/identity.js';
import { durationText, SIDECAR_DEFAULTS, sizeText } from './defaults.js';
import { isPlainObject, parseJsonVariable } from './json.js';
import { listenerClashes } from './listener-clashes.js';
import { ruleForName } from './protocol.js';
import { readServices } from './services.js';
import { type Address, formatAddress, type HarborService } from './types.js';
import { udpCheckProblem } from './udp-check.js';
import {
  type Parsed,
  parseAddress,
  parseBoolean,
  parseChoice,
  parseHsts,
  parseOrigins,
  parsePortNumber,
  parsePositiveInteger,
  parseSize,
  parseTimeout,
  trustBlockList,
} from './values.js';
import { mangleName, type VariableFormat, variableForService } from './variables.js';

export type SettingType = 'string' | 'boolean' | 'list';

export interface SettingDefinition {
  /** The long flag, without dashes. */
  readonly flag: string;
  /** Environment variables, in order of precedence; flags win over all of them. */
  readonly env: readonly string[];
  readonly type: SettingType;
  readonly description: string;
  /** The default, as written in docs. */
  readonly defaultText?: string;
  /** Commands that read this setting; all when absent. */
  readonly commands?: readonly string[];
}

export const SIDECAR_SETTINGS: readonly SettingDefinition[] = [
  {
    flag: 'app-root',
    env: ['HARBOR_APP_ROOT', 'STACKATO_APP_ROOT'],
    type: 'string',
    description: 'The app root, where certs/ (or cert/) is looked for.',
    defaultText: 'the working directory',
  },
  {
    flag: 'certs-dir',
    env: ['HARBOR_CERTS_DIR'],
    type: 'string',
    description: 'The certificate folder.',
    defaultText: '<app root>/certs if it exists, else <app root>/cert',
  },
  {
    flag: 'backend',
    env: ['HARBOR_BACKEND'],
    type: 'string',
    description: "The framework's plain HTTP server: host:port, [ipv6]:port or a unix socket path.",
    defaultText: '127.0.0.1:$PORT, else 127.0.0.1:$VCAP_APP_PORT',
  },
  {
    flag: 'backend-protocol',
    env: ['HARBOR_BACKEND_PROTOCOL'],
    type: 'string',
    description:
      "How HTTP/2 clients' requests reach the backend: http1 (HTTP/1.1 over a keep-alive pool), or h2c (streams of one clear-text HTTP/2 session, as a gRPC server needs: bodies streamed both ways, trailers passed on; gRPC-Web calls translated to gRPC, from HTTP/1.1 clients too). Other HTTP/1.1 requests are forwarded as HTTP/1.1 either way.",
    defaultText: SIDECAR_DEFAULTS.backendProtocol,
    commands: ['run', 'check'],
  },
  {
    flag: 'grpc-web-origins',
    env: ['HARBOR_GRPC_WEB_ORIGINS'],
    type: 'string',
    description:
      'Origins of pages on other sites allowed to make gRPC-Web calls (https://app.example.com,... or *): the proxy answers their CORS preflights and marks the answers. Needs --backend-protocol h2c.',
    commands: ['run', 'check'],
  },
  {
    flag: 'key-passphrase-file',
    env: ['HARBOR_KEY_PASSPHRASE_FILE'],
    type: 'string',
    description:
      'A file holding the passphrase of encrypted keys (or set HARBOR_KEY_PASSPHRASE itself; never a flag, so it stays out of ps).',
  },
  {
    flag: 'client-ca',
    env: ['HARBOR_CLIENT_CA'],
    type: 'string',
    description: 'A CA bundle for client-certificate authentication, overriding <service>.ca and harbor.ca.',
  },
  {
    flag: 'listen',
    env: ['HARBOR_LISTEN'],
    type: 'string',
    description: 'Comma-separated addresses the HTTPS servers and --forward listeners listen on.',
    defaultText: SIDECAR_DEFAULTS.listenHosts.join(','),
    commands: ['run'],
  },
  {
    flag: 'backend-timeout',
    env: ['HARBOR_BACKEND_TIMEOUT'],
    type: 'string',
    description: 'How long the backend may take to start answering before a 504.',
    defaultText: durationText(SIDECAR_DEFAULTS.backendTimeoutMs),
    commands: ['run'],
  },
  {
    flag: 'drain-timeout',
    env: ['HARBOR_DRAIN_TIMEOUT'],
    type: 'string',
    description: 'How long in-flight requests may take to finish after SIGTERM.',
    defaultText: durationText(SIDECAR_DEFAULTS.drainTimeoutMs),
    commands: ['run'],
  },
  {
    flag: 'header-timeout',
    env: ['HARBOR_HEADER_TIMEOUT'],
    type: 'string',
    description:
      'How long a client may take to send a TLS handshake and request head (the first one counted from the handshake).',
    defaultText: durationText(SIDECAR_DEFAULTS.headerTimeoutMs),
    commands: ['run'],
  },
  {
    flag: 'idle-timeout',
    env: ['HARBOR_IDLE_TIMEOUT'],
    type: 'string',
    description:
      'How long an idle keep-alive client connection is kept, and how long a client may take no data while a response waits for it (then it is cut and the backend freed).',
    defaultText: durationText(SIDECAR_DEFAULTS.idleTimeoutMs),
    commands: ['run'],
  },
  {
    flag: 'max-header-size',
    env: ['HARBOR_MAX_HEADER_SIZE'],
    type: 'string',
    description:
      'The largest request head accepted, in bytes (or 32k, 1m): 1k to 1m; 431 above it (414 when the request line alone is).',
    defaultText: String(SIDECAR_DEFAULTS.maxHeaderBytes),
    commands: ['run'],
  },
  {
    flag: 'max-buffered-body',
    env: ['HARBOR_MAX_BUFFERED_BODY'],
    type: 'string',
    description:
      'The largest request body without a length (HTTP/2 without content-length, HTTP/1.1 chunked) that is held, 1 MiB in memory and the rest in a deleted file in TMPDIR, to reach the app with a Content-Length; 413 above it. off: relayed chunked as it comes, for apps that read chunked bodies.',
    defaultText: sizeText(SIDECAR_DEFAULTS.maxBufferedBodyBytes),
    commands: ['run'],
  },
  {
    flag: 'max-connections',
    env: ['HARBOR_MAX_CONNECTIONS'],
    type: 'string',
    description: 'Client connections per service at once; more are closed as they arrive.',
    defaultText: String(SIDECAR_DEFAULTS.maxConnections),
    commands: ['run'],
  },
  {
    flag: 'admin',
    env: ['HARBOR_ADMIN'],
    type: 'string',
    description:
      'The admin endpoint (healthz, readyz, metrics, status): host:port, a unix socket path, or off.',
    defaultText: formatAddress(SIDECAR_DEFAULTS.admin),
    commands: ['run', 'status'],
  },
  {
    flag: 'node-url',
    env: ['HARBOR_NODE_URL'],
    type: 'string',
    description:
      'The harbor-node API to register this instance with; several (comma-separated) for a cluster: the first that answers takes it (token in HARBOR_NODE_TOKEN).',
    commands: ['run'],
  },
  {
    flag: 'node-ca',
    env: ['HARBOR_NODE_CA'],
    type: 'string',
    description:
      "PEM file of the CA an https:// node's certificate must chain to (trusted instead of the system's roots).",
    commands: ['run'],
  },
  {
    flag: 'node-ttl',
    env: ['HARBOR_NODE_TTL'],
    type: 'string',
    description:
      'How long the node keeps this instance without a refresh; refreshes go out every third of it.',
    defaultText: durationText(SIDECAR_DEFAULTS.nodeTtlMs),
    commands: ['run'],
  },
  {
    flag: 'udp-check',
    env: ['HARBOR_UDP_CHECK'],
    type: 'string',
    description:
      'A datagram the app answers (text, or hex: then hex digits): the node checks UDP services with it and takes a silent instance out.',
    commands: ['run'],
  },
  {
    flag: 'instance-id',
    env: ['HARBOR_INSTANCE_ID'],
    type: 'string',
    description: 'This instance id for node registration.',
    defaultText: '$CF_INSTANCE_GUID, else instance_id of $VCAP_APPLICATION, else the hostname',
    commands: ['run'],
  },
  {
    flag: 'instance-host',
    env: ['HARBOR_INSTANCE_HOST'],
    type: 'string',
    description: 'The address the node reaches this instance at.',
    defaultText: "the container's first non-internal address",
    commands: ['run'],
  },
  {
    flag: 'forward',
    env: ['HARBOR_FORWARD_<NAME>'],
    type: 'list',
    description:
      "NAME=HOST:PORT: listen on that service's int_port and forward TCP/UDP to the app's own port. Repeatable.",
    commands: ['run'],
  },
  {
    flag: 'proxy-protocol',
    env: ['HARBOR_PROXY_PROTOCOL'],
    type: 'string',
    description: 'Send a PROXY protocol header on TCP forwards: off, v1 or v2.',
    defaultText: SIDECAR_DEFAULTS.proxyProtocol,
    commands: ['run'],
  },
  {
    flag: 'access-log',
    env: ['HARBOR_ACCESS_LOG'],
    type: 'string',
    description:
      'One line per request and per upgrade: off, json, or combined (the Apache/nginx format, then service, request id and milliseconds); to stdout, or to --access-log-file.',
    defaultText: SIDECAR_DEFAULTS.accessLog,
    commands: ['run'],
  },
  {
    flag: 'access-log-file',
    env: ['HARBOR_ACCESS_LOG_FILE'],
    type: 'string',
    description: 'Where the access log goes instead of stdout; SIGUSR1 reopens it (logrotate).',
    commands: ['run'],
  },
  {
    flag: 'access-log-query',
    env: ['HARBOR_ACCESS_LOG_QUERY'],
    type: 'string',
    description: 'keep or drop the query string of logged paths (it may carry tokens).',
    defaultText: SIDECAR_DEFAULTS.accessLogQuery,
    commands: ['run'],
  },
  {
    flag: 'hsts',
    env: ['HARBOR_HSTS'],
    type: 'string',
    description:
      "MAX-AGE[,includeSubDomains][,preload]: Strict-Transport-Security added to every answer that lacks one (the app's own wins); MAX-AGE in seconds or a duration.",
    commands: ['run'],
  },
  {
    flag: 'trust-request-id',
    env: ['HARBOR_TRUST_REQUEST_ID'],
    type: 'boolean',
    description:
      "Keep a client's well-formed X-Request-Id (1-128 of A-Z a-z 0-9 . _ : / + = @ -) instead of giving each request a new one; either way the backend gets one, and the proxy's own error answers carry it.",
    commands: ['run'],
  },
  {
    flag: 'trust-proxy',
    env: ['HARBOR_TRUST_PROXY'],
    type: 'string',
    description:
      'Addresses or CIDRs (comma-separated) allowed to send a PROXY protocol header (v1 or v2) on the HTTPS port, naming the real client for X-Forwarded-For (harbor-node --proxy-protocol); a header from anyone else is refused.',
    commands: ['run'],
  },
  {
    flag: 'service',
    env: ['HARBOR_SERVICE'],
    type: 'string',
    description:
      'Debug shell: serve one service of this name without a platform environment (with --int-port).',
    commands: ['run', 'check', 'env', 'exec'],
  },
  {
    flag: 'int-port',
    env: ['HARBOR_INT_PORT'],
    type: 'string',
    description: 'Debug shell: the int_port of --service.',
    commands: ['run', 'check', 'env', 'exec'],
  },
  {
    flag: 'ext-port',
    env: ['HARBOR_EXT_PORT'],
    type: 'string',
    description: 'Debug shell: the external port of --service (for X-Forwarded-Port).',
    commands: ['run', 'check', 'env', 'exec'],
  },
  {
    flag: 'format',
    env: ['HARBOR_ENV_FORMAT'],
    type: 'string',
    description: 'Output of env: shell (export lines, safe to eval), dotenv or json.',
    defaultText: SIDECAR_DEFAULTS.format,
    commands: ['env'],
  },
  {
    flag: 'json',
    env: ['HARBOR_JSON'],
    type: 'boolean',
    description: 'Machine-readable output.',
    commands: ['check', 'status'],
  },
  {
    flag: 'require',
    env: ['HARBOR_REQUIRE'],
    type: 'boolean',
    description: 'Fail when there is no Harbor service at all.',
    commands: ['check'],
  },
  {
    flag: 'warn-days',
    env: ['HARBOR_WARN_DAYS'],
    type: 'string',
    description: 'Warn when a certificate expires within this many days.',
    defaultText: String(SIDECAR_DEFAULTS.warnDays),
    commands: ['check'],
  },
  {
    flag: 'log-level',
    env: ['HARBOR_LOG_LEVEL'],
    type: 'string',
    description: 'fatal, error, warn, info, debug, trace or silent.',
    defaultText: SIDECAR_DEFAULTS.logLevel,
  },
  {
    flag: 'pretty',
    env: ['HARBOR_LOG_PRETTY'],
    type: 'boolean',
    description: 'Human-readable logs (the default when stdout is a terminal).',
  },
];

/** Flag values as parsed from the command line: strings, booleans, lists. */
export type FlagValues = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
export type Environment = Readonly<Record<string, string | undefined>>;

export interface ForwardTarget {
  readonly service: string;
  readonly target: Address;
}

export interface SidecarSettings {
  readonly appRoot: string;
  /** The explicit certificate folder; when unset, src/certs looks for <app root>/certs, then cert/. */
  readonly certsDir: string | undefined;
  readonly backend: Address | undefined;
  /** How HTTP/2 clients' streams reach the backend (--backend-protocol). */
  readonly backendProtocol: 'http1' | 'h2c';
  /** Origins allowed to make gRPC-Web calls across sites (--grpc-web-origins); empty: none. */
  readonly grpcWebOrigins: readonly string[];
  readonly keyPassphrase: string | undefined;
  readonly clientCa: string | undefined;
  readonly listenHosts: readonly string[];
  readonly backendTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxConnections: number;
  /** 0: off (bodies without a length go chunked). */
  readonly maxBufferedBodyBytes: number;
  readonly admin: Address | 'off';
  readonly nodeUrl: string | undefined;
  readonly nodeToken: string | undefined;
  /** The CA certificates an https:// node must chain to (--node-ca, read); undefined: the system's roots. */
  readonly nodeCa: string | undefined;
  readonly nodeTtlMs: number;
  /** Sent with the registration of services carrying UDP (udp_check). */
  readonly udpCheck: string | undefined;
  readonly instanceId: string;
  readonly instanceHost: string | undefined;
  readonly forwards: readonly ForwardTarget[];
  readonly proxyProtocol: 'off' | 'v1' | 'v2';
  /** Keep a client's well-formed X-Request-Id (--trust-request-id). */
  readonly trustRequestId: boolean;
  /** The access log: off, json or combined; to stdout or a file; query strings kept or dropped. */
  readonly accessLog: 'off' | 'json' | 'combined';
  readonly accessLogFile: string | undefined;
  readonly accessLogQuery: 'keep' | 'drop';
  /** The Strict-Transport-Security value the HTTPS proxy adds (--hsts); undefined: none. */
  readonly hsts: string | undefined;
  /** Addresses or CIDRs whose PROXY headers the HTTPS proxy believes; empty: nobody's. */
  readonly trustProxy: readonly string[];
  readonly format: VariableFormat;
  readonly json: boolean;
  readonly require: boolean;
  readonly warnDays: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly pretty: boolean;
  readonly services: readonly HarborService[];
  readonly appName: string | undefined;
  readonly appNameUpcaseSet: boolean;
}

/** What the pipeline needs from the machine, passed in so tests can set it. */
export interface Machine {
  readonly cwd: string;
  readonly hostname: string;
  readonly readFile: (path: string) => string;
  readonly stdoutIsTerminal: boolean;
}

export interface SettingsResult {
  readonly settings: SidecarSettings;
  readonly problems: readonly Problem[];
}

/** The raw text of a setting: its flag if given, else its first set variable, with where it came from. */
export function rawSetting(
  definition: Pick<SettingDefinition, 'flag' | 'env'>,
  flags: FlagValues,
  env: Environment,
): { text: string; from: string } | undefined {
  const flag = flags[definition.flag];
  if (typeof flag === 'string') return { text: flag, from: `--${definition.flag}` };
  if (flag === true) return { text: 'true', from: `--${definition.flag}` };
  for (const name of definition.env) {
    const value = env[name];
    if (value !== undefined && value !== '') return { text: value, from: name };
  }
  return undefined;
}

/**
 * Whether `command` reads a setting. `check` reads every one, since it reports what `run` would
 * refuse; any other command is not stopped by a setting it never uses (a bad HARBOR_NODE_URL must
 * not keep a staging hook's `env` from exporting the ports).
 */
export function commandReads(definition: Pick<SettingDefinition, 'commands'>, command: string): boolean {
  return command === 'check' || definition.commands === undefined || definition.commands.includes(command);
}

function definitionOf(flag: string): SettingDefinition {
  const found = SIDECAR_SETTINGS.find((d) => d.flag === flag);
  if (!found) throw new Error(`no setting --${flag}`);
  return found;
}

/**
 * The settings `command` runs with, and the problems in those it reads (every setting for `check`,
 * the default); a setting the command does not read keeps its default and is not looked at.
 */
export function resolveSidecarSettings(
  flags: FlagValues,
  env: Environment,
  machine: Machine,
  command = 'check',
): SettingsResult {
  const problems: Problem[] = [];
  const reads = (flag: string): boolean => commandReads(definitionOf(flag), command);
  const setting = <T>(flag: string, parse: (text: string) => Parsed<T>, fallback: T): T => {
    if (!reads(flag)) return fallback;
    const found = rawSetting(definitionOf(flag), flags, env);
    if (!found) return fallback;
    const parsed = parse(found.text);
    if (parsed.ok) return parsed.value;
    problems.push({ code: 'E_SETTING', message: `${found.from} ${parsed.reason}` });
    return fallback;
  };
  const text = (flag: string): string | undefined => rawSetting(definitionOf(flag), flags, env)?.text;
  const asIs = (t: string): Parsed<string> => ({ ok: true, value: t });

  const appRoot = text('app-root') ?? machine.cwd;
  const services = servicesFrom(flags, env, problems);
  const backend = backendFrom(flags, env, problems);

  let keyPassphrase = env.HARBOR_KEY_PASSPHRASE || undefined;
  const passphraseFile = text('key-passphrase-file');
  if (passphraseFile !== undefined) {
    try {
      keyPassphrase = machine.readFile(passphraseFile).replace(/\r?\n$/, '');
    } catch (error) {
      problems.push({
        code: 'E_SETTING',
        message: `key passphrase file ${passphraseFile} cannot be read: ${(error as NodeJS.ErrnoException).code ?? error}`,
      });
    }
  }

  const admin = setting<Address | 'off'>(
    'admin',
    (t) => (t.trim().toLowerCase() === 'off' ? { ok: true, value: 'off' } : parseAddress(t)),
    SIDECAR_DEFAULTS.admin,
  );
  const { name: appName, upcaseSet } = appNameFrom(env, problems);

  const settings: SidecarSettings = {
    appRoot,
    certsDir: text('certs-dir'),
    backend,
    backendProtocol: setting(
      'backend-protocol',
      (t) => parseChoice(t, ['http1', 'h2c'] as const),
      SIDECAR_DEFAULTS.backendProtocol,
    ),
    keyPassphrase,
    clientCa: text('client-ca'),
    listenHosts: setting('listen', parseHostList, SIDECAR_DEFAULTS.listenHosts),
    backendTimeoutMs: setting('backend-timeout', parseTimeout, SIDECAR_DEFAULTS.backendTimeoutMs),
    drainTimeoutMs: setting('drain-timeout', parseTimeout, SIDECAR_DEFAULTS.drainTimeoutMs),
    headerTimeoutMs: setting('header-timeout', parseTimeout, SIDECAR_DEFAULTS.headerTimeoutMs),
    idleTimeoutMs: setting('idle-timeout', parseTimeout, SIDECAR_DEFAULTS.idleTimeoutMs),
    maxHeaderBytes: setting('max-header-size', parseHeaderSize, SIDECAR_DEFAULTS.maxHeaderBytes),
    maxConnections: setting('max-connections', parsePositiveInteger, SIDECAR_DEFAULTS.maxConnections),
    maxBufferedBodyBytes: setting(
      'max-buffered-body',
      (t) => (t.trim().toLowerCase() === 'off' ? { ok: true, value: 0 } : parseSize(t)),
      SIDECAR_DEFAULTS.maxBufferedBodyBytes,
    ),
    admin,
    nodeUrl: setting('node-url', parseUrls, undefined),
    nodeToken: env.HARBOR_NODE_TOKEN || undefined,
    nodeCa: reads('node-ca')
      ? nodeCaFrom(rawSetting(definitionOf('node-ca'), flags, env), machine, problems)
      : undefined,
    nodeTtlMs: setting('node-ttl', parseNodeTtl, SIDECAR_DEFAULTS.nodeTtlMs),
    udpCheck: setting('udp-check', parseUdpCheck, undefined),
    instanceId:
      text('instance-id') ??
      resolveInstanceId({
        cfInstanceGuid: env.CF_INSTANCE_GUID,
        vcapApplication: env.VCAP_APPLICATION,
        hostname: machine.hostname,
      }),
    instanceHost: setting('instance-host', asIs, undefined),
    forwards: reads('forward') ? forwardsFrom(flags, env, services, problems) : [],
    trustProxy: setting('trust-proxy', parseTrustList, [] as readonly string[]),
    hsts: setting('hsts', parseHsts, undefined),
    grpcWebOrigins: setting('grpc-web-origins', parseOrigins, [] as readonly string[]),
    trustRequestId: setting('trust-request-id', parseBoolean, false),
    accessLog: setting(
      'access-log',
      (t) => parseChoice(t, ['off', 'json', 'combined'] as const),
      SIDECAR_DEFAULTS.accessLog,
    ),
    accessLogFile: text('access-log-file'),
    accessLogQuery: setting(
      'access-log-query',
      (t) => parseChoice(t, ['keep', 'drop'] as const),
      SIDECAR_DEFAULTS.accessLogQuery,
    ),
    proxyProtocol: setting(
      'proxy-protocol',
      (t) => parseChoice(t, ['off', 'v1', 'v2'] as const),
      SIDECAR_DEFAULTS.proxyProtocol,
    ),
    format: setting(
      'format',
      (t) => parseChoice(t, ['shell', 'dotenv', 'json'] as const),
      SIDECAR_DEFAULTS.format,
    ),
    json: setting('json', parseBoolean, false),
    require: setting('require', parseBoolean, false),
    warnDays: setting('warn-days', parseNonNegative, SIDECAR_DEFAULTS.warnDays),
    logLevel: setting(
      'log-level',
      (t) => parseChoice(t, LOG_LEVELS),
      SIDECAR_DEFAULTS.logLevel as (typeof LOG_LEVELS)[number],
    ),
    pretty: setting('pretty', parseBoolean, machine.stdoutIsTerminal),
    services,
    appName,
    appNameUpcaseSet: upcaseSet,
  };
  problems.push(...listenerClashes(services, settings.forwards, backend, settings.listenHosts));
  if (settings.grpcWebOrigins.length > 0 && settings.backendProtocol !== 'h2c') {
    problems.push({
      code: 'E_SETTING',
      message:
        '--grpc-web-origins needs --backend-protocol h2c: gRPC-Web is translated for an h2c backend only',
    });
  }
  return { settings: Object.freeze(settings), problems };
}

/**
 * --max-header-size: 1k to 1m. Smaller refuses ordinary browsers' heads; larger lets each
 * connection hold that much before a 431, and HTTP/2's own limit (twice this) must fit 32 bits.
 */
function parseHeaderSize(text: string): Parsed<number> {
  const parsed = parseSize(text);
  if (parsed.ok && (parsed.value < 1024 || parsed.value > 1024 * 1024))
    return { ok: false, reason: `must be 1k to 1m (1024 to 1048576 bytes), not "${text}"` };
  return parsed;
}

/** --node-ttl: a timeout no longer than a node keeps an instance (its API refuses more). */
function parseNodeTtl(text: string): Parsed<number> {
  return parseTimeout(
    text,
    MAX_INSTANCE_TTL_SECONDS * 1000,
    `${MAX_INSTANCE_TTL_SECONDS / 3600}h (what a node accepts)`,
  );
}

function parseNonNegative(text: string): Parsed<number> {
  return /^\s*\d+\s*$/.test(text)
    ? { ok: true, value: Number(text) }
    : { ok: false, reason: `must be a whole number of days, not "${text}"` };
}

/**
 * --listen: addresses, each once. A wildcard (0.0.0.0, ::) beside an address of its own family
 * is refused: both cannot hold one port, and the second would be reported as a port taken.
 */
function parseHostList(text: string): Parsed<string[]> {
  const hosts = [
    ...new Set(
      text
        .split(',')
        .map((h) => h.trim().replace(/^\[(.*)\]$/, '$1'))
        .filter((h) => h !== ''),
    ),
  ];
  if (hosts.length === 0) return { ok: false, reason: 'must name at least one address' };
  for (const wildcard of ['0.0.0.0', '::']) {
    const v6 = wildcard === '::';
    const covered = hosts.find((h) => h !== wildcard && isIP(h) === (v6 ? 6 : 4));
    if (hosts.includes(wildcard) && covered !== undefined)
      return {
        ok: false,
        reason: `lists ${wildcard}, which already covers ${covered}: list one of them, not "${text}"`,
      };
  }
  return { ok: true, value: hosts };
}

/** "10.0.0.0/8, 127.0.0.1": each an IP address or CIDR (checked by the one BlockList that uses them). */
function parseTrustList(text: string): Parsed<readonly string[]> {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  for (const entry of entries) {
    if (trustBlockList([entry]) === undefined) {
      return {
        ok: false,
        reason: `"${entry}" is not an IP address or CIDR (10.0.0.0/8, fd00::/8, 127.0.0.1)`,
      };
    }
  }
  return { ok: true, value: entries };
}

function parseUdpCheck(text: string): Parsed<string | undefined> {
  const problem = udpCheckProblem(text);
  return problem === undefined ? { ok: true, value: text } : { ok: false, reason: problem };
}

function parseUrl(text: string): Parsed<string | undefined> {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return { ok: false, reason: `must be an http:// or https:// URL, not "${text}"` };
    }
    return { ok: true, value: url.href.replace(/\/$/, '') };
  } catch {
    return { ok: false, reason: `must be a URL, not "${text}"` };
  }
}

/** One URL or several, comma-separated (the nodes of a cluster); kept as a comma-separated list. */
function parseUrls(text: string): Parsed<string | undefined> {
  const urls: string[] = [];
  for (const part of text.split(',')) {
    const parsed = parseUrl(part.trim());
    if (!parsed.ok) return parsed;
    if (parsed.value !== undefined) urls.push(parsed.value);
  }
  return { ok: true, value: urls.join(',') };
}

/** The CA certificates --node-ca names, read; a problem names the flag or variable when they cannot be. */
function nodeCaFrom(
  given: { text: string; from: string } | undefined,
  machine: { readFile: (path: string) => string },
  problems: Problem[],
): string | undefined {
  if (given === undefined || given.text === '') return undefined;
  const read = readNodeCa(given.text, given.from, machine.readFile);
  if (read.ok) return read.pem;
  problems.push(read.problem);
  return undefined;
}

/** --service and --int-port describe one service by hand; otherwise the platform's variables do. */
function servicesFrom(flags: FlagValues, env: Environment, problems: Problem[]): HarborService[] {
  const name = rawSetting(definitionOf('service'), flags, env);
  const intPortText = rawSetting(definitionOf('int-port'), flags, env);
  const extPortText = rawSetting(definitionOf('ext-port'), flags, env);
  if (name === undefined && intPortText === undefined) {
    const result = readServices(env);
    problems.push(...result.problems);
    return [...result.services];
  }
  if (name === undefined || intPortText === undefined) {
    problems.push({
      code: 'E_SETTING',
      message: `${name ? name.from : intPortText?.from} needs ${name ? '--int-port' : '--service'} as well`,
    });
    return [];
  }
  const intPort = parsePortNumber(intPortText.text);
  if (!intPort.ok) {
    problems.push({ code: 'E_SETTING', message: `${intPortText.from} ${intPort.reason}` });
    return [];
  }
  let port: number | undefined;
  if (extPortText) {
    const parsed = parsePortNumber(extPortText.text);
    if (parsed.ok) port = parsed.value;
    else problems.push({ code: 'E_SETTING', message: `${extPortText.from} ${parsed.reason}` });
  }
  const rule = ruleForName(name.text);
  return [
    {
      name: name.text,
      instanceId: '',
      nodeId: '',
      hostname: '',
      host: '',
      port,
      intPort: intPort.value,
      extHostname: '',
      extHost: '',
      transport: rule.transport,
      https: rule.https,
      variable: variableForService(name.text),
    },
  ];
}

function backendFrom(flags: FlagValues, env: Environment, problems: Problem[]): Address | undefined {
  const explicit = rawSetting(definitionOf('backend'), flags, env);
  const candidates: { text: string; from: string }[] = explicit ? [explicit] : [];
  for (const variable of ['PORT', 'VCAP_APP_PORT']) {
    const value = env[variable];
    if (!explicit && value) candidates.push({ text: value, from: variable });
  }
  const first = candidates[0];
  if (!first) return undefined;
  const parsed = parseAddress(first.text);
  if (parsed.ok) return parsed.value;
  problems.push({ code: 'E_BACKEND', message: `${first.from} ${parsed.reason}` });
  return undefined;
}

function vcapApplication(env: Environment, problems: Problem[]): Record<string, unknown> {
  const text = env.VCAP_APPLICATION;
  if (!text) return {};
  try {
    const parsed = parseJsonVariable('VCAP_APPLICATION', text);
    if (isPlainObject(parsed)) return parsed;
    problems.push({ code: 'E_ENV_SHAPE', message: 'VCAP_APPLICATION must be a JSON object' });
  } catch (error) {
    problems.push({ code: 'E_ENV_JSON', message: (error as Error).message });
  }
  return {};
}

function appNameFrom(
  env: Environment,
  problems: Problem[],
): { name: string | undefined; upcaseSet: boolean } {
  const upcaseSet = env.STACKATO_APP_NAME_UPCASE !== undefined && env.STACKATO_APP_NAME_UPCASE !== '';
  if (env.STACKATO_APP_NAME) return { name: env.STACKATO_APP_NAME, upcaseSet };
  const app = vcapApplication(env, problems);
  const name = app.name ?? app.application_name;
  return { name: typeof name === 'string' && name !== '' ? name : undefined, upcaseSet };
}

function forwardsFrom(
  flags: FlagValues,
  env: Environment,
  services: readonly HarborService[],
  problems: Problem[],
): ForwardTarget[] {
  const entries: { name: string; target: string; from: string }[] = [];
  const flag = flags.forward;
  const list = typeof flag === 'string' ? [flag] : Array.isArray(flag) ? flag : [];
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      problems.push({ code: 'E_SETTING', message: `--forward must be NAME=HOST:PORT, not "${item}"` });
      continue;
    }
    entries.push({ name: item.slice(0, eq), target: item.slice(eq + 1), from: '--forward' });
  }
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith('HARBOR_FORWARD_') || !value) continue;
    const mangled = variable.slice('HARBOR_FORWARD_'.length);
    const service = services.find((s) => mangleName(s.name) === mangled);
    if (!service) {
      problems.push({
        code: 'E_SETTING',
        message: `${variable} names no Harbor service (known: ${knownNames(services)})`,
      });
      continue;
    }
    if (!entries.some((e) => e.name === service.name))
      entries.push({ name: service.name, target: value, from: variable });
  }
  const forwards: ForwardTarget[] = [];
  for (const entry of entries) {
    const service = services.find((s) => s.name === entry.name);
    if (!service) {
      problems.push({
        code: 'E_SETTING',
        message: `${entry.from} names no Harbor service "${entry.name}" (known: ${knownNames(services)})`,
      });
      continue;
    }
    // The HTTPS proxy owns TCP on an https service's int_port: a forward there can only carry UDP.
    if (service.https && service.transport !== 'both') {
      problems.push({
        code: 'E_SETTING',
        message: `${entry.from} for "${entry.name}": the service is served by the HTTPS proxy, so a forward does not apply to it`,
      });
      continue;
    }
    const target = parseAddress(entry.target);
    if (!target.ok || target.value.kind !== 'tcp') {
      problems.push({
        code: 'E_SETTING',
        message: `${entry.from} for "${entry.name}" must be HOST:PORT, not "${entry.target}"`,
      });
      continue;
    }
    forwards.push({ service: entry.name, target: target.value });
  }
  return forwards;
}

function knownNames(services: readonly HarborService[]): string {
  return services.length === 0 ? 'none' : services.map((s) => s.name).join(', ');
}
