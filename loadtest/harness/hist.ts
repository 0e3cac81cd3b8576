// A mergeable latency histogram: log-spaced buckets ~1% wide from 1 µs to
// ~100 s. Workers fill one each and send the bucket counts to the parent, so
// no sample list ever crosses the IPC channel.

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Bucket i holds values in [GROWTH^i, GROWTH^(i+1)) µs; enough buckets for 100 s. */
export const BUCKETS = Math.ceil(Math.log(100e6) / LOG_GROWTH) + 1;

export class Histogram {
  readonly counts: number[];
  count = 0;
  sum = 0;
  max = 0;

  constructor(counts?: readonly number[]) {
    this.counts = counts ? [...counts] : new Array<number>(BUCKETS).fill(0);
  }

  /** Record one latency in milliseconds (fractions allowed; negatives clamp to 0). */
  record(ms: number): void {
    const us = ms > 0 ? ms * 1000 : 0;
    const i = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / LOG_GROWTH));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sum += ms > 0 ? ms : 0;
    if (ms > this.max) this.max = ms;
  }

  merge(other: HistogramData): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** The q-quantile (0..1) in milliseconds: the geometric middle of its bucket; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.max, (Math.pow(GROWTH, i) * Math.sqrt(GROWTH)) / 1000);
    }
    return this.max;
  }

  get mean(): number {
    return this.count === 0 ? NaN : this.sum / this.count;
  }

  /** ~1,900 small integers (a few KB of JSON): cheap enough to send once per run. */
  toData(): HistogramData {
    return { counts: [...this.counts], count: this.count, sum: this.sum, max: this.max };
  }
}

export interface HistogramData {
  counts: number[];
  count: number;
  sum: number;
  max: number;
}

export const fromData = (d: HistogramData): Histogram => {
  const h = new Histogram(d.counts);
  h.count = d.count;
  h.sum = d.sum;
  h.max = d.max;
  return h;
};
