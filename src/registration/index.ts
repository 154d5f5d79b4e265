// The sidecar's side of the Harbor node: register this app instance for each
// Harbor service (HARBOR_NODE_URL / HARBOR_NODE_TOKEN), refresh within the
// TTL, deregister on stop, retry a down node with backoff without ever
// stopping the sidecar. The CLI passes in the environment's values.
export {
  DEFAULT_TTL_SECONDS,
  type RegisteredService,
  RegistrationClient,
  type RegistrationOptions,
  type RegistrationStatus,
} from './client.js';
export { type InstanceIdSources, resolveInstanceHost, resolveInstanceId } from './identity.js';
