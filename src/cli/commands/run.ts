// `harbor-sidecar run` (the default command): serve until SIGTERM or SIGINT,
// then drain; a second signal exits at once; SIGHUP reloads every
// certificate pair (ignored while draining).
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { watchPair } from '../../certs/watch.js';
import type { SidecarSettings } from '../../config/settings.js';
import { createLogger, type Logger } from '../../log/index.js';
import { RegistrationClient, resolveInstanceHost } from '../../registration/index.js';
import { tuneHeapForServing } from '../../sidecar/heap-tuning.js';
import { Sidecar } from '../../sidecar/index.js';
import type { CommandContext } from '../context.js';
import { failOnErrors } from '../report.js';

function createRegistration(settings: SidecarSettings, logger: Logger): RegistrationClient | undefined {
  if (settings.nodeUrl === undefined) return undefined;
  const services = settings.services
    .filter((s) => s.instanceId !== '')
    .map((s) => ({
      serviceId: s.instanceId,
      serviceName: s.name,
      port: s.intPort,
      ...(s.transport !== 'tcp' && settings.udpCheck !== undefined && { udpCheck: settings.udpCheck }),
    }));
  if (services.length === 0) {
    logger.warn(
      "--node-url (HARBOR_NODE_URL) is set, but no service has an instance id to register under: the credentials' name, which a debug shell's --service lacks (give STACKATO_SERVICES the node's credentials instead)",
    );
    return undefined;
  }
  const host = resolveInstanceHost(settings.instanceHost, networkInterfaces());
  return new RegistrationClient({
    nodeUrl: settings.nodeUrl,
    token: settings.nodeToken,
    ca: settings.nodeCa,
    instanceId: settings.instanceId,
    host,
    services,
    logger,
    ttlSeconds: Math.max(1, Math.round(settings.nodeTtlMs / 1000)),
  });
}

function version(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

export async function runCommand(context: CommandContext): Promise<number> {
  const { settings, problems, stderr } = context;
  const failed = failOnErrors(problems, stderr);
  if (failed !== undefined) return failed;
  const logger = createLogger({ name: 'harbor-sidecar', level: settings.logLevel, pretty: settings.pretty });
  for (const p of problems) logger.warn({ code: p.code }, p.message);
  const registration = createRegistration(settings, logger);
  const sidecar = new Sidecar({
    settings,
    logger,
    version: version(),
    watch: (pair, serviceLogger) => {
      const watcher = watchPair(pair, { logger: serviceLogger });
      return () => watcher.close();
    },
    registration,
  });
  if (!sidecar.hasWork) {
    context.stdout.write(
      settings.services.length === 0
        ? 'harbor-sidecar: no Harbor services in this environment; nothing to serve\n'
        : `harbor-sidecar: no HTTPS service and no --forward among ${settings.services.map((s) => s.name).join(', ')}; nothing to serve\n`,
    );
    return 0;
  }
  tuneHeapForServing();
  return serve(sidecar, logger);
}

async function serve(sidecar: Sidecar, logger: Logger): Promise<number> {
  let stopping = false;
  let finish: (status: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const onStop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      finish(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping: draining connections');
    sidecar.drain().then(
      () => finish(0),
      (error: Error) => {
        logger.error({ err: error }, 'drain failed');
        finish(1);
      },
    );
  };
  const onHup = () => {
    if (stopping) {
      logger.info('SIGHUP ignored while draining');
      return;
    }
    logger.info('SIGHUP: reloading every certificate pair');
    void sidecar.reload('SIGHUP');
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHup);
  // logrotate moved the access log file away: write to a new one. Taken even with no file: untaken,
  // SIGUSR1 opens Node's debugger on 127.0.0.1:9229, a way into this process for anyone on the machine.
  const onUsr1 = () => sidecar.reopenLogs();
  process.on('SIGUSR1', onUsr1);
  try {
    await sidecar.start();
  } catch (error) {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onHup);
    process.off('SIGUSR1', onUsr1);
    throw error;
  }
  const waiting = sidecar.waitingForPairs();
  if (waiting.length === 0) logger.info({ services: sidecar.describe() }, 'harbor-sidecar serving');
  else
    logger.info(
      { services: sidecar.describe(), waiting },
      'harbor-sidecar started; waiting for certificate pairs',
    );
  // A sidecar that only registers (the app listens on int_port itself, admin
  // off) has no listener to hold the event loop, and the registration timers
  // are unref'd: without this it would exit at once, leaving its instance on
  // the node. Held until a signal settles `done`.
  const hold = setInterval(() => {}, 2 ** 30);
  return done.finally(() => clearInterval(hold));
}
