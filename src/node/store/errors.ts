// The refusals every store words the same way.
import { HarborError } from '../../errors/index.js';

/** A create under a name another service holds (names are unique on a node and in a cluster). */
export function nameTaken(name: string, holderId: string): HarborError {
  return new HarborError('E_SERVICE_EXISTS', `a service named ${name} exists already (id ${holderId})`);
}
