// One HTTP/1 request and its response as the client connection sees them
// (http1.ts): how its body is framed, what was sent, and the response head
// held back so that it goes out with the first body bytes in one write. Made
// whole for each request, never reset field by field.
import type { BodySpool } from './body-spool.js';
import type { Head } from './head.js';

export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;

/** One request and its response, as the client side sees them. */
export class Request {
  readonly http10: boolean;
  readonly keepAlive10: boolean;
  /** The client said it closes after this answer (Connection: close; HTTP/1.0 without keep-alive). */
  readonly clientCloses: boolean;
  readonly upgrade: boolean;
  readonly bodyMode: number;
  remaining: number;
  done: boolean;
  bodyBytes = 0;
  /** The proxy answered Expect: 100-continue itself (the backend's own 100 is then dropped). */
  ownContinue = false;
  /** A byte of the response (head included) was written to the client. */
  started = false;
  status = 0;
  /** A chunked body held whole to be sent with its length (held-body.ts); null when relayed as it comes. */
  held: BodySpool | null = null;
  /** The head for the backend without its last CRLF, while the body is held. */
  heldHead = '';
  /** Sent to the backend as X-Request-Id, and in the proxy's own answer to this request. */
  id = '';
  /** performance.now() when the head was taken, and when the backend's response head came (0: not yet). */
  startedAt = 0;
  backendAt = 0;
  /** For the access log (set only when it is on): byte marks. */
  inAt = 0;
  outAt = 0;
  /** A gRPC-Web call carried to an h2c backend (http1-h2c.ts). */
  toH2c = false;
  /** The call's gRPC status (grpc-status) from an h2c backend, for the access log; -1: none. */
  grpcStatus = -1;
  /** Of the bytes written for this request, the response heads' (1xx, 101 and final). */
  headOut = 0;
  /** A response head not yet written: it goes out with the first body bytes, in one write. */
  #pendingHead: string | null = null;
  #pendingRaw: Buffer | null = null;
  #pendingRawStart = 0;
  #pendingRawEnd = 0;

  /** `closeAfter`: the proxy closes the connection after this answer, whatever the client said. */
  constructor(head: Head, closeAfter: boolean) {
    this.http10 = head.minor === 0;
    this.clientCloses = this.http10 ? !head.connectionHas('keep-alive') : head.connectionHas('close');
    this.keepAlive10 = this.http10 && !closeAfter && !this.clientCloses;
    this.upgrade = head.upgrade !== undefined && head.connectionHas('upgrade');
    this.bodyMode = head.chunked ? BODY_CHUNKED : head.contentLength > 0 ? BODY_LENGTH : BODY_NONE;
    this.remaining = head.contentLength;
    this.done = this.bodyMode === BODY_NONE;
  }

  /** Holds the response head: `text` when it was rewritten, else `raw[start, end)` as received. */
  holdHead(text: string | null, raw: Buffer, start: number, end: number): void {
    this.started = true;
    this.headOut += text === null ? end - start : text.length;
    if (text === null) {
      this.#pendingRaw = raw;
      this.#pendingRawStart = start;
      this.#pendingRawEnd = end;
    } else {
      this.#pendingHead = text;
    }
  }

  /** The head still held, to write now (undefined when none). */
  takeHead(): string | Buffer | undefined {
    const raw = this.#pendingRaw;
    if (raw !== null) {
      this.#pendingRaw = null;
      return raw.subarray(this.#pendingRawStart, this.#pendingRawEnd);
    }
    const text = this.#pendingHead;
    this.#pendingHead = null;
    return text ?? undefined;
  }

  /** Forgets a head not written yet; true when there was one (the client has seen nothing). */
  dropHead(): boolean {
    const held = this.#pendingHead !== null || this.#pendingRaw !== null;
    this.#pendingHead = null;
    this.#pendingRaw = null;
    return held;
  }

  /**
   * The held head and the first body bytes as one buffer (one write, one TLS record), when
   * they can be: the head as received, followed in the same read by the body; or a rewritten
   * head and a small body. Undefined otherwise (write the head first).
   */
  withHead(buf: Buffer, start: number, end: number): Buffer | undefined {
    if (this.#pendingRaw === buf && this.#pendingRawEnd === start) {
      this.#pendingRaw = null;
      const from = this.#pendingRawStart;
      return from === 0 && end === buf.length ? buf : buf.subarray(from, end);
    }
    const head = this.#pendingHead;
    if (head !== null && end - start <= 16384) {
      this.#pendingHead = null;
      const out = Buffer.allocUnsafe(head.length + end - start);
      out.write(head, 0, 'latin1');
      buf.copy(out, head.length, start, end);
      return out;
    }
    return undefined;
  }
}
