// The admin endpoint and its client. Owns GET /healthz, /readyz, /metrics
// (Prometheus text from its own prom-client Registry, filled at scrape time
// from the plain ServiceStats counters) and /status (the StatusReport JSON in
// ./types.ts), served on --admin / HARBOR_ADMIN or mounted on harbor-node's
// API; and what `harbor-sidecar status` and the image's HEALTHCHECK run.
export {
  type FetchOptions,
  fetchReadiness,
  fetchStatus,
  type Readiness,
  readinessExitStatus,
  runStatusCommand,
  type StatusCommandOptions,
  type StatusCommandResult,
} from './client.js';
export {
  type ConnectionGuard,
  type ConnectionGuardOptions,
  guardConnections,
} from './connection-guard.js';
export { createMetricsRegistry, METRIC_NAMES, type MetricsOptions } from './metrics.js';
export {
  ADMIN_CONNECTIONS,
  ADMIN_PATHS,
  type AdminHandlerOptions,
  type AdminRequestHandler,
  type AdminServer,
  type AdminServerOptions,
  adminHandler,
  createAdminServer,
  DEFAULT_ADMIN_ADDRESS,
  requestPath,
} from './server.js';
export { countersOf, daysLeft, formatStatusTable } from './table.js';
export type * from './types.js';
