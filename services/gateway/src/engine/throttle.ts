// The admission throttle: per-address budgets and the wrong-password limit per
// (group, address), shared by every node (counted in Redis on the Redis engine).
// A narrow interface of its own beside the group store and the broker; memory
// (memory-throttle.ts) and Redis (redis/throttle.ts) implementations side by side.

/** One fixed-window budget: `count` hits so far in the window, which ends in `resetMs`. */
export interface BudgetHit {
  count: number;
  resetMs: number;
}

export interface AuthPolicy {
  /** Failures allowed before the address is locked out of the group; 0 = no lockout. */
  maxFailures: number;
  /** Failures forget after this long without another (ms). */
  windowMs: number;
  /** Failures allowed before backoff starts (0 = no backoff): then 1 s, 2 s, 4 s … (capped at the window) between checks. */
  backoffAfter: number;
}

/** A counted attempt (`failures`: counted so far, this one included) or a refusal with its retry time. */
export type AuthAttempt = { allowed: true; failures: number } | { allowed: false; retryMs: number; locked: boolean };

export interface Throttle {
  /** Count one hit against `key`'s budget (a window of `windowMs` from its first hit). */
  hit(key: string, windowMs: number): Promise<BudgetHit>;
  /**
   * Before a password check for `groupId` from `address`: count it as a failure, atomically,
   * unless the address is locked out or inside its backoff. Parallel guesses cannot slip past.
   */
  authAttempt(groupId: string, address: string, policy: AuthPolicy, now?: number): Promise<AuthAttempt>;
  /** The password was right: the address's failures for the group are cleared. */
  authSuccess(groupId: string, address: string): Promise<void>;
  /** The counted attempt never got its check (`busy`, the client left, an error): take it back. */
  authRelease(groupId: string, address: string): Promise<void>;
}

/** The wait before the next check after `failures` counted failures (0 = none). */
export function backoffMs(failures: number, policy: AuthPolicy): number {
  if (policy.backoffAfter === 0 || failures < policy.backoffAfter) return 0;
  return Math.min(1000 * 2 ** Math.min(30, failures - policy.backoffAfter), policy.windowMs);
}
