// What an instance's host may be: an IP literal (IPv6 optionally in brackets)
// or a DNS hostname (RFC 1123 labels). The API used to take `---` and `::::`
// (issue 9, item 12): a host that can never be dialled only fails later, at a
// client's cost.
import { isIP } from 'node:net';

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isInstanceHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return bare === host || isIP(bare) === 6;
  if (host.length > 253 || host.endsWith('.')) return false;
  const labels = host.split('.');
  // An all-numeric last label would be an IPv4 address that isIP refused (999.1.1.1).
  if (/^\d+$/.test(labels.at(-1) ?? '')) return false;
  return labels.every((label) => LABEL.test(label));
}
