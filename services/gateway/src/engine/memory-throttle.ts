// The throttle of the single-node engine: the same rules as redis/throttle.ts, in maps
// bounded in size (expired entries go first, then the oldest).
import { backoffMs, type AuthAttempt, type AuthPolicy, type BudgetHit, type Throttle } from './throttle.js';

/** Entries kept per map: a stranger rotating addresses cannot grow them without bound (expired ones go when met). */
const MAX_ENTRIES = 200_000;

class ExpiringMap<V extends { until: number }> {
  private readonly m = new Map<string, V>();
  get(key: string, now: number): V | undefined {
    const v = this.m.get(key);
    if (v && v.until <= now) {
      this.m.delete(key);
      return undefined;
    }
    return v;
  }
  set(key: string, v: V, now: number): void {
    this.m.delete(key); // re-inserted last: the map stays in order of last use
    // Full: the least recently used 1% go at once (O(1) per insert, amortised; never a scan of the whole map).
    if (this.m.size >= MAX_ENTRIES) {
      let n = Math.ceil(MAX_ENTRIES / 100);
      for (const k of this.m.keys()) {
        if (n-- <= 0) break;
        this.m.delete(k);
      }
    }
    this.m.set(key, v);
  }
  delete(key: string): void {
    this.m.delete(key);
  }
}

export class MemoryThrottle implements Throttle {
  private readonly budgets = new ExpiringMap<{ count: number; until: number }>();
  private readonly failures = new ExpiringMap<{ n: number; last: number; until: number }>();

  async hit(key: string, windowMs: number, now = Date.now()): Promise<BudgetHit> {
    const b = this.budgets.get(key, now);
    if (b) {
      b.count++;
      return { count: b.count, resetMs: b.until - now };
    }
    this.budgets.set(key, { count: 1, until: now + windowMs }, now);
    return { count: 1, resetMs: windowMs };
  }

  async authAttempt(groupId: string, address: string, policy: AuthPolicy, now = Date.now()): Promise<AuthAttempt> {
    const key = `${groupId}\0${address}`;
    const f = this.failures.get(key, now) ?? { n: 0, last: 0, until: 0 };
    // A refused address stays recent (re-inserted), so flooding the map with new addresses evicts idle entries first, not its lockout.
    if (policy.maxFailures > 0 && f.n >= policy.maxFailures) {
      this.failures.set(key, f, now);
      return { allowed: false, retryMs: f.until - now, locked: true };
    }
    const wait = f.last + backoffMs(f.n, policy) - now;
    if (wait > 0) {
      this.failures.set(key, f, now);
      return { allowed: false, retryMs: wait, locked: false };
    }
    const next = { n: f.n + 1, last: now, until: now + policy.windowMs };
    this.failures.set(key, next, now);
    return { allowed: true, failures: next.n };
  }

  async authSuccess(groupId: string, address: string): Promise<void> {
    this.failures.delete(`${groupId}\0${address}`);
  }

  async authRelease(groupId: string, address: string, now = Date.now()): Promise<void> {
    const f = this.failures.get(`${groupId}\0${address}`, now);
    if (f && f.n > 0) f.n--;
  }
}
