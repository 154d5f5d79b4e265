// Reading the platform's environment: which Harbor services this container
// has (STACKATO_/HELION_/VCAP_SERVICES), what each carries (from its name),
// the STACKATO_HARBOR* variables, and every harbor-sidecar setting (flags and
// environment through one pipeline). Pure functions: the CLI passes env in.
export { parseJsonVariable } from './json.js';
export { protocolLabel, ruleForName } from './protocol.js';
export { parsePort, readServices, SERVICE_VARIABLES } from './services.js';
export {
  type Environment,
  type FlagValues,
  type ForwardTarget,
  type Machine,
  resolveSidecarSettings,
  type SettingDefinition,
  SIDECAR_SETTINGS,
  type SidecarSettings,
} from './settings.js';
export { type Address, formatAddress, type HarborService, type Transport } from './types.js';
export { parseAddress, parseDuration } from './values.js';
export {
  formatVariables,
  mangleName,
  portVariables,
  type VariableFormat,
  variableForService,
} from './variables.js';
