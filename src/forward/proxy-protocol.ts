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

/** A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: as plain IPv4 (the header's form, and what IPv4 rules match). */
export function unmap(address: string): string {
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

/** What a PROXY header says of the client: its address and port, or nothing (LOCAL, UNKNOWN). */
export interface ProxiedSource {
  readonly address: string;
  readonly port: number;
}

export type ParsedProxyHeader =
  | { readonly kind: 'header'; readonly length: number; readonly source: ProxiedSource | undefined }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly reason: string };

const V1_MAX = 107;

/** Whether `buf` could be the start of a PROXY header (v1 "PROXY " or the v2 signature). */
export function startsLikeProxyHeader(buf: Buffer): boolean {
  const n = Math.min(buf.length, 12);
  if (n === 0) return false;
  if (buf[0] === 0x50)
    return buf.subarray(0, Math.min(n, 6)).equals(Buffer.from('PROXY ').subarray(0, Math.min(n, 6)));
  return buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n));
}

/** Reads a PROXY header (v1 or v2) at the start of `buf`: its length and the source it names. */
export function parseProxyHeader(buf: Buffer): ParsedProxyHeader {
  if (!startsLikeProxyHeader(buf)) return { kind: 'none' };
  if (buf[0] === 0x50) {
    const end = buf.indexOf('\r\n', 0, 'latin1');
    if (end === -1)
      return buf.length > V1_MAX ? { kind: 'invalid', reason: 'v1 line too long' } : { kind: 'incomplete' };
    const fields = buf.toString('latin1', 0, end).split(' ');
    if (fields[1] === 'UNKNOWN') return { kind: 'header', length: end + 2, source: undefined };
    const [, family, src, , sport] = fields;
    const port = Number(sport);
    const valid =
      fields.length === 6 &&
      ((family === 'TCP4' && isIPv4(src ?? '')) || (family === 'TCP6' && isIPv6(src ?? ''))) &&
      Number.isInteger(port) &&
      port >= 0 &&
      port <= 65535;
    if (!valid) return { kind: 'invalid', reason: 'malformed v1 line' };
    return { kind: 'header', length: end + 2, source: { address: src!, port } };
  }
  if (buf.length < 16) return { kind: 'incomplete' };
  const versionCommand = buf[12]!;
  const family = buf[13]!;
  const length = 16 + buf.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: 'v2 version is not 2' };
  if (buf.length < length) return { kind: 'incomplete' };
  const command = versionCommand & 0x0f;
  if (command === 0x0) return { kind: 'header', length, source: undefined }; // LOCAL: a health check of the proxy itself
  if (command !== 0x1) return { kind: 'invalid', reason: 'v2 command unknown' };
  if (family === 0x11 && length >= 16 + 12) {
    const address = [...buf.subarray(16, 20)].join('.');
    return { kind: 'header', length, source: { address, port: buf.readUInt16BE(24) } };
  }
  if (family === 0x21 && length >= 16 + 36) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(16 + i * 2).toString(16));
    const address = unmap(compressIPv6(groups));
    return { kind: 'header', length, source: { address, port: buf.readUInt16BE(48) } };
  }
  if (family === 0x00) return { kind: 'header', length, source: undefined };
  return { kind: 'invalid', reason: 'v2 address family not TCP over IPv4 or IPv6' };
}

/** Eight groups as the shortest IPv6 text (the longest run of zero groups as '::'). */
function compressIPv6(groups: readonly string[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  const head = groups.slice(0, bestStart).join(':');
  const tail = groups.slice(bestStart + bestLength).join(':');
  const ipv4Mapped = head === '' && tail.startsWith('ffff:') && bestLength === 5;
  if (ipv4Mapped) {
    const [, hi = '0', lo = '0'] = tail.split(':');
    const a = Number.parseInt(hi, 16);
    const b = Number.parseInt(lo, 16);
    return `::ffff:${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
  }
  return `${head}::${tail}`;
}
