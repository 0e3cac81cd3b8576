// Send → ack latency as a log-bucket histogram (10 % wide buckets from 0.1 ms): workers
// count, the runner adds their counts up and reads percentiles.
const BASE_MS = 0.1;
const RATIO = 1.1;
const BUCKETS = 160; // up to ~0.1 · 1.1^160 ≈ 400 s

export const newHistogram = (): number[] => new Array<number>(BUCKETS).fill(0);

export function record(h: number[], ms: number): void {
  const i = ms <= BASE_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / BASE_MS) / Math.log(RATIO)));
  h[i] = (h[i] ?? 0) + 1;
}

export function addHistograms(a: number[], b: number[]): number[] {
  return a.map((x, i) => x + (b[i] ?? 0));
}

/** The upper bound (ms) of the bucket that holds the q-quantile; NaN when empty. */
export function quantile(h: number[], q: number): number {
  const n = h.reduce((a, b) => a + b, 0);
  if (n === 0) return NaN;
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i] ?? 0;
    if (seen >= q * n) return BASE_MS * RATIO ** i;
  }
  return BASE_MS * RATIO ** (h.length - 1);
}
