// What finished HTTP/2 streams leave for new ones: their request heads and
// response readers, so that a stream does not build them afresh.
import { Head } from './head.js';
import { ResponseReader } from './response-reader.js';

/** Most spare heads and readers an HTTP/2 front keeps (one of each per stream in flight is the most used). */
const MAX_SPARES = 256;

/**
 * Request heads and response readers of finished streams, taken again by new ones: a fresh
 * Head grows its six position arrays line by line on every stream, the largest garbage an
 * HTTP/2 request made (about 2 KB of 17).
 */
export class StreamSpares {
  readonly #maxHeadBytes: number;
  readonly #heads: Head[] = [];
  readonly #readers: ResponseReader[] = [];

  constructor(maxHeadBytes: number) {
    this.#maxHeadBytes = maxHeadBytes;
  }

  head(): Head {
    return this.#heads.pop() ?? new Head();
  }

  reader(): ResponseReader {
    return this.#readers.pop() ?? new ResponseReader(this.#maxHeadBytes);
  }

  /** Back for another stream: nothing of the stream that gives them holds them any more. */
  give(head: Head | undefined, reader: ResponseReader | undefined): void {
    if (head !== undefined && this.#heads.length < MAX_SPARES) {
      head.reset();
      this.#heads.push(head);
    }
    if (reader !== undefined && this.#readers.length < MAX_SPARES) {
      reader.clear();
      this.#readers.push(reader);
    }
  }
}
