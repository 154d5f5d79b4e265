// PROXY protocol headers (v1 text, v2 binary) that tell a target the real
// client address of a relayed TCP connection.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import { isIPv4, isIPv6 } from 'node:net';
import type { ProxyProtocolVersion } from './types.js';

export interface ConnectionEnds {
  readonly sourceAddress: string | undefined;
  readonly sourcePort: number | undefined;
  readonly destinationAddress: string | undefined;
  readonly destinationPort: number | undefined;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const MAPPED_PREFIX = '::ffff:';

/** A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; the header carries them as plain IPv4. */
function unmap(address: string): string {
  if (address.startsWith(MAPPED_PREFIX) && isIPv4(address.slice(MAPPED_PREFIX.length))) {
    return address.slice(MAPPED_PREFIX.length);
  }
  return address;
}

type Family = 'TCP4' | 'TCP6' | 'UNKNOWN';

function familyOf(ends: ConnectionEnds): { family: Family; src: string; dst: string } {
  const src = unmap(ends.sourceAddress ?? '');
  const dst = unmap(ends.destinationAddress ?? '');
  if (ends.sourcePort === undefined || ends.destinationPort === undefined) {
    return { family: 'UNKNOWN', src, dst };
  }
  if (isIPv4(src) && isIPv4(dst)) return { family: 'TCP4', src, dst };
  if (isIPv6(src) && isIPv6(dst)) return { family: 'TCP6', src, dst };
  // One side IPv4, the other IPv6: map the IPv4 one so both fit TCP6.
  if ((isIPv4(src) || isIPv6(src)) && (isIPv4(dst) || isIPv6(dst))) {
    return {
      family: 'TCP6',
      src: isIPv4(src) ? MAPPED_PREFIX + src : src,
      dst: isIPv4(dst) ? MAPPED_PREFIX + dst : dst,
    };
  }
  return { family: 'UNKNOWN', src, dst };
}

export function proxyHeaderV1(ends: ConnectionEnds): Buffer {
  const { family, src, dst } = familyOf(ends);
  if (family === 'UNKNOWN') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(
    `PROXY ${family} ${src} ${dst} ${ends.sourcePort} ${ends.destinationPort}\r\n`,
    'latin1',
  );
}

function ipv6Bytes(address: string, target: Buffer, offset: number): void {
  // Expand '::' and an embedded dotted IPv4 tail into eight 16-bit groups.
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const parts = dotted[1].split('.').map(Number);
    const hi = (((parts[0] ?? 0) << 8) | (parts[1] ?? 0)).toString(16);
    const lo = (((parts[2] ?? 0) << 8) | (parts[3] ?? 0)).toString(16);
    text = `${text.slice(0, dotted.index)}${hi}:${lo}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups];
  for (let i = 0; i < 8; i++) target.writeUInt16BE(Number.parseInt(groups[i] ?? '0', 16), offset + i * 2);
}

export function proxyHeaderV2(ends: ConnectionEnds): Buffer {
  const { family, src, dst } = familyOf(ends);
  if (family === 'UNKNOWN') {
    // LOCAL command, AF_UNSPEC: the target uses the connection's own addresses.
    const header = Buffer.alloc(16);
    V2_SIGNATURE.copy(header, 0);
    header[12] = 0x20;
    header[13] = 0x00;
    header.writeUInt16BE(0, 14);
    return header;
  }
  const v4 = family === 'TCP4';
  const length = v4 ? 12 : 36;
  const header = Buffer.alloc(16 + length);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY command
  header[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  header.writeUInt16BE(length, 14);
  if (v4) {
    src.split('.').forEach((part, i) => {
      header[16 + i] = Number(part);
    });
    dst.split('.').forEach((part, i) => {
      header[20 + i] = Number(part);
    });
    header.writeUInt16BE(ends.sourcePort ?? 0, 24);
    header.writeUInt16BE(ends.destinationPort ?? 0, 26);
  } else {
    ipv6Bytes(src, header, 16);
    ipv6Bytes(dst, header, 32);
    header.writeUInt16BE(ends.sourcePort ?? 0, 48);
    header.writeUInt16BE(ends.destinationPort ?? 0, 50);
  }
  return header;
}

export function proxyHeader(version: ProxyProtocolVersion, ends: ConnectionEnds): Buffer {
  return version === 1 ? proxyHeaderV1(ends) : proxyHeaderV2(ends);
}
