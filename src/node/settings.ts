// harbor-node's settings: each a flag and an environment variable (flags
// win), one defaults object, one pure function that returns the settings or
// every problem at once. Only src/cli/node.ts hands it process.argv/env.
import { isIP } from 'node:net';
import type { LevelWithSilent } from 'pino';
import { durationText, FORWARD_DEFAULTS, NODE_DEFAULTS } from '../config/defaults.js';
import { rawSetting } from '../config/settings.js';
import { parseAddress, parseChoice, parsePositiveInteger, parseTimeout } from '../config/values.js';
import type { Problem } from '../errors/index.js';
import { LOG_LEVELS } from '../log/index.js';
import { type PortRange, parsePortRange } from './ports.js';
import { parseStoreLocation, type StoreLocation } from './store/url.js';

export interface NodeSettings {
  readonly ports: PortRange;
  readonly api: { readonly host: string; readonly port: number };
  /** The API's certificate pair (--api-cert, --api-key): it serves HTTPS; undefined: plain HTTP. */
  readonly apiTls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly state: string | undefined;
  /** Where services are kept: --store, else file:--state, else memory. */
  readonly store: StoreLocation;
  readonly nodeId: string;
  /** This node's name among the members of a cluster. */
  readonly member: string;
  readonly hostname: string;
  readonly host: string;
  readonly extHostname: string | undefined;
  readonly extHost: string | undefined;
  /** Undefined: every address. */
  readonly listen: string | undefined;
  readonly udpIdleTimeoutMs: number;
  /** 0: off. */
  readonly tcpIdleTimeoutMs: number;
  readonly drainTimeoutMs: number;
  /** PROXY protocol toward instances; undefined: off. */
  readonly proxyProtocol: 1 | 2 | undefined;
  readonly apiConnections: number;
  readonly udpSessionsPerSource: number;
  /** Who forwards new flows: this process, or the kernel through nftables. */
  readonly dataplane: 'userspace' | 'nftables';
  /** How often ports held by others and instances are checked again. */
  readonly checkIntervalMs: number;
  readonly token: string | undefined;
  readonly logLevel: LevelWithSilent;
  readonly pretty: boolean;
}

