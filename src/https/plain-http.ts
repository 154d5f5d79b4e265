// A client that speaks plain HTTP to the TLS port (it typed http:// for an
// https:// service) gets a redirect to the same host and port over https,
// instead of a handshake failure it cannot read.
import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { isValidHost } from './head-parser.js';
import { newRequestUuid } from './request-uuid.js';

const MAX_HEAD = 8 * 1024;
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/;

/** The redirect for a plain-HTTP request head (its status and text), or null when `head` is not one. */
export function redirectFor(
  head: string,
  externalPort: number,
  fallbackHost: string,
  requestId: string,
): { status: number; text: string } | null {
  const eol = head.indexOf('\r\n');
  const line = head.slice(0, eol === -1 ? head.length : eol);
  const match = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line);
  if (match === null) return null;
  const method = match[1] as string;
  const target = ORIGIN_FORM.test(match[2] as string) ? (match[2] as string) : '/';
  const hostMatch = /\r\nhost:[ \t]*([^\r\n]*?)[ \t]*\r\n/i.exec(head);
  let host = hostMatch?.[1] ?? '';
  if (!isValidHost(host)) host = fallbackHost;
  // A Host without a port came through the external port: keep the port in the https URL.
  if (!/:\d+$/.test(host)) host = `${host}:${externalPort}`;
  // 308 keeps the method and body for anything but GET and HEAD.
  const status = method === 'GET' || method === 'HEAD' ? 301 : 308;
  const location = `https://${host}${target}`;
  const body = `This port speaks HTTPS: ${location}\n`;
  const text =
    `HTTP/1.1 ${status === 301 ? '301 Moved Permanently' : '308 Permanent Redirect'}\r\nLocation: ${location}\r\n` +
    'Content-Type: text/plain\r\n' +
    `Content-Length: ${body.length}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`;
  return { status, text };
}

/** A redirect sent: the request's head as read, and the answer. */
export interface PlainHttpRedirect {
  readonly head: string;
  readonly status: number;
  readonly response: string;
  readonly requestId: string;
  /** performance.now() when the first bytes came. */
  readonly startedAt: number;
}

/**
 * Reads the plain request head from `socket` (`first` already read), answers with a redirect
 * (told to `onRedirect`, for the access log), closes.
 */
export function answerPlainHttp(
  socket: net.Socket,
  first: Buffer,
  externalPort: number,
  timeoutMs: number,
  onRedirect: (redirect: PlainHttpRedirect) => void,
): void {
  const startedAt = performance.now();
  let head = first.toString('latin1');
  const fallbackHost = socket.localAddress?.includes(':')
    ? `[${socket.localAddress}]`
    : (socket.localAddress ?? 'localhost');
  const finish = (): void => {
    const requestId = newRequestUuid();
    const redirect = redirectFor(head, externalPort, fallbackHost, requestId);
    if (redirect === null) {
      socket.destroy();
      return;
    }
    socket.end(redirect.text, 'latin1');
    onRedirect({ head, status: redirect.status, response: redirect.text, requestId, startedAt });
  };
  if (head.includes('\r\n\r\n')) {
    finish();
    return;
  }
  socket.setTimeout(timeoutMs, () => socket.destroy());
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    if (head.includes('\r\n\r\n') || head.length > MAX_HEAD) {
      socket.off('data', onData);
      finish();
    }
  };
  socket.on('data', onData);
}
