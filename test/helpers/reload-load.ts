// A bounded client load for reload tests: HTTPS requests through the sidecar
// over new connections (one TLS handshake each, verified against the test CA,
// so every certificate served mid-swap is checked) and over kept-alive ones,
// until stopped, `maxRequests` is reached or `maxMs` has passed.
import { Agent, request } from 'node:https';

export interface LoadOptions {
  readonly port: number;
  /** The CA every served certificate must verify against, for servername localhost. */
  readonly ca: string;
  readonly maxRequests: number;
  readonly maxMs: number;
  /** Workers on new connections and on kept-alive ones (default 1 and 2). */
  readonly newWorkers?: number;
  readonly keepAliveWorkers?: number;
}

export interface LoadResult {
  readonly ok: number;
  /** Requests answered on a fresh connection. */
  readonly fresh: number;
  /** Requests answered on a kept-alive connection that had carried one before. */
  readonly reused: number;
  readonly failed: number;
  /** The first few failures, described. */
  readonly failures: readonly string[];
  readonly stoppedBy: 'stop' | 'maxRequests' | 'maxMs';
}

export interface Load {
  stop(): Promise<LoadResult>;
}

export function startLoad(options: LoadOptions): Load {
  const started = performance.now();
  const failures: string[] = [];
  let ok = 0;
  let fresh = 0;
  let reused = 0;
  let sent = 0;
  let failed = 0;
  let stopped = false;
  let stoppedBy: LoadResult['stoppedBy'] = 'stop';
  const keepAlive = new Agent({ keepAlive: true, maxSockets: options.keepAliveWorkers ?? 2, ca: options.ca });

  const one = (agent: Agent | false): Promise<void> =>
    new Promise((resolve) => {
      const path = `/load/${++sent}`;
      const fail = (why: string) => {
        failed++;
        if (failures.length < 20) failures.push(`${path}: ${why}`);
        resolve();
      };
      const req = request(
        { host: '127.0.0.1', port: options.port, path, servername: 'localhost', ca: options.ca, agent },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('error', (error) => fail(`response: ${error.message}`));
          res.on('end', () => {
            if (res.statusCode !== 200 || body !== `backend:GET ${path}`) {
              fail(`status ${res.statusCode} body ${JSON.stringify(body.slice(0, 100))}`);
              return;
            }
            ok++;
            if (req.reusedSocket) reused++;
            else fresh++;
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
      req.once('error', (error) => fail(error.message));
      req.end();
    });

  const worker = async (agent: Agent | false) => {
    while (!stopped) {
      if (sent >= options.maxRequests) {
        stoppedBy = 'maxRequests';
        break;
      }
      if (performance.now() - started > options.maxMs) {
        stoppedBy = 'maxMs';
        break;
      }
      await one(agent);
    }
  };
  const workers = [
    ...Array.from({ length: options.newWorkers ?? 1 }, () => worker(false)),
    ...Array.from({ length: options.keepAliveWorkers ?? 2 }, () => worker(keepAlive)),
  ];
  return {
    async stop() {
      stopped = true;
      await Promise.all(workers);
      keepAlive.destroy();
      return { ok, fresh, reused, failed, failures, stoppedBy };
    },
  };
}
