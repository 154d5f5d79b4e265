// How the serving process asks V8 to manage its heap. One setting, applied
// once before the proxy serves: no allocation-site pretenuring.
//
// V8 moves an allocation site (an object or array literal in some function) to
// old-space allocation once nearly every object it made outlived a young
// collection. Node builds the same stream state for every Duplex stream: a TLS
// connection and an HTTP/2 stream alike. Clients that open a connection per
// request keep many such streams alive across young collections, and after a
// few seconds of them the sites are pretenured for the life of the process.
// Every HTTP/2 stream, alive a few hundred microseconds, was then built in old
// space, where it kept its young objects alive until the next full collection:
// each young collection copied ~1.8 MB (7 ms instead of 0.8 ms), and each
// HTTP/2 request cost the sidecar 15-20% more CPU than in a process that had
// never seen such clients (docs/operations.md, "The heap").
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
