// How the serving process asks V8 to manage its heap. One setting, applied
// once before the proxy serves: no allocation-site pretenuring.
//
// V8 allocates from an object or array literal in the old generation once
// nearly every object it made outlived a young collection. Node builds the same
// stream state for a TLS connection and an HTTP/2 stream; clients that open a
// connection per request made V8 pretenure it, and every HTTP/2 stream after
// that was built in the old generation: dearer young collections, 15-20% more
// CPU per HTTP/2 request (measured in docs/operations.md, "The heap").
import { setFlagsFromString } from 'node:v8';

/** The V8 flag applied: V8 never pretenures an allocation site. */
const NO_PRETENURING_FLAG = '--no-allocation-site-pretenuring';

/**
 * Applies the serving process's heap setting. Called once, before the proxy accepts a
 * connection: no site has been pretenured yet, so none ever is.
 */
export function tuneHeapForServing(): void {
  setFlagsFromString(NO_PRETENURING_FLAG);
}
