// The throttle on Redis: every node counts against the same keys (keys.ts),
// each decision one atomic script (budget_hit.lua, auth_attempt.lua).
import type { AuthAttempt, AuthPolicy, BudgetHit, Throttle } from '../throttle.js';
import { addressBudgetKey, authFailureKey, groupKeys, isGroupId } from './keys.js';
import type { ScriptedClient } from './scripts.js';

type Call = <T>(f: (r: ScriptedClient) => Promise<T>) => Promise<T>;

export class RedisThrottle implements Throttle {
  constructor(private readonly call: Call) {}

  async hit(key: string, windowMs: number): Promise<BudgetHit> {
    const [count, resetMs] = await this.call((r) => r.chatBudgetHit(addressBudgetKey(key), Math.max(1, Math.ceil(windowMs))));
    return { count: Number(count), resetMs: Number(resetMs) };
  }

  async authAttempt(groupId: string, address: string, policy: AuthPolicy, now = Date.now()): Promise<AuthAttempt> {
    if (!isGroupId(groupId)) return { allowed: false, retryMs: policy.windowMs, locked: true };
    const reply = await this.call((r) =>
      r.chatAuthAttempt(authFailureKey(groupId, address), groupKeys(groupId).owned, groupKeys(groupId).meta, now, Math.max(1, Math.ceil(policy.windowMs)), policy.maxFailures, policy.backoffAfter),
    );
    if (Number(reply[0]) === 1) return { allowed: true, failures: Number(reply[1]) };
    return { allowed: false, retryMs: Number(reply[1]), locked: Number(reply[2]) === 1 };
  }

  async authRelease(groupId: string, address: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call((r) => r.chatAuthRelease(authFailureKey(groupId, address)));
  }

  async authSuccess(groupId: string, address: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call((r) => r.del(authFailureKey(groupId, address)));
  }
}
