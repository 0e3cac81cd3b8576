// Token bucket per connection: `rate` tokens a second, at most `burst` saved.
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = performance.now()): boolean {
    if (this.rate <= 0) return true; // 0 = unlimited (benchmarks)
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * One token bucket per key (a client address), kept for at most `maxKeys` keys: the least recently
 * used goes first (it comes back with a full bucket, so cycling through them takes more addresses
 * than the bound).
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  take(key: string, now = performance.now()): boolean {
    if (this.rate <= 0) return true; // 0 = off
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key);
    else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
      b = new TokenBucket(this.rate, this.burst, now);
    }
    this.buckets.set(key, b); // most recently used last
    return b.take(now);
  }
}