/** Each setting: its flag (without --), the variables it reads, the default. */
export const NODE_SETTINGS = {
  ports: {
    flag: 'ports',
    env: ['HARBOR_NODE_PORTS'],
    default: NODE_DEFAULTS.ports,
    help: 'service port range',
  },
  api: {
    flag: 'api',
    env: ['HARBOR_NODE_API'],
    default: `${NODE_DEFAULTS.api.host}:${NODE_DEFAULTS.api.port}`,
    help: 'API address',
  },
  apiCert: {
    flag: 'api-cert',
    env: ['HARBOR_NODE_API_CERT'],
    default: '',
    help: "the API's certificate (PEM, leaf first): the API serves HTTPS; reloaded on SIGHUP and when the file changes",
  },
  apiKey: {
    flag: 'api-key',
    env: ['HARBOR_NODE_API_KEY'],
    default: '',
    help: "the API certificate's private key (PEM; encrypted: HARBOR_KEY_PASSPHRASE)",
  },
  state: {
    flag: 'state',
    env: ['HARBOR_NODE_STATE'],
    default: '',
    help: 'state file (short for --store file:PATH)',
  },
  store: {
    flag: 'store',
    env: ['HARBOR_NODE_STORE'],
    default: '',
    help: 'file:PATH, memory, redis://[user@]host:port[/db], rediss://..., redis-sentinel://host:port[,...]/MASTER (default file:--state, else memory; password: HARBOR_NODE_STORE_PASSWORD)',
  },
  clusterHost: {
    flag: 'cluster-host',
    env: ['HARBOR_NODE_CLUSTER_HOST'],
    default: '',
    help: 'credentials host for a cluster: the virtual IP in front of every node',
  },
  clusterHostname: {
    flag: 'cluster-hostname',
    env: ['HARBOR_NODE_CLUSTER_HOSTNAME'],
    default: '',
    help: 'credentials hostname for a cluster: the DNS name of every node',
  },
  nodeId: { flag: 'node-id', env: ['HARBOR_NODE_ID'], default: NODE_DEFAULTS.nodeId, help: 'node_id' },
  member: {
    flag: 'member',
    env: ['HARBOR_NODE_MEMBER'],
    default: '',
    help: "this node's name among a cluster's members (default MACHINE/LISTEN-ADDRESS)",
  },
  hostname: {
    flag: 'hostname',
    env: ['HARBOR_NODE_HOSTNAME'],
    default: '',
    help: 'internal hostname (default --host)',
  },
  host: {
    flag: 'host',
    env: ['HARBOR_NODE_HOST'],
    default: '',
    help: 'internal IP (default first non-internal IPv4)',
  },
  extHostname: {
    flag: 'ext-hostname',
    env: ['HARBOR_NODE_EXT_HOSTNAME'],
    default: '',
    help: 'public hostname',
  },
  extHost: { flag: 'ext-host', env: ['HARBOR_NODE_EXT_HOST'], default: '', help: 'public IP' },
  listen: {
    flag: 'listen',
    env: ['HARBOR_NODE_LISTEN'],
    default: '',
    help: 'service listen IP (default all)',
  },
  udpIdleTimeout: {
    flag: 'udp-idle-timeout',
    env: ['HARBOR_NODE_UDP_IDLE_TIMEOUT'],
    default: durationText(FORWARD_DEFAULTS.udpIdleTimeoutMs),
    help: 'UDP session idle timeout',
  },
  tcpIdleTimeout: {
    flag: 'tcp-idle-timeout',
    env: ['HARBOR_NODE_TCP_IDLE_TIMEOUT'],
    default: durationText(NODE_DEFAULTS.tcpIdleTimeoutMs),
    help: 'close a TCP connection with no data either way for this long (0: never)',
  },
  drainTimeout: {
    flag: 'drain-timeout',
    env: ['HARBOR_NODE_DRAIN_TIMEOUT'],
    default: durationText(NODE_DEFAULTS.drainTimeoutMs),
    help: 'drain deadline on SIGTERM',
  },
  apiConnections: {
    flag: 'api-connections',
    env: ['HARBOR_NODE_API_CONNECTIONS'],
    default: String(NODE_DEFAULTS.apiConnections),
    help: 'connections the API keeps open at once; idle ones are closed to make room (a busy client may want more)',
  },
  udpSessionsPerSource: {
    flag: 'udp-sessions-per-source',
    env: ['HARBOR_NODE_UDP_SESSIONS_PER_SOURCE'],
    default: String(FORWARD_DEFAULTS.udpSessionsPerSource),
    help: "UDP sessions one client address may hold per service; past it, its least recent one makes room (others' are never evicted for it)",
  },
  proxyProtocol: {
    flag: 'proxy-protocol',
    env: ['HARBOR_NODE_PROXY_PROTOCOL'],
    default: NODE_DEFAULTS.proxyProtocol,
    help: "send a PROXY protocol header (v1 or v2) first on each TCP connection to an instance: the client's address (the sidecar takes it with --trust-proxy)",
  },
  dataplane: {
    flag: 'dataplane',
    env: ['HARBOR_NODE_DATAPLANE'],
    default: NODE_DEFAULTS.dataplane,
    help: 'who forwards new connections: userspace (this process) or nftables (the kernel, programmed by the node; needs CAP_NET_ADMIN, nft and conntrack; docs/dataplane.md)',
  },
  checkInterval: {
    flag: 'check-interval',
    env: ['HARBOR_NODE_CHECK_INTERVAL'],
    default: durationText(NODE_DEFAULTS.checkIntervalMs),
    help: 'how often a port held by another process is tried again and instances are checked (with nftables: every instance)',
  },
  logLevel: {
    flag: 'log-level',
    env: ['HARBOR_LOG_LEVEL'],
    default: NODE_DEFAULTS.logLevel,
    help: 'log level',
  },
} as const;

export type NodeFlagValues = Partial<Record<string, string | boolean | undefined>>;

export interface NodeSettingsContext {
  /** The machine's first non-internal IPv4 address, if any. */
  readonly firstAddress: string | undefined;
  readonly stdoutIsTerminal: boolean;
  /** The machine's name (os.hostname()), for the default member name. */
  readonly machineName: string;
}

type Key = keyof typeof NODE_SETTINGS;

