// The one error type of harbor-sidecar and the catalogue of its codes.
// Every failure the program reports carries a stable code from CATALOGUE;
// logic branches on `code`, never on message text. docs/errors.md lists the
// same codes and a test keeps the two in step.

/** How a code ends a command: a configuration problem (78), a usage problem (2), a runtime failure (1); a warning does not end it (0). */
export type ErrorKind = 'config' | 'usage' | 'runtime' | 'warning';

export interface CodeEntry {
  readonly kind: ErrorKind;
  /** What the code means, for docs/errors.md. */
  readonly meaning: string;
}

/** Every error code, listed once. Never reuse or renumber a code; add new ones at the end of their group. */
export const CATALOGUE = {
  // Usage: the command line itself is wrong.
  E_USAGE: {
    kind: 'usage',
    meaning: 'An unknown command or flag, a missing flag value, or a flag value of the wrong form.',
  },

  // Configuration read from flags and the environment.
  E_MANIFEST: {
    kind: 'config',
    meaning:
      'A manifest.yml that cannot be read or used: YAML that does not parse, a services: block of an unknown form, an unknown symbol (only the app name may be expanded), an app --app does not name, two services whose names give the app one STACKATO_HARBOR_<NAME>.',
  },
  E_ENV_JSON: { kind: 'config', meaning: 'An environment variable that must hold JSON does not parse.' },
  E_ENV_SHAPE: { kind: 'config', meaning: 'An environment variable holds JSON of the wrong shape.' },
  E_SERVICE_FIELD: {
    kind: 'config',
    meaning: 'A Harbor service has a missing or invalid field (a port outside 1-65535, say).',
  },
  E_VARIABLE_CLASH: {
    kind: 'config',
    meaning: 'Two Harbor services map to the same STACKATO_HARBOR_<NAME> variable.',
  },
  E_SETTING: { kind: 'config', meaning: 'A setting (flag or environment variable) has an invalid value.' },
  E_BACKEND: {
    kind: 'config',
    meaning: 'The backend address is missing or not of the form host:port or a unix socket path.',
  },
  E_NO_SERVICE: { kind: 'config', meaning: 'No Harbor service was found where one is required.' },

  // Certificates.
  E_CERT_READ: { kind: 'config', meaning: 'A certificate or key file cannot be read.' },
  E_CERT_PARSE: {
    kind: 'config',
    meaning: 'A certificate file does not hold a PEM certificate that parses.',
  },
  E_KEY_PARSE: {
    kind: 'config',
    meaning:
      'A key file does not hold a PEM private key that parses (or its passphrase is wrong or missing).',
  },
  E_KEY_MISMATCH: { kind: 'config', meaning: 'The private key does not belong to the certificate.' },
  E_CHAIN_ORDER: {
    kind: 'config',
    meaning: 'The certificates in a .crt file are not in order, leaf first, each signed by the next.',
  },
  E_CERT_EXPIRED: { kind: 'config', meaning: 'The certificate has expired.' },
  E_CERT_NOT_YET_VALID: { kind: 'config', meaning: 'The certificate is not valid yet.' },
  E_NO_PAIR: { kind: 'config', meaning: 'No certificate pair was found for an HTTPS service.' },
  E_CA_READ: { kind: 'config', meaning: 'A client CA bundle cannot be read or parsed.' },
  E_CERT_WRITE: { kind: 'runtime', meaning: 'A generated certificate or key cannot be written.' },
  E_CERT_EXISTS: {
    kind: 'runtime',
    meaning:
      '`certs generate` found a pair of that name in the folder and did not replace it (give --force to).',
  },
  E_CERT_UNUSABLE: {
    kind: 'config',
    meaning:
      'OpenSSL refused the pair for TLS although it parses (a key too small for its security level, say).',
  },

  // Serving.
  E_PORT_IN_USE: { kind: 'runtime', meaning: 'A port the program must listen on is already taken.' },
  E_LISTEN: {
    kind: 'runtime',
    meaning: 'A listener could not be started for another reason (permission, bad address).',
  },
  E_RELOAD: {
    kind: 'runtime',
    meaning: 'A certificate reload was refused; the previous pair keeps serving.',
  },
  E_CHILD: { kind: 'runtime', meaning: 'The command given to exec could not be started.' },
  E_ADMIN_UNREACHABLE: {
    kind: 'runtime',
    meaning: 'harbor-sidecar status could not reach the admin endpoint, or could not read its answer.',
  },

  // The Harbor node (harbor-node) and the sidecar's registration with it.
  E_PORT_RANGE_EXHAUSTED: {
    kind: 'runtime',
    meaning:
      "No port of the node's range is free: all held by services or bound by other processes (API: 503).",
  },
  E_PORT_TAKEN: {
    kind: 'runtime',
    meaning:
      "A service's port is held by another process; the node logs it and retries while the rest serve.",
  },
  E_STATE_CORRUPT: {
    kind: 'config',
    meaning:
      "The node's state file cannot be read, does not parse or has the wrong shape; it is left untouched.",
  },
  E_STATE_WRITE: {
    kind: 'runtime',
    meaning: "The node's state file cannot be written; the change is refused.",
  },
  E_STATE_FOLDER: {
    kind: 'config',
    meaning:
      "The state file's folder cannot be created or is not writable: the node does not start rather than refuse every change.",
  },
  E_DATAPLANE: {
    kind: 'config',
    meaning:
      'The nftables data plane (--dataplane nftables) cannot run here: no CAP_NET_ADMIN, no nft or conntrack program, a rule set nft refuses, or IP forwarding off while instances are remote.',
  },
  E_API_REQUEST: {
    kind: 'runtime',
    meaning: 'A node API request is malformed: bad JSON, an unknown field, a value of the wrong type (400).',
  },
  E_API_AUTH: {
    kind: 'runtime',
    meaning: 'A node API request lacks the bearer token or carries a wrong one (401).',
  },
  E_API_NOT_FOUND: {
    kind: 'runtime',
    meaning: 'A node API request names an unknown path, service or instance (404).',
  },
  E_STORE_UNAVAILABLE: {
    kind: 'runtime',
    meaning:
      "The node's shared store (Redis) cannot be reached or did not take a write; the change is refused with 503 and Retry-After, and forwarding goes on on the last state known.",
  },
  E_STORE_CONFLICT: {
    kind: 'runtime',
    meaning:
      'A change the store lost (a Redis failover, an emptied Redis) could not be put back: its port or id now belongs to another service, which keeps it.',
  },
  E_NODE_UNREACHABLE: {
    kind: 'runtime',
    meaning:
      'The `harbor` command reached none of the Harbor nodes it was given (--node-url / HARBOR_NODE_URL).',
  },
  E_SERVICE_EXISTS: {
    kind: 'runtime',
    meaning:
      'A service of that name exists already on the node or its cluster (409, naming it); names are unique, so a second create never makes a twin.',
  },
  E_STATE_IN_USE: {
    kind: 'config',
    meaning:
      'Another harbor-node holds the state file (its lock beside it is refreshed while that node runs): one node per state file.',
  },

  // Warnings: reported, never fatal.
  W_SOURCES_DISAGREE: {
    kind: 'warning',
    meaning: 'Two service variables describe one service differently; STACKATO_SERVICES wins.',
  },
  W_HALF_PAIR: {
    kind: 'warning',
    meaning: 'Only one file of a per-service pair exists; the harbor.crt/harbor.key fallback is used.',
  },
  W_CERT_EXPIRING: { kind: 'warning', meaning: 'The certificate expires within the warning window.' },
  W_SAN_MISMATCH: {
    kind: 'warning',
    meaning: 'The certificate names neither the external nor the internal hostname.',
  },
  W_NO_SAN: {
    kind: 'warning',
    meaning: 'The certificate names no host in subjectAltName, only in its subject; browsers refuse it.',
  },
  W_SELF_SIGNED: { kind: 'warning', meaning: 'The certificate is self-signed; browsers will not trust it.' },
  W_WEAK_KEY: {
    kind: 'warning',
    meaning:
      "A certificate's key is RSA under 2048 bits, DSA, or EC on a curve other than P-256, P-384 or P-521: curl and Python at OpenSSL's security level 2, and browsers, refuse it.",
  },
  W_WEAK_SIGNATURE: {
    kind: 'warning',
    meaning: 'A certificate (not self-signed) is signed with SHA-1 or MD5: browsers and OpenSSL refuse it.',
  },
  W_KEY_READABLE: {
    kind: 'warning',
    meaning: 'The private key file can be read by its group or by anyone on the machine.',
  },
  W_PORTS_EPHEMERAL: {
    kind: 'warning',
    meaning:
      "Ports of harbor-node's range lie in the kernel's ephemeral range unreserved: outgoing connections can take them.",
  },
  W_DATAPLANE: {
    kind: 'warning',
    meaning:
      'The nftables data plane could not apply a change, found its table gone, or has little conntrack headroom: the userspace listeners serve meanwhile.',
  },
  W_ADMIN_UNAVAILABLE: {
    kind: 'warning',
    meaning:
      'The admin endpoint could not listen (address taken, bad socket path); serving goes on without it.',
  },
  W_PROTOCOL: {
    kind: 'warning',
    meaning: 'A service name combines rules in a way that drops one (a udp- name ending in https).',
  },
  W_CERT_EXPIRES_SOONER: {
    kind: 'warning',
    meaning: 'A reloaded certificate expires sooner than the one it replaced (it is loaded all the same).',
  },
  W_NODE_UNREACHABLE: {
    kind: 'warning',
    meaning:
      'The sidecar cannot register with the Harbor node (down, refusing, or answering an error); it retries with backoff and keeps serving.',
  },
  W_MEMBER_CLASH: {
    kind: 'warning',
    meaning:
      "Two harbor-nodes of a cluster publish under one member name (--member): each overwrites the other's view of ports and instances.",
  },
  W_API_CLEAR: {
    kind: 'warning',
    meaning:
      "harbor-node's API serves plain HTTP off loopback: its token crosses the network in clear (--api-cert / --api-key, or a TLS terminator in front).",
  },
} as const satisfies Record<string, CodeEntry>;

export type ErrorCode = keyof typeof CATALOGUE;

/** Process exit status for each kind of error. Config errors use EX_CONFIG from sysexits.h. */
export const EXIT_STATUS: Readonly<Record<ErrorKind, number>> = {
  config: 78,
  usage: 2,
  runtime: 1,
  warning: 0,
};

export class HarborError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HarborError';
    this.code = code;
  }

  get kind(): ErrorKind {
    return CATALOGUE[this.code].kind;
  }

  get exitStatus(): number {
    return EXIT_STATUS[this.kind];
  }
}

export function isHarborError(value: unknown, code?: ErrorCode): value is HarborError {
  return value instanceof HarborError && (code === undefined || value.code === code);
}

/** A problem found by a validating function that reports every problem at once. */
export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
}

export function isWarning(problem: Problem): boolean {
  return CATALOGUE[problem.code].kind === 'warning';
}

/** The exit status for a list of problems: the first error's, or 0 when there are only warnings. */
export function exitStatusOf(problems: readonly Problem[]): number {
  const error = problems.find((p) => !isWarning(p));
  return error ? EXIT_STATUS[CATALOGUE[error.code].kind] : 0;
}
