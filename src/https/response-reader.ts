// Reads one response from a backend connection: its head (and any 1xx heads
// before it), then its body framing (Content-Length, chunked, until close, or
// none for HEAD/204/304), handing bytes to a sink as they arrive. One reader
// per client connection or stream, reset for each exchange.
import { ChunkedParser, type ChunkSink } from './chunked.js';
import { Head } from './head.js';
import { findHeadEnd, parseResponseHead, withCrlfLineEnds } from './head-parser.js';

export interface ResponseSink extends ChunkSink {
  /** A 1xx head other than 101 (100 Continue, 103 Early Hints); the final head follows. */
  onInformational(head: Head, raw: Buffer, start: number, end: number): void;
  /** The final head; the body follows. `raw[start, end)` is the head as received. */
  onResponseHead(head: Head, raw: Buffer, start: number, end: number): void;
  /** Body bytes as received (undecoded unless decoding). */
  onResponseBody(buf: Buffer, start: number, end: number): void;
  /** The whole response has been read; `rest` is what the backend sent beyond it (should be empty). */
  onResponseEnd(rest: number): void;
  /** A 101 Switching Protocols head; `buf[rest...]` is already the upgraded protocol. */
  onSwitchingProtocols(head: Head, raw: Buffer, start: number, end: number, rest: Buffer): void;
  /** The response is malformed (502 if nothing was relayed yet). */
  onResponseError(reason: string): void;
}

const R_HEAD = 0;
const R_LENGTH = 1;
const R_CHUNKED = 2;
const R_CLOSE = 3;
const R_DONE = 4;

export class ResponseReader {
  readonly head = new Head();
  readonly #chunked: ChunkedParser;
  readonly #maxHeadBytes: number;
  #state = R_DONE;
  #pending: Buffer | null = null;
  /** The head being read has a line that ends in LF alone: it is found and rewritten by withCrlfLineEnds. */
  #bareLf = false;
  #remaining = 0;
  #noBody = false;
  #decode = false;
  /** The data a chunked body decoded to in the current read, until its framing has parsed. */
  readonly #decoded = new DecodedRanges();
  /** True once a final head was read. */
  gotHead = false;
  /** True when the body runs until the backend closes (the backend connection cannot be reused). */
  untilClose = false;

  constructor(maxHeadBytes: number) {
    this.#maxHeadBytes = maxHeadBytes;
    // A backend's chunked framing may end its lines in LF alone, like its head.
    this.#chunked = new ChunkedParser(maxHeadBytes, true);
  }

  /** Starts a new exchange. `noBody` for HEAD requests; `decode` to strip chunked framing (HTTP/2, HTTP/1.0). */
  reset(noBody: boolean, decode: boolean): void {
    this.#state = R_HEAD;
    this.#pending = null;
    this.#bareLf = false;
    this.#remaining = 0;
    this.#noBody = noBody;
    this.#decode = decode;
    this.gotHead = false;
    this.untilClose = false;
  }

  /**
   * Forgets the last exchange's head and bytes (kept as a spare, the reader must not hold a
   * finished response's strings until it is taken again: they would outlive the young generation).
   */
  clear(): void {
    this.head.reset();
    this.#pending = null;
    this.#chunked.reset();
    this.#state = R_DONE;
  }

  get active(): boolean {
    return this.#state !== R_DONE;
  }

  get chunked(): boolean {
    return this.#state === R_CHUNKED || this.head.chunked;
  }

  /** The trailers of a decoded chunked body. */
  get trailers(): string {
    return this.#chunked.trailers;
  }

