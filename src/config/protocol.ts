// Which transports a Harbor service carries and whether the sidecar terminates
// TLS for it, decided from the service name alone (seed: "Setting the Port
// Protocols" and "HTTPS Container Proxy"). The full rule is in docs/protocols.md.
import type { Transport } from './types.js';

export interface NameRule {
  readonly transport: Transport;
  readonly https: boolean;
  /** Set when the name asks for something its transport cannot carry (`udp-...-https`). */
  readonly dropped?: 'https';
}

export function ruleForName(name: string): NameRule {
  const lower = name.toLowerCase();
  const transport: Transport = lower.startsWith('udp')
    ? 'udp'
    : lower.startsWith('multi') || lower.startsWith('both')
      ? 'both'
      : 'tcp';
  const wantsHttps = lower.endsWith('https');
  if (wantsHttps && transport === 'udp') return { transport, https: false, dropped: 'https' };
  return { transport, https: wantsHttps };
}

/** A short label for tables and logs: tcp, udp, tcp+udp, https, https+udp. */
export function protocolLabel(rule: { transport: Transport; https: boolean }): string {
  const tcp = rule.https ? 'https' : 'tcp';
  if (rule.transport === 'udp') return 'udp';
  return rule.transport === 'both' ? `${tcp}+udp` : tcp;
}
