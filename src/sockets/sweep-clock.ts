// The clock of a sweep that closes what has been quiet for too long (the
// inactivity sweep of relayed sockets, harbor-node's UDP sessions): wall time
// less the time the process itself did not run.
// A tick that comes late (a busy machine, a long collection, a synchronous
// task) runs in the event loop's timers phase, before the loop has read what
// arrived meanwhile: a socket or a UDP client that was busy all along looks
// quiet for as long as the process was away, and a sweep on the wall clock
// would close it (a UDP client would then lose its instance). Each tick counts
// at most `maxStepMs` of the time since the one before; the rest was the
// process's, not the peer's. A timeout so measured never fires early, and late
// only by what the process lost.

export class SweepClock {
  readonly #maxStepMs: number;
  #lastTick: number;
  /** Wall time that no tick counted. */
  #lostMs = 0;

  /** `maxStepMs`: the most one tick counts (a few ticks' length); `now`: the wall time at start. */
  constructor(maxStepMs: number, now: number) {
    this.#maxStepMs = maxStepMs;
    this.#lastTick = now;
  }

  /** The sweep's time at a tick at wall time `now`. */
  tick(now: number): number {
    const step = now - this.#lastTick;
    if (step > this.#maxStepMs) this.#lostMs += step - this.#maxStepMs;
    this.#lastTick = now;
    return now - this.#lostMs;
  }

  /** The sweep's time for wall time `now` between ticks (when a datagram opens a session). */
  at(now: number): number {
    return now - this.#lostMs;
  }
}
