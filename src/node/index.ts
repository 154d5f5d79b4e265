// The Harbor node (harbor-node): provisions a port per Harbor service from
// its range, listens on it (TCP, UDP or both by the service name), balances
// connections over the app's instances (round-robin for TCP, a primary with
// queued failovers for UDP), learns instances through its HTTP API with TTLs,
// and keeps all of it in an atomically written state file across restarts.
export { createNodeAdmin, type NodeAdminOptions, nodeReadiness, nodeStatusReport } from './admin.js';
export { NodeApi, type NodeApiOptions, parseInstanceBody, parseServiceBody } from './api.js';
export {
  type Balancer,
  createBalancer,
  DEFAULT_DOWN_MS,
  Health,
  type HealthState,
  Instance,
  type InstanceSpec,
  type InstanceState,
  PrimaryBalancer,
  type Protocol,
  RoundRobinBalancer,
} from './balancer.js';
export { type InstanceCheck, tcpConnectCheck } from './health.js';
export { type Credentials, HarborNode, type HarborNodeOptions, type ServiceView } from './node.js';
export {
  bindProbe,
  ephemeralOverlap,
  PortAllocator,
  type PortProbe,
  type PortRange,
  parsePortList,
  parsePortRange,
} from './ports.js';
export { NodeService } from './service.js';
export { type NodeState, parseState, type ServiceRecord, StateFile, serializeState } from './state.js';
