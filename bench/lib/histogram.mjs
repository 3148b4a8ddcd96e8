// A fixed-bucket latency histogram in microseconds: 10 µs buckets up to
// 100 ms, then 1 ms buckets up to 60 s. Workers send it sparse; the
// coordinator merges and reads percentiles.
const FINE_LIMIT_US = 100_000;
const FINE_STEP_US = 10;
const COARSE_STEP_US = 1_000;
const FINE_BUCKETS = FINE_LIMIT_US / FINE_STEP_US;
const BUCKETS = FINE_BUCKETS + 60_000;

export class Histogram {
  counts = new Uint32Array(BUCKETS);
  total = 0;

  record(micros) {
    const value = micros < 0 ? 0 : micros;
    let bucket =
      value < FINE_LIMIT_US
        ? Math.floor(value / FINE_STEP_US)
        : FINE_BUCKETS + Math.floor((value - FINE_LIMIT_US) / COARSE_STEP_US);
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    this.counts[bucket]++;
    this.total++;
  }

  reset() {
    this.counts.fill(0);
    this.total = 0;
  }

  /** Non-empty buckets as [index, count] pairs. */
  toSparse() {
    const pairs = [];
    for (let i = 0; i < BUCKETS; i++) {
      if (this.counts[i] !== 0) pairs.push([i, this.counts[i]]);
    }
    return pairs;
  }

  addSparse(pairs) {
    for (const [index, count] of pairs) {
      this.counts[index] += count;
      this.total += count;
    }
  }

  /** The upper edge of the bucket that holds quantile q (0..1), in milliseconds. */
  quantileMs(q) {
    if (this.total === 0) return Number.NaN;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        const upper =
          i < FINE_BUCKETS ? (i + 1) * FINE_STEP_US : FINE_LIMIT_US + (i - FINE_BUCKETS + 1) * COARSE_STEP_US;
        return upper / 1000;
      }
    }
    return Number.NaN;
  }
}