/** The API's host is on this machine alone (its clients' traffic never crosses a network). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function resolveNodeSettings(
  flags: NodeFlagValues,
  env: Readonly<Record<string, string | undefined>>,
  context: NodeSettingsContext,
): { settings: NodeSettings | undefined; problems: Problem[] } {
  const problems: Problem[] = [];
  /** The raw text and where it came from ("--ports" or "HARBOR_NODE_PORTS"), flag first. */
  const raw = (key: Key): { text: string; source: string | undefined } => {
    const def = NODE_SETTINGS[key];
    const found = rawSetting(def, flags, env);
    return found ? { text: found.text, source: found.from } : { text: def.default, source: undefined };
  };
  const problem = (source: string | undefined, text: string, reason: string): void => {
    problems.push({
      code: 'E_SETTING',
      message: `${source ?? 'default'} ${JSON.stringify(text)}: ${reason}`,
    });
  };

  const portsRaw = raw('ports');
  const ports = parsePortRange(portsRaw.text);
  if (typeof ports === 'string') problem(portsRaw.source, portsRaw.text, ports);

  const apiRaw = raw('api');
  // Port 0 asks for any free port (tests use it; the ready log line says which).
  const anyPort = /:0$/.test(apiRaw.text.trim());
  const api = parseAddress(anyPort ? `${apiRaw.text.trim().slice(0, -1)}1` : apiRaw.text);
  let apiAddress: { host: string; port: number } | undefined;
  if (!api.ok) problem(apiRaw.source, apiRaw.text, api.reason);
  else if (api.value.kind !== 'tcp') problem(apiRaw.source, apiRaw.text, 'must be a TCP host:port');
  else apiAddress = { host: api.value.host, port: anyPort ? 0 : api.value.port };

  const certRaw = raw('apiCert');
  const keyRaw = raw('apiKey');
  let apiTls: NodeSettings['apiTls'];
  if (certRaw.text !== '' && keyRaw.text !== '') apiTls = { certFile: certRaw.text, keyFile: keyRaw.text };
  else if (certRaw.text !== '' || keyRaw.text !== '') {
    const [given, missing] =
      certRaw.text !== ''
        ? [certRaw, '--api-key (HARBOR_NODE_API_KEY)']
        : [keyRaw, '--api-cert (HARBOR_NODE_API_CERT)'];
    problem(given.source, given.text, `needs ${missing} too (the API serves HTTPS with both or neither)`);
  }

  const listenRaw = raw('listen');
  let listen: string | undefined;
  if (listenRaw.text !== '' && listenRaw.text !== '*' && listenRaw.text !== 'all') {
    const host = listenRaw.text.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) === 0) problem(listenRaw.source, listenRaw.text, 'must be an IP address (or "all")');
    else listen = host;
  }

  const duration = (key: Key): number => {
    const r = raw(key);
    const parsed = parseTimeout(r.text);
    if (!parsed.ok) problem(r.source, r.text, parsed.reason);
    return parsed.ok ? parsed.value : 0;
  };
  const udpIdleTimeoutMs = duration('udpIdleTimeout');
  const tcpIdleRaw = raw('tcpIdleTimeout');
  const tcpIdle = tcpIdleRaw.text === '0' ? { ok: true as const, value: 0 } : parseTimeout(tcpIdleRaw.text);
  if (!tcpIdle.ok) problem(tcpIdleRaw.source, tcpIdleRaw.text, tcpIdle.reason);
  const tcpIdleTimeoutMs = tcpIdle.ok ? tcpIdle.value : 0;
  const drainTimeoutMs = duration('drainTimeout');

  const count = (key: Key): number => {
    const r = raw(key);
    const parsed = parsePositiveInteger(r.text);
    if (!parsed.ok) problem(r.source, r.text, parsed.reason);
    return parsed.ok ? parsed.value : 0;
  };
  const apiConnections = count('apiConnections');
  const udpSessionsPerSource = count('udpSessionsPerSource');

  const proxyRaw = raw('proxyProtocol');
  const proxy = parseChoice(proxyRaw.text, ['off', 'v1', 'v2'] as const);
  if (!proxy.ok) problem(proxyRaw.source, proxyRaw.text, proxy.reason);

  const dataplaneRaw = raw('dataplane');
  const dataplane = parseChoice(dataplaneRaw.text, ['userspace', 'nftables'] as const);
  if (!dataplane.ok) problem(dataplaneRaw.source, dataplaneRaw.text, dataplane.reason);
  else if (dataplane.value === 'nftables' && proxy.ok && proxy.value !== 'off') {
    // The kernel rewrites addresses; it cannot write a PROXY header into a stream.
    problem(
      dataplaneRaw.source,
      dataplaneRaw.text,
      `the kernel cannot send PROXY protocol headers (${proxyRaw.source ?? '--proxy-protocol'} ${proxyRaw.text}); choose one`,
    );
  }
  const checkIntervalMs = duration('checkInterval');

  const levelRaw = raw('logLevel');
  const level = parseChoice(levelRaw.text, LOG_LEVELS);
  if (!level.ok) problem(levelRaw.source, levelRaw.text, level.reason);

  const nodeIdRaw = raw('nodeId');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeIdRaw.text)) {
    problem(nodeIdRaw.source, nodeIdRaw.text, 'must be 1-64 letters, digits, ".", "_" or "-"');
  }

  const fallbackAddress = context.firstAddress ?? '127.0.0.1';
  const ownHost = raw('host').text || fallbackAddress;
  const host = raw('clusterHost').text || ownHost;
  const memberRaw = raw('member');
  const member = memberRaw.text || `${context.machineName}/${listen ?? ownHost}`;
  if (!/^[\x21-\x7e]{1,128}$/.test(member)) {
    problem(memberRaw.source, member, 'must be 1-128 printable characters without spaces');
  }
  const hostname = raw('clusterHostname').text || raw('hostname').text || raw('clusterHost').text || host;

  const stateRaw = raw('state');
  const storeRaw = raw('store');
  let store: StoreLocation = stateRaw.text
    ? { kind: 'file', path: stateRaw.text, description: `file:${stateRaw.text}` }
    : { kind: 'memory', description: 'memory' };
  if (storeRaw.text !== '') {
    // The password is never echoed: a problem names the store by what parsing kept.
    const parsed = parseStoreLocation(storeRaw.text, env.HARBOR_NODE_STORE_PASSWORD);
    const shown = storeRaw.text.replace(/\/\/[^@/]*@/, '//***@');
    if (typeof parsed === 'string') problem(storeRaw.source, shown, parsed);
    else if (stateRaw.text && !(parsed.kind === 'file' && parsed.path === stateRaw.text)) {
      problem(
        storeRaw.source,
        shown,
        `names another store than ${stateRaw.source} ${stateRaw.text}; give one of them`,
      );
    } else store = parsed;
  }
  const token = env.HARBOR_NODE_TOKEN || undefined;

  if (apiAddress && !token && !isLoopback(apiAddress.host)) {
    problems.push({
      code: 'E_SETTING',
      message: `${apiRaw.source ?? 'default'} ${JSON.stringify(apiRaw.text)}: the API is not on a loopback address and HARBOR_NODE_TOKEN is not set; refusing to serve it without a token`,
    });
  }

  if (problems.length > 0 || typeof ports === 'string' || !apiAddress || !level.ok) {
    return { settings: undefined, problems };
  }
  const pretty = flags.pretty === true || (flags.pretty === undefined && context.stdoutIsTerminal);
  return {
    settings: Object.freeze({
      ports,
      api: apiAddress,
      apiTls,
      state: stateRaw.text || undefined,
      store,
      nodeId: nodeIdRaw.text,
      member,
      hostname,
      host,
      extHostname: raw('extHostname').text || undefined,
      extHost: raw('extHost').text || undefined,
      listen,
      udpIdleTimeoutMs,
      tcpIdleTimeoutMs,
      drainTimeoutMs,
      proxyProtocol: proxy.ok && proxy.value !== 'off' ? (proxy.value === 'v1' ? 1 : 2) : undefined,
      apiConnections,
      udpSessionsPerSource,
      dataplane: dataplane.ok ? dataplane.value : 'userspace',
      checkIntervalMs,
      token,
      logLevel: level.value,
      pretty,
    }),
    problems,
  };
}

