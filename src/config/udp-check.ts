// The opt-in UDP check's value, one rule for the node's API and state file and the
// sidecar's --udp-check: text sent as UTF-8, or `hex:` then hex digits (a DNS query,
// a game server's ping). Any answer counts.

/** Why a `udp_check` value cannot be used, or undefined when it can. */
export function udpCheckProblem(check: unknown): string | undefined {
  if (typeof check !== 'string' || check.length === 0 || check.length > 1024) {
    return 'must be 1-1024 characters: text, or "hex:" and hex digits';
  }
  if (check.startsWith('hex:') && !/^(?:[0-9A-Fa-f]{2})+$/.test(check.slice(4))) {
    return 'must have an even number of hex digits after "hex:"';
  }
  return undefined;
}

/** The datagram a `udp_check` asks for. */
export function udpCheckPayload(check: string): Buffer {
  return check.startsWith('hex:') ? Buffer.from(check.slice(4), 'hex') : Buffer.from(check, 'utf8');
}
