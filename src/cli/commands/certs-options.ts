// The flags of `certs generate`, apart from the command so that parsing the
// command line does not load the certificate code.
import type { OptionSpec } from '../args.js';

export const CERTS_OPTIONS: OptionSpec = {
  name: { type: 'string' },
  host: { type: 'string', multiple: true },
  out: { type: 'string' },
  days: { type: 'string' },
  type: { type: 'string' },
  force: { type: 'boolean' },
};