export function nodeHelpText(): string {
  const entries: [flag: string, env: string, help: string][] = [
    ...Object.values(NODE_SETTINGS).map((d): [string, string, string] => [
      `--${d.flag}`,
      d.env.join(', '),
      `${d.help}${d.default ? ` (default ${d.default})` : ''}`,
    ]),
    ['--pretty', '', 'human-readable logs (default when stdout is a terminal)'],
    ['', 'HARBOR_NODE_TOKEN', 'bearer token for the API (required off loopback)'],
    ['', 'HARBOR_NODE_STORE_PASSWORD', "the store's password (instead of the URL's)"],
  ];
  // Columns as wide as their widest entry, so that a long flag or variable does not push its row out of line.
  const flagWidth = Math.max(...entries.map(([flag]) => flag.length));
  const envWidth = Math.max(...entries.map(([, env]) => env.length));
  const rows = entries.map(([flag, env, help]) =>
    `  ${flag.padEnd(flagWidth)}  ${env.padEnd(envWidth)}  ${help}`.trimEnd(),
  );
  return [
    'Usage: harbor-node [flags]',
    '',
    'The Harbor edge node: provisions ports for Harbor services and forwards them to app instances.',
    'Each setting is a flag or an environment variable; flags win.',
    '',
    ...rows,
    '',
    'Commands:',
    '  harbor-node store copy --from STORE --to STORE   copy every service (ports, ids, credentials) from one store to another',
    '  harbor-node dataplane clean                      remove the nftables tables of --dataplane nftables (ip harbor, ip6 harbor)',
    '',
    'See docs/node.md for the API.',
    '',
  ].join('\n');
}
