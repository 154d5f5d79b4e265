// Finds where a chunked body ends (RFC 9112 section 7.1) while its bytes are
// relayed unchanged, or decodes it for a peer that cannot take chunked framing
// (HTTP/2, HTTP/1.0). Strict like llhttp: hex sizes without spaces, extensions
// by its grammar, CRLF only, trailer fields checked like header fields. A
// response's parser reads framing as nginx and HAProxy do: a line may end in
// LF alone (RFC 9112 section 2.2), and blanks may follow a chunk's size (servers
// that pad the size to a fixed width). It notes where each is, and the reader
// repairs the framing before relaying: a CR put back, the blanks left out.

/** Receives the data of a body being decoded, and its trailer section. */
export interface ChunkSink {
  onChunkData(buf: Buffer, start: number, end: number): void;
}

const S_SIZE_FIRST = 0;
const S_SIZE = 1;
// A chunk extension: `;name`, `;name=token` or `;name="quoted"`, no blanks (llhttp's grammar: a
// body relayed unchanged must parse in the client or backend that reads it next).
const S_EXT_NAME_START = 2;
const S_EXT_NAME = 3;
const S_EXT_VALUE_START = 4;
const S_EXT_TOKEN = 5;
const S_EXT_QUOTED = 6;
const S_EXT_QUOTED_PAIR = 7;
const S_EXT_AFTER_QUOTE = 8;
const S_SIZE_LF = 9;
/** After a chunk's size, blanks (a backend's response only). */
const S_SIZE_BLANK = 10;
const S_DATA = 11;
const S_DATA_CR = 12;
const S_DATA_LF = 13;
// From here on, the bytes count against the trailer limit (the states are ordered: a state at or
// past S_TRAILER_START is in the trailer section).
const S_TRAILER_START = 14;
const S_TRAILER_NAME = 15;
const S_TRAILER_VALUE = 16;
const S_TRAILER_LF = 17;
const S_END_LF = 18;
const S_DONE = 19;

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[0x41 + i] = 10 + i;
  HEX[0x61 + i] = 10 + i;
}
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}
const FIELD = new Uint8Array(256);
FIELD[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) FIELD[c] = 1;
/** What a quoted string holds unescaped (qdtext): a field byte other than `"` and `\`. */
const QDTEXT = FIELD.map((ok, c) => (c === 0x22 || c === 0x5c ? 0 : ok));

export class ChunkedParser {
  #state = S_SIZE_FIRST;
  #size = 0;
  #digits = 0;
  #trailerBytes = 0;
  #trailerStart = -1;
  readonly #maxTrailerBytes: number;
  /** Why the body was refused, once it was. */
  error: string | null = null;
  /** When decoding: the raw trailer section ("name: value\r\n" lines), '' when none. */
  trailers = '';
  #collectTrailers = false;
  readonly #lenient: boolean;
  /**
   * What, in the buffer of the last `execute`, a strict reader would refuse in the framing (only
   * when lenient), in order: `i` for an LF alone at `i` (a CR goes before it), `~i` for a blank
   * at `i` after a chunk's size (left out). The caller empties it once it has used them.
   */
  readonly repairs: number[] = [];

  /**
   * `lenient`: a backend's response (never a client's request), whose framing lines may end in
   * LF alone and whose chunk sizes may be followed by blanks.
   */
  constructor(maxTrailerBytes: number, lenient = false) {
    this.#maxTrailerBytes = maxTrailerBytes;
    this.#lenient = lenient;
  }

  reset(collectTrailers = false): void {
    this.#state = S_SIZE_FIRST;
    this.#size = 0;
    this.#digits = 0;
    this.#trailerBytes = 0;
    this.error = null;
    this.trailers = '';
    this.#collectTrailers = collectTrailers;
  }

  get done(): boolean {
    return this.#state === S_DONE;
  }

