// Session-id resumption for TLS 1.2 clients that take no tickets (JSSE before Java 13,
// clients that turn tickets off): without a server-side cache each of their
// connections is a full handshake, where nginx, HAProxy, hitch and stunnel resume
// them. Node keeps no cache of its own (it turns OpenSSL's off and asks the
// server's 'resumeSession' listener), so this is that cache: bounded in count and
// age, in this process's memory. Sessions are taken from TLS 1.2 connections as
// they are set up, not from Node's 'newSession' event: OpenSSL raises that for
// every TLS 1.3 ticket too, and serialising two sessions per TLS 1.3 handshake that
// will only ever resume by ticket cost about 1.6% of a new connection's CPU.
import type * as tls from 'node:tls';

/** Sessions kept at most: about 200 bytes each with their keys (nginx's 1 MB holds 4,000). */
export const SESSION_CACHE_SIZE = 4096;

interface Entry {
  readonly data: Buffer;
  /** Date.now() past which OpenSSL would refuse it anyway (the session timeout). */
  readonly expiresAt: number;
}

export class SessionCache {
  /** By session id (as latin1 text); in insertion order, which is age order: the oldest first. */
  readonly #entries = new Map<string, Entry>();
  readonly #capacity: number;
  readonly #lifetimeMs: number;
  readonly #now: () => number;

  constructor(options: { capacity?: number; lifetimeSeconds: number; now?: () => number }) {
    this.#capacity = options.capacity ?? SESSION_CACHE_SIZE;
    this.#lifetimeMs = options.lifetimeSeconds * 1000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Offers kept sessions to `server`'s clients that name them. */
  serve(server: tls.Server): void {
    server.on('resumeSession', this.#onResumeSession);
  }

  /** Keeps the session of a connection just set up, when it is a new TLS 1.2 one. */
  keep(socket: tls.TLSSocket): void {
    if (socket.getProtocol() !== 'TLSv1.2' || socket.isSessionReused()) return;
    const der = socket.getSession();
    const id = der === undefined ? undefined : sessionIdOf(der);
    if (der !== undefined && id !== undefined) this.set(id, der);
  }

  /** A session to resume, or undefined when unknown or too old. */
  get(id: Buffer): Buffer | undefined {
    const key = id.toString('latin1');
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.data;
  }

  /** Keeps a session (DER, as OpenSSL serialises it) under its id. */
  set(id: Buffer, data: Buffer): void {
    const now = this.#now();
    // The oldest go first: expired ones, then, when full, the oldest of the rest.
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now && this.#entries.size < this.#capacity) break;
      this.#entries.delete(key);
    }
    this.#entries.set(id.toString('latin1'), { data, expiresAt: now + this.#lifetimeMs });
  }

  clear(): void {
    this.#entries.clear();
  }

  #onResumeSession = (id: Buffer, done: (error: Error | null, data: Buffer | null) => void): void => {
    done(null, this.get(id) ?? null);
  };
}

/**
 * The session id of a serialised SSL_SESSION (OpenSSL's SSL_SESSION_ASN1): SEQUENCE {
 * INTEGER version, INTEGER ssl_version, OCTET STRING cipher, OCTET STRING session_id, ... };
 * undefined when it is not that shape or holds no id (1 to 32 bytes).
 */
export function sessionIdOf(der: Buffer): Buffer | undefined {
  let at = 0;
  /** The length of the element with `tag` at `at`, moving `at` to its contents; -1 if not there. */
  const element = (tag: number): number => {
    if (der[at] !== tag || at + 2 > der.length) return -1;
    let length = der[at + 1] as number;
    at += 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      if (bytes > 3) return -1;
      length = 0;
      for (let i = 0; i < bytes; i++) length = length * 256 + (der[at++] ?? 0);
    }
    return at + length <= der.length ? length : -1;
  };
  if (element(0x30) < 0) return undefined;
  for (const tag of [0x02, 0x02, 0x04]) {
    const length = element(tag);
    if (length < 0) return undefined;
    at += length;
  }
  const length = element(0x04);
  return length >= 1 && length <= 32 ? der.subarray(at, at + length) : undefined;
}
