// Request latency as Prometheus histograms, kept as plain bucket counts: the
// hot path finds a request's bucket and bumps one number; /metrics turns the
// counts into cumulative `_bucket` series when scraped.

/**
 * The buckets' upper bounds, in seconds: from half a millisecond (a proxy next to its app
 * answers in well under one) to a minute (the default --backend-timeout).
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** The bounds as the hot path reads them: unboxed doubles. */
const BOUNDS = Float64Array.from(LATENCY_BUCKETS);

/** Durations counted by bucket: counts[i] holds those in (bound i-1, bound i]; the last, those above every bound. */
export class LatencyHistogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  /** Seconds, summed over every duration counted. */
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    const bounds = BOUNDS;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    (this.counts[i] as number)++;
    this.sum += seconds;
    this.count++;
  }

  /** Counts at or below each bound (Prometheus' `le`), the last one being +Inf's (every count). */
  cumulative(): number[] {
    const out: number[] = [];
    let total = 0;
    for (const n of this.counts) {
      total += n;
      out.push(total);
    }
    return out;
  }

  /** Every duration `histograms` counted, in one histogram. */
  static merged(histograms: Iterable<LatencyHistogram | undefined>): LatencyHistogram {
    const out = new LatencyHistogram();
    for (const h of histograms) {
      if (h === undefined) continue;
      h.counts.forEach((n, i) => {
        (out.counts[i] as number) += n;
      });
      out.sum += h.sum;
      out.count += h.count;
    }
    return out;
  }

  /**
   * The duration below which `fraction` of the counted ones fall, estimated as Prometheus'
   * histogram_quantile() does (linear within the bucket); undefined when nothing was counted.
   * Above the last bound it answers that bound: the histogram knows no more.
   */
  quantile(fraction: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = fraction * this.count;
    let below = 0;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      const inBucket = this.counts[i] as number;
      if (below + inBucket >= rank && inBucket > 0) {
        const lower = i === 0 ? 0 : (LATENCY_BUCKETS[i - 1] as number);
        const upper = LATENCY_BUCKETS[i] as number;
        return lower + ((upper - lower) * (rank - below)) / inBucket;
      }
      below += inBucket;
    }
    return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1];
  }
}