  /**
   * Consumes `buf[start, end)`. Returns the index just past the end of the
   * body, -1 when all of it belongs to the body and more is needed, or -2 on
   * a framing error (see `error`). With a sink, chunk data is handed to it.
   */
  execute(buf: Buffer, start: number, end: number, sink: ChunkSink | null): number {
    let i = start;
    this.#trailerStart = this.#collectTrailers && this.#state >= S_TRAILER_START ? start : -1;
    while (i < end) {
      const state = this.#state;
      if (state === S_DATA) {
        const n = Math.min(this.#size, end - i);
        if (sink !== null) sink.onChunkData(buf, i, i + n);
        this.#size -= n;
        i += n;
        if (this.#size === 0) this.#state = S_DATA_CR;
        continue;
      }
      const c = buf[i] as number;
      i++;
      switch (state) {
        case S_SIZE_FIRST:
        case S_SIZE: {
          const h = HEX[c] as number;
          if (h >= 0) {
            if (++this.#digits > 13) return this.#fail('chunk size too large');
            this.#size = this.#size * 16 + h;
            this.#state = S_SIZE;
          } else if (state === S_SIZE && c === 0x3b) {
            this.#state = S_EXT_NAME_START;
          } else if (state === S_SIZE && c === 0x0d) {
            this.#state = S_SIZE_LF;
          } else if (state === S_SIZE && this.#bareLf(c, i)) {
            this.#sizeLineEnded(i);
          } else if (state === S_SIZE && this.#blank(c, i)) {
            this.#state = S_SIZE_BLANK;
          } else {
            return this.#fail('bad chunk size');
          }
          break;
        }
        case S_EXT_NAME_START:
          if (TOKEN[c] !== 1) return this.#fail('bad chunk extension');
          this.#state = S_EXT_NAME;
          break;
        case S_EXT_VALUE_START:
          if (TOKEN[c] === 1) this.#state = S_EXT_TOKEN;
          else if (c === 0x22) this.#state = S_EXT_QUOTED;
          else return this.#fail('bad chunk extension');
          break;
        case S_EXT_QUOTED:
          if (c === 0x22) this.#state = S_EXT_AFTER_QUOTE;
          else if (c === 0x5c) this.#state = S_EXT_QUOTED_PAIR;
          else if (QDTEXT[c] !== 1) return this.#fail('bad chunk extension');
          break;
        case S_EXT_QUOTED_PAIR:
          if (FIELD[c] !== 1) return this.#fail('bad chunk extension');
          this.#state = S_EXT_QUOTED;
          break;
        case S_EXT_NAME:
        case S_EXT_TOKEN:
        case S_EXT_AFTER_QUOTE:
          // The end of a name, a value, or the size line.
          if (c === 0x0d) this.#state = S_SIZE_LF;
          else if (c === 0x3b) this.#state = S_EXT_NAME_START;
          else if (c === 0x3d && state === S_EXT_NAME) this.#state = S_EXT_VALUE_START;
          else if (this.#bareLf(c, i)) this.#sizeLineEnded(i);
          else if (TOKEN[c] !== 1 || state === S_EXT_AFTER_QUOTE) return this.#fail('bad chunk extension');
          break;
        case S_SIZE_BLANK:
          if (c === 0x0d) this.#state = S_SIZE_LF;
          else if (c === 0x3b) this.#state = S_EXT_NAME_START;
          else if (this.#bareLf(c, i)) this.#sizeLineEnded(i);
          else if (!this.#blank(c, i)) return this.#fail('bad chunk size');
          break;
        case S_SIZE_LF:
          if (c !== 0x0a) return this.#fail('bad line ending after chunk size');
          this.#sizeLineEnded(i);
          break;
        case S_DATA_CR:
          if (c === 0x0d) this.#state = S_DATA_LF;
          else if (this.#bareLf(c, i)) this.#state = S_SIZE_FIRST;
          else return this.#fail('chunk data longer than its size');
          break;
        case S_DATA_LF:
          if (c !== 0x0a) return this.#fail('bad line ending after chunk data');
          this.#state = S_SIZE_FIRST;
          break;
        case S_TRAILER_START:
          if (c === 0x0d) this.#state = S_END_LF;
          else if (TOKEN[c] === 1) this.#state = S_TRAILER_NAME;
          else if (this.#bareLf(c, i)) return this.#ended(buf, i, 1);
          else return this.#fail('bad trailer field');
          break;
        case S_TRAILER_NAME:
          if (c === 0x3a) this.#state = S_TRAILER_VALUE;
          else if (TOKEN[c] !== 1) return this.#fail('bad trailer field name');
          break;
        case S_TRAILER_VALUE:
          if (c === 0x0d) this.#state = S_TRAILER_LF;
          else if (this.#bareLf(c, i)) this.#state = S_TRAILER_START;
          else if (FIELD[c] !== 1) return this.#fail('bad trailer field value');
          break;
        case S_TRAILER_LF:
          if (c !== 0x0a) return this.#fail('bad line ending in trailers');
          this.#state = S_TRAILER_START;
          break;
        case S_END_LF:
          if (c !== 0x0a) return this.#fail('bad line ending after trailers');
          return this.#ended(buf, i, 2);
        default:
          return this.#fail('data after the end of the body');
      }
      if (this.#state >= S_TRAILER_START && ++this.#trailerBytes > this.#maxTrailerBytes) {
        return this.#fail('trailers too large');
      }
    }
    if (this.#trailerStart >= 0 && this.#state >= S_TRAILER_START) {
      this.trailers += buf.toString('latin1', this.#trailerStart, end);
    }
    return -1;
  }

  /** True when `c`, just read at `i - 1`, is an LF that may end a line alone here; notes where. */
  #bareLf(c: number, i: number): boolean {
    if (c !== 0x0a || !this.#lenient) return false;
    this.repairs.push(i - 1);
    return true;
  }

  /** True when `c`, just read at `i - 1`, is a blank that may follow a chunk's size; notes where. */
  #blank(c: number, i: number): boolean {
    if ((c !== 0x20 && c !== 0x09) || !this.#lenient) return false;
    this.repairs.push(~(i - 1));
    return true;
  }

  /** The line of a chunk's size ended just before `i`. */
  #sizeLineEnded(i: number): void {
    this.#digits = 0;
    if (this.#size === 0) {
      this.#state = S_TRAILER_START;
      if (this.#collectTrailers) this.#trailerStart = i;
    } else {
      this.#state = S_DATA;
    }
  }

  /** The body ended just before `i`, with an empty line whose end took `lineEnd` bytes of `buf`. */
  #ended(buf: Buffer, i: number, lineEnd: number): number {
    this.#state = S_DONE;
    if (this.#trailerStart >= 0 && i - lineEnd > this.#trailerStart) {
      this.trailers += buf.toString('latin1', this.#trailerStart, i - lineEnd);
    }
    return i;
  }

  #fail(reason: string): number {
    this.error = reason;
    return -2;
  }
}

/**
 * Parses a raw trailer section ("name: value" lines, ended by CRLF or by LF alone) into pairs;
 * names lower-cased.
 */
export function parseTrailers(raw: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of raw.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}