  feed(chunk: Buffer, sink: ResponseSink): void {
    let buf = chunk;
    let i = 0;
    while (i < buf.length) {
      switch (this.#state) {
        case R_HEAD: {
          let from = i;
          let scanFrom = i;
          if (this.#pending !== null) {
            scanFrom = Math.max(0, this.#pending.length - 3);
            buf = Buffer.concat([this.#pending, buf.subarray(i)]);
            this.#pending = null;
            from = 0;
            i = 0;
          }
          let end = this.#bareLf ? -2 : findHeadEnd(buf, scanFrom, buf.length);
          if (end === -2) {
            // A line ending in LF alone: the head is read again from its start, with CRLFs.
            this.#bareLf = true;
            const rewritten = withCrlfLineEnds(buf, from);
            if (rewritten === null) end = -1;
            else {
              this.#bareLf = false;
              buf = rewritten.bytes;
              from = 0;
              i = 0;
              end = rewritten.end;
            }
          }
          if (end === -1) {
            if (buf.length - from > this.#maxHeadBytes) {
              sink.onResponseError('response head too large');
              return;
            }
            this.#pending = Buffer.from(buf.subarray(from));
            return;
          }
          if (end - from > this.#maxHeadBytes) {
            sink.onResponseError('response head too large');
            return;
          }
          const error = parseResponseHead(this.head, buf, from, end);
          if (error !== null) {
            sink.onResponseError(error);
            return;
          }
          i = end;
          const head = this.head;
          const status = head.status;
          if (status < 200) {
            if (status === 101) {
              this.#state = R_DONE;
              sink.onSwitchingProtocols(head, buf, from, end, buf.subarray(end));
              return;
            }
            sink.onInformational(head, buf, from, end);
            continue;
          }
          this.gotHead = true;
          if (this.#noBody || status === 204 || status === 304) {
            this.#state = R_DONE;
            sink.onResponseHead(head, buf, from, end);
            sink.onResponseEnd(buf.length - i);
            return;
          }
          if (head.chunked) {
            this.#state = R_CHUNKED;
            this.#chunked.reset(this.#decode);
          } else if (head.contentLength >= 0) {
            this.#state = R_LENGTH;
            this.#remaining = head.contentLength;
          } else {
            this.#state = R_CLOSE;
            this.untilClose = true;
          }
          sink.onResponseHead(head, buf, from, end);
          if (this.#state === R_LENGTH && this.#remaining === 0) {
            this.#state = R_DONE;
            sink.onResponseEnd(buf.length - i);
            return;
          }
          break;
        }
        case R_LENGTH: {
          const n = Math.min(this.#remaining, buf.length - i);
          sink.onResponseBody(buf, i, i + n);
          this.#remaining -= n;
          i += n;
          if (this.#remaining === 0) {
            this.#state = R_DONE;
            sink.onResponseEnd(buf.length - i);
            return;
          }
          break;
        }
        case R_CHUNKED: {
          // Decoded data is handed on only once this read's framing has parsed, as relayed bytes
          // are: a body malformed right after the head still gets a 502, not a cut, on every protocol.
          const decode = this.#decode;
          const decoded = this.#decoded;
          const end = this.#chunked.execute(buf, i, buf.length, decode ? decoded : null);
          const repairs = this.#chunked.repairs;
          if (end === -2) {
            decoded.ranges.length = 0;
            repairs.length = 0;
            sink.onResponseError(this.#chunked.error ?? 'bad chunked body');
            return;
          }
          const stop = end === -1 ? buf.length : end;
          if (decode) decoded.handOn(buf, sink);
          else if (repairs.length !== 0) relayRepaired(buf, i, stop, repairs, sink);
          else if (stop > i) sink.onResponseBody(buf, i, stop);
          repairs.length = 0;
          i = stop;
          if (end >= 0) {
            this.#state = R_DONE;
            sink.onResponseEnd(buf.length - i);
            return;
          }
          break;
        }
        case R_CLOSE:
          sink.onResponseBody(buf, i, buf.length);
          i = buf.length;
          break;
        default:
          // Bytes after a complete response: the backend broke the protocol.
          return;
      }
    }
  }

  /**
   * The backend closed. Returns true when that completes the response (a
   * body read until close); otherwise the response was cut short.
   */
  closed(): boolean {
    if (this.#state === R_CLOSE) {
      this.#state = R_DONE;
      return true;
    }
    return false;
  }
}

const CR = Buffer.from('\r', 'latin1');

/**
 * Relays `buf[start, stop)` with its framing repaired (ChunkedParser's `repairs`): a CR put back
 * before each LF that came alone, the blanks after a chunk's size left out. A client gets the
 * framing a chunked body is defined with: a strict one, Node's own among them, refuses a bare LF
 * or a blank in a size line (nginx re-frames such a body too).
 */
function relayRepaired(
  buf: Buffer,
  start: number,
  stop: number,
  repairs: number[],
  sink: ResponseSink,
): void {
  let from = start;
  for (const repair of repairs) {
    const at = repair < 0 ? ~repair : repair;
    if (at > from) sink.onResponseBody(buf, from, at);
    if (repair < 0) {
      from = at + 1;
    } else {
      sink.onResponseBody(CR, 0, 1);
      from = at;
    }
  }
  if (stop > from) sink.onResponseBody(buf, from, stop);
}

/** Where, in one read, the data of a chunked body lies: collected while its framing is parsed. */
class DecodedRanges implements ChunkSink {
  /** Start and end offsets, in pairs. */
  readonly ranges: number[] = [];

  onChunkData(_buf: Buffer, start: number, end: number): void {
    this.ranges.push(start, end);
  }

  /** Hands the data collected to `sink`, and forgets it. */
  handOn(buf: Buffer, sink: ChunkSink): void {
    const ranges = this.ranges;
    for (let r = 0; r < ranges.length; r += 2)
      sink.onChunkData(buf, ranges[r] as number, ranges[r + 1] as number);
    ranges.length = 0;
  }
}
