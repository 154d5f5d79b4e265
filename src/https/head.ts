// One parsed HTTP/1.x message head, as positions in its latin1 text, and the
// reasons a head is refused. The parser (head-parser.ts) fills it; the proxy
// reads what it acts on from its fields and copies the rest of the lines as
// they were sent.

/** Why a head was refused; also the debug log reason. */
export type HeadError =
  | 'bad-line-ending'
  | 'bad-request-line'
  | 'bad-method'
  | 'bad-target'
  | 'bad-version'
  | 'obs-fold'
  | 'bad-header-name'
  | 'bad-header-value'
  | 'duplicate-content-length'
  | 'bad-content-length'
  | 'content-length-with-transfer-encoding'
  | 'unsupported-transfer-encoding'
  | 'transfer-encoding-in-http-1.0'
  | 'missing-host'
  | 'duplicate-host'
  | 'bad-host'
  | 'bad-status-line'
  | 'too-many-headers';

/** Most header lines in one head; more is answered 431. */
export const MAX_FIELDS = 200;

/**
 * The fields of one head, as positions in its text: nothing is sliced out of
 * it unless asked for. Reused from message to message: `reset()` clears it.
 */
export class Head {
  /** The head as a latin1 string, from the first line to the blank line (excluded). */
  text = '';
  /** Request: method and target; response: status and reason. */
  method = '';
  target = '';
  status = 0;
  reason = '';
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor = 1;
  /** End of the start line in `text`. */
  startLineEnd = 0;
  /** How many header lines. */
  count = 0;
  /**
   * Per header line, positions in `text`: line start (= name start), colon,
   * trimmed value, line end; and its kind. Plain arrays written by index (they
   * only grow to the most lines seen): nothing to allocate per connection.
   */
  readonly lineStart: number[] = [];
  readonly colon: number[] = [];
  readonly valueStart: number[] = [];
  readonly valueEnd: number[] = [];
  readonly lineEnd: number[] = [];
  readonly kind: number[] = [];
  /** -1 when there is no Content-Length. */
  contentLength = -1;
  /**
   * A response's Content-Length came as a list of one length (`2, 2`: a layer of the backend
   * joined two headers; RFC 9110 section 8.6 lets a recipient take it as that length, and nginx
   * does): its line is sent on as `Content-Length: 2`, since strict clients (Node's, nghttp2's)
   * refuse the list. A request's list is a 400.
   */
  contentLengthListed = false;
  chunked = false;
  hasTransferEncoding = false;
  hasTrailer = false;
  host: string | undefined;
  /**
   * The request's target was in absolute form (`GET http://host/path`): `host` is its authority,
   * not the Host header's, and `target` its origin form (RFC 9112 section 3.2.2).
   */
  hostFromTarget = false;
  /** Lower-cased value of the Connection header(s), '' when none. */
  connection = '';
  upgrade: string | undefined;
  expectContinue = false;

  reset(): void {
    this.text = '';
    this.method = '';
    this.target = '';
    this.status = 0;
    this.reason = '';
    this.minor = 1;
    this.startLineEnd = 0;
    this.count = 0;
    this.contentLength = -1;
    this.contentLengthListed = false;
    this.chunked = false;
    this.hasTransferEncoding = false;
    this.hasTrailer = false;
    this.host = undefined;
    this.hostFromTarget = false;
    this.connection = '';
    this.upgrade = undefined;
    this.expectContinue = false;
  }

  /** The name of header `i` as sent. */
  name(i: number): string {
    return this.text.slice(this.lineStart[i], this.colon[i]);
  }

  /**
   * The value of the first header named `lower` (lower-case ASCII), or undefined. Names are
   * compared in place, ASCII letters folded: nothing is allocated for the headers that differ.
   */
  header(lower: string): string | undefined {
    const s = this.text;
    for (let i = 0; i < this.count; i++) {
      const start = this.lineStart[i] as number;
      if ((this.colon[i] as number) - start !== lower.length) continue;
      let j = 0;
      while (j < lower.length) {
        const c = s.charCodeAt(start + j);
        if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(j)) break;
        j++;
      }
      if (j === lower.length) return this.value(i);
    }
    return undefined;
  }

  /** The trimmed value of header `i`. */
  value(i: number): string {
    return this.text.slice(this.valueStart[i], this.valueEnd[i]);
  }

  /** Header line `i` as sent, without its CRLF. */
  line(i: number): string {
    return this.text.slice(this.lineStart[i], this.lineEnd[i]);
  }

  /** True when the Connection header lists `token` (lower-case). */
  connectionHas(token: string): boolean {
    if (this.connection === '') return false;
    if (this.connection === token) return true;
    if (!this.connection.includes(token)) return false;
    for (const part of this.connection.split(',')) if (part.trim() === token) return true;
    return false;
  }
}
