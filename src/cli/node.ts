#!/usr/bin/env node
// The harbor-node bin: reads argv and the environment (the only place that
// does for the node), starts the node and its API, drains on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { HarborError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import type { ApiCertificate } from '../node/api-certificate.js';
import {
  createNodeAdmin,
  ephemeralOverlap,
  HarborNode,
  NodeApi,
  type PortRange,
  parsePortList,
} from '../node/index.js';
import { isLoopback, NODE_SETTINGS, nodeHelpText, resolveNodeSettings } from '../node/settings.js';
import { createStore } from '../node/store/index.js';
import { heldBy } from '../sockets/port-owner.js';
import { type OptionSpec, parseCommandLine, unknownCommand } from './args.js';
import { printProblems, reportError } from './report.js';

const PROGRAM = 'harbor-node';

function firstNonInternalIPv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function parseNodeCommandLine(argv: readonly string[]): Record<string, string | boolean | undefined> {
  const options: OptionSpec = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
    pretty: { type: 'boolean' },
  };
  for (const d of Object.values(NODE_SETTINGS)) options[d.flag] = { type: 'string' };
  const { flags, positionals } = parseCommandLine(argv, options);
  if (positionals.length > 0) {
    // The commands are `store` and `dataplane`; anything else is flags only.
    throw new HarborError('E_USAGE', unknownCommand(positionals[0]!, ['store', 'dataplane']));
  }
  return flags as Record<string, string | boolean | undefined>;
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export async function main(argv: readonly string[]): Promise<number> {
  const { stdout, stderr } = process;
  if (argv[0] === 'dataplane') {
    const { dataplaneCommand } = await import('./commands/dataplane.js');
    return dataplaneCommand(argv.slice(1), { stdout, stderr });
  }
  if (argv[0] === 'store') {
    const { storeCommand } = await import('./commands/store.js');
    return storeCommand(argv.slice(1), process.env, { stdout, stderr });
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseNodeCommandLine(argv);
  } catch (error) {
    return reportError(error, stderr, PROGRAM);
  }
  if (flags.help) {
    stdout.write(nodeHelpText());
    return 0;
  }
  if (flags.version) {
    stdout.write(`${readVersion()}\n`);
    return 0;
  }
  const { settings, problems } = resolveNodeSettings(flags, process.env, {
    firstAddress: firstNonInternalIPv4(),
    stdoutIsTerminal: Boolean(stdout.isTTY),
    machineName: hostname(),
  });
  if (!settings) {
    printProblems(problems, stderr);
    return 78;
  }
  const logger = createLogger({ level: settings.logLevel, pretty: settings.pretty, name: PROGRAM });
  let certificate: ApiCertificate | undefined;
  if (settings.apiTls !== undefined) {
    // Loaded only here: the certificate code (and chokidar) is dozens of modules a plain API never needs.
    const { ApiCertificate } = await import('../node/api-certificate.js');
    try {
      certificate = ApiCertificate.load({
        files: settings.apiTls,
        passphrase: process.env.HARBOR_KEY_PASSPHRASE || undefined,
        logger,
      });
    } catch (error) {
      return reportError(error, stderr, PROGRAM);
    }
  } else if (!isLoopback(settings.api.host)) {
    logger.warn(
      { code: 'W_API_CLEAR', api: `${settings.api.host}:${settings.api.port}` },
      'the API serves plain HTTP off loopback: its token crosses the network in clear; give --api-cert and --api-key, or put a TLS terminator in front (docs/node.md)',
    );
  }
  warnEphemeralPorts(settings.ports, logger);
  if (settings.store.kind === 'memory') {
    logger.warn('no state file (--state / HARBOR_NODE_STATE): services will not survive a restart');
  }
  const store = await createStore(settings.store, logger);
  const node = new HarborNode({
    range: settings.ports,
    listenHost: settings.listen,
    nodeId: settings.nodeId,
    member: settings.member,
    proxyProtocol: settings.proxyProtocol,
    udpSessionsPerSource: settings.udpSessionsPerSource,
    dataplane: settings.dataplane,
    retryMs: settings.checkIntervalMs,
    hostname: settings.hostname,
    host: settings.host,
    extHostname: settings.extHostname,
    extHost: settings.extHost,
    store,
    udpIdleTimeoutMs: settings.udpIdleTimeoutMs,
    tcpIdleTimeoutMs: settings.tcpIdleTimeoutMs,
    logger,
  });
  const admin = createNodeAdmin({
    node,
    logger,
    version: readVersion(),
    startedAt: new Date(),
    apiCertificate: certificate,
  });
  const api = new NodeApi({
    node,
    token: settings.token,
    logger,
    admin,
    maxConnections: settings.apiConnections,
    certificate,
  });
  // The signals are taken from the first moment: a stop asked for while the node starts is
  // carried out once it has started (before, SIGTERM during start-up killed it outright, its
  // listeners and store half set up), and a SIGHUP then is not a reason to die.
  let stopAsked: NodeJS.Signals | undefined;
  let onStop = (signal: NodeJS.Signals): void => {
    if (stopAsked !== undefined) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopAsked = signal;
    logger.info({ signal }, 'stop asked while starting: stopping once started');
  };
  let onHup = (): void => {};
  const stopSignal = (signal: NodeJS.Signals): void => onStop(signal);
  const hupSignal = (): void => onHup();
  process.on('SIGTERM', stopSignal);
  process.on('SIGINT', stopSignal);
  // A closing terminal or an operator's reload: never a reason to stop (issue 9, item 5).
  process.on('SIGHUP', hupSignal);
  // Untaken, SIGUSR1 opens Node's debugger on 127.0.0.1:9229: a `kill -USR1` meant for a
  // sidecar's logrotate would give anyone on the machine a way into this process.
  const usr1Signal = (): void =>
    logger.info({ signal: 'SIGUSR1' }, 'SIGUSR1 ignored: harbor-node has no log file to reopen');
  process.on('SIGUSR1', usr1Signal);
  let apiPort: number;
  try {
    await node.start();
    try {
      apiPort = await api.listen(settings.api.host, settings.api.port);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new HarborError(
        e.code === 'EADDRINUSE' ? 'E_PORT_IN_USE' : 'E_LISTEN',
        `API address ${settings.api.host}:${settings.api.port}: ${e.code === 'EADDRINUSE' ? `already in use${heldBy(settings.api.port)}` : e.message}`,
        { cause: error },
      );
    }
  } catch (error) {
    process.off('SIGTERM', stopSignal);
    process.off('SIGINT', stopSignal);
    process.off('SIGHUP', hupSignal);
    process.off('SIGUSR1', usr1Signal);
    await Promise.all([node.drain(0), certificate?.close()]);
    if (error instanceof HarborError) logger.error({ code: error.code }, error.message);
    return reportError(error, stderr, PROGRAM);
  }
  logger.info(
    {
      api: `${settings.api.host}:${apiPort}`,
      ports: `${settings.ports.first}-${settings.ports.last}`,
      listen: settings.listen ?? 'all',
      store: store.description,
      node_id: settings.nodeId,
      member: settings.member,
      dataplane: settings.dataplane,
      auth: settings.token ? 'bearer token' : 'none',
      tls: certificate?.describe() ?? 'off',
    },
    'harbor-node ready',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    onStop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal, deadline_ms: settings.drainTimeoutMs }, 'draining');
      void Promise.all([api.close(settings.drainTimeoutMs), node.drain(settings.drainTimeoutMs)]).then(() => {
        logger.info('stopped');
        resolve(0);
      });
    };
    onHup = (): void => {
      if (stopping) {
        logger.info({ signal: 'SIGHUP' }, 'reload ignored while draining');
        return;
      }
      void node.reload('SIGHUP');
      void certificate?.reload('SIGHUP');
    };
    if (stopAsked !== undefined) onStop(stopAsked);
  });
}

/** Warns when the port range lies in Linux's ephemeral range unreserved (W_PORTS_EPHEMERAL). */
function warnEphemeralPorts(range: PortRange, logger: Logger): void {
  let ephemeral: PortRange;
  let reserved: PortRange[];
  try {
    [ephemeral = { first: 0, last: -1 }] = parsePortList(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').replace(/\s+/, '-'),
    );
    reserved = parsePortList(readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8'));
  } catch {
    return; // not Linux, or /proc not mounted: nothing to say
  }
  const count = ephemeralOverlap(range, ephemeral, reserved);
  if (count === 0) return;
  const ports = `${range.first}-${range.last}`;
  logger.warn(
    { code: 'W_PORTS_EPHEMERAL', ports, ephemeral: `${ephemeral.first}-${ephemeral.last}`, overlap: count },
    `${count} ports of --ports ${ports} lie in the kernel's ephemeral range ${ephemeral.first}-${ephemeral.last}, where outgoing connections take ports: reserve them (sysctl -w net.ipv4.ip_local_reserved_ports=${ports}) or choose a range outside it`,
  );
}

const status = await main(process.argv.slice(2));
process.stdout.write('', () => process.exit(status));
