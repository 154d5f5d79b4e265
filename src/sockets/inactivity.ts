// Inactivity timeouts of relayed sockets (the HTTPS proxy's client and backend
// connections, harbor-node's forwarded TCP connections), kept by one sweep per
// proxy instead of Node's socket timers.
// Node re-arms a socket's timer on every read and write: a clock reading and
// timer-list work, about 900 instructions each, 3,600 per keep-alive request
// under callgrind (bench/https/instructions.mjs). The sweep costs nothing per
// read or write: every tick it compares each socket's byte counts and the
// length of its write queue with the last tick's. A body relayed to a slow
// reader is activity too: each 'drain' brings the next writes. (Node's own
// timer also looks at libuv's queue, a private field, for a single write
// draining for longer than the timeout; the proxy writes at most a read's
// worth at a time, and so does harbor-node's TCP relay.) A timeout fires between its length and two ticks more
// after the last activity, never early; time the process did not run is not counted as the
// socket's quiet (sweep-clock.ts).
import type * as net from 'node:net';
// The module's own binding: the global `performance` is a getter, called on every use.
import { performance } from 'node:perf_hooks';
import { LiveSet, SLOT } from './live-set.js';
import { SweepClock } from './sweep-clock.js';

/** One socket's inactivity timeout. */
export class Watch {
  [SLOT] = -1;
  readonly #socket: net.Socket;
  readonly #onTimeout: () => void;
  /** 0: no timeout. */
  #timeoutMs = 0;
  /** Counted as active at the next tick (the countdown starts then). */
  #restart = true;
  #quietSince = 0;
  #seen = -1;
  #queued = 0;

  constructor(socket: net.Socket, onTimeout: () => void) {
    this.#socket = socket;
    this.#onTimeout = onTimeout;
  }

  /** Starts the countdown again: `ms` of inactivity from now (0: none), as `socket.setTimeout(ms)`. */
  set(ms: number): void {
    this.#timeoutMs = ms;
    this.#restart = true;
  }

  /** One tick at `now`: the timeout's callback when the socket has been quiet for it. */
  check(now: number): void {
    const socket = this.#socket;
    const seen = socket.bytesRead + socket.bytesWritten;
    const queued = socket.writableLength;
    if (this.#restart || seen !== this.#seen || queued !== this.#queued) {
      this.#restart = false;
      this.#seen = seen;
      this.#queued = queued;
      this.#quietSince = now;
      return;
    }
    if (this.#timeoutMs > 0 && now - this.#quietSince >= this.#timeoutMs) {
      // Once per quiet period of the timeout's length, as long as the quiet lasts.
      this.#quietSince = now;
      this.#onTimeout();
    }
  }
}

/** The longest tick, whatever the timeouts (a timeout fires at most two ticks late). */
const MAX_TICK_MS = 1000;
const MIN_TICK_MS = 5;

/** The watches of one proxy, checked every tick while there are any. */
export class InactivitySweep {
  readonly #watches = new LiveSet<Watch>();
  readonly #tickMs: number;
  readonly #clock: SweepClock;
  #timer: NodeJS.Timeout | undefined;

  /**
   * `timeoutsMs`: the timeouts watches will be set to; a tick is a tenth of the shortest (0, no
   * timeout, is not counted; none at all: the longest tick).
   */
  constructor(...timeoutsMs: number[]) {
    const shortest = Math.min(...timeoutsMs.filter((ms) => ms > 0), MAX_TICK_MS * 10);
    this.#tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.floor(shortest / 10)));
    this.#clock = new SweepClock(2 * this.#tickMs, performance.now());
  }

  get tickMs(): number {
    return this.#tickMs;
  }

  /** Watches `socket`; `onTimeout` is called when it has been quiet for the watch's timeout. */
  watch(socket: net.Socket, onTimeout: () => void): Watch {
    const watch = new Watch(socket, onTimeout);
    this.#watches.add(watch);
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#sweep, this.#tickMs);
      // The sockets keep the process alive, not their timeouts.
      this.#timer.unref();
    }
    return watch;
  }

  /** Stops watching (the socket closed). */
  unwatch(watch: Watch): void {
    this.#watches.delete(watch);
    if (this.#watches.size === 0) this.stop();
  }

  /** No more ticks until the next watch (a proxy with no connection wakes for nothing). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep = (): void => {
    const now = this.#clock.tick(performance.now());
    // A timeout's callback may close its socket and others (unwatching them): checking a watch
    // twice in one tick is harmless (its countdown restarted at `now` the first time).
    this.#watches.forEach((watch) => {
      watch.check(now);
    });
  };
}
