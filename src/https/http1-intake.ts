// What an HTTP/1 client connection (http1.ts) has read and not handled yet, and
// the request heads read from it: the head's end found (CRLF only), its size and
// its time limited, the head parsed strictly. What follows a head stays pending:
// body bytes, or the next request, pipelined.
import type { Watch } from '../sockets/inactivity.js';
import type { Limits } from './core.js';
import type { Head } from './head.js';
import { findHeadEnd, oversizeStatus, parseRequestHead, statusForHeadError } from './head-parser.js';

/** read(): the head is not whole yet. */
export const HEAD_PARTIAL = -1;
/** read(): a head was read; the bytes after it are pending. */
export const HEAD_READ = 0;

export class RequestIntake {
  readonly #limits: Limits;
  /** The connection's inactivity timeout: the header timeout while a head is due. */
  readonly #watch: Watch;
  #pending: Buffer | null = null;
  /** When the head being read began (Date.now()). */
  #headStartedAt = 0;
  /** The header timeout differs from the idle one: the watch is switched between them. */
  readonly #switches: boolean;
  /** The watch runs the header timeout, not the idle one. */
  #headerTimer: boolean;
  /** Why read() last refused a head (a head-parser reason), when it has one. */
  refusal: string | undefined;

  /** The first request's head is due within the header timeout from the handshake. */
  constructor(limits: Limits, watch: Watch) {
    this.#limits = limits;
    this.#watch = watch;
    // A client that connects and sends nothing is a half-open one (issue 9, item 20).
    this.#switches = limits.headerTimeoutMs !== limits.idleTimeoutMs;
    this.#headerTimer = this.#switches;
    watch.set(limits.headerTimeoutMs);
  }

  /** The bytes read and not handled yet. */
  get pending(): Buffer | null {
    return this.#pending;
  }

  /** Bytes read from the client, after those pending. */
  add(chunk: Buffer): void {
    this.#pending = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
  }

  /** The pending bytes, taken (none stay). */
  take(): Buffer | null {
    const pending = this.#pending;
    this.#pending = null;
    return pending;
  }

  /** Bytes read past a request body: the next request's, pending again. */
  keep(rest: Buffer): void {
    this.#pending = rest;
  }

  /**
   * Reads a request head from the pending bytes (there must be some) into `head`: HEAD_READ,
   * HEAD_PARTIAL, or the status that refuses it (400, 408, 431...; the reason in `refusal`).
   * `first`: no byte of this head had come before (its header timeout starts now).
   */
  read(head: Head, first: boolean): number {
    const buf = this.#pending;
    const limits = this.#limits;
    this.refusal = undefined;
    if (buf === null) return HEAD_PARTIAL;
    const end = findHeadEnd(buf, 0, buf.length);
    if (end === -2) {
      this.refusal = 'bad-line-ending';
      return 400;
    }
    if (end === -1) {
      if (buf.length > limits.maxHeaderBytes) return oversizeStatus(buf.indexOf(10), limits.maxHeaderBytes);
      if (first) {
        this.#headStartedAt = Date.now();
        if (this.#switches) {
          this.#headerTimer = true;
          this.#watch.set(limits.headerTimeoutMs);
        }
      } else if (Date.now() - this.#headStartedAt > limits.headerTimeoutMs) return 408;
      return HEAD_PARTIAL;
    }
    if (end > limits.maxHeaderBytes) return oversizeStatus(buf.indexOf(10), limits.maxHeaderBytes);
    const error = parseRequestHead(head, buf, 0, end);
    if (error !== null) {
      this.refusal = error;
      return statusForHeadError(error);
    }
    this.#pending = end < buf.length ? buf.subarray(end) : null;
    // The head is taken: the idle timeout again.
    if (this.#headerTimer) {
      this.#headerTimer = false;
      this.#watch.set(limits.idleTimeoutMs);
    }
    return HEAD_READ;
  }
}
