// The engine work behind the session's calls: group lookups, creation with a
// scrypt hash, password checks (cluster-wide throttle, per-node cache of
// successful checks keyed by an HMAC of the password), resume tokens, /who.
import { createHmac, randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import type { Engine } from './engine/engine.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { hashPassword, verifyPassword } from './passwords.js';
import * as T from './protocol/text.js';
import type { Call, CallResult } from './session.js';
import { issueToken, verifyToken } from './tokens.js';

const AUTH_CACHE_SIZE = 10_000;

type AuthOutcome = 'ok' | 'wrong' | 'locked';

export class Calls {
  /** Successful password checks, keyed by group and a keyed hash of the password (never the password). */
  private readonly authCache = new Map<string, string>();
  private readonly authCacheKey = randomBytes(32);
  /** Password checks running now, by the same key: concurrent joins share one scrypt. */
  private readonly checking = new Map<string, Promise<AuthOutcome>>();

  constructor(
    private readonly engine: Engine,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  private cacheKey(groupId: string, password: string): string {
    return `${groupId}\0${createHmac('sha256', this.authCacheKey).update(password).digest('base64')}`;
  }

  /** A check of this password for this group already succeeded on this node (and the hash is unchanged). */
  private knownGood(groupId: string, password: string, stored: string): boolean {
    if (this.authCache.get(this.cacheKey(groupId, password)) !== stored) return false;
    this.metrics.authCacheHits.inc();
    return true;
  }

  /**
   * One check per (group, password) at a time: a join storm with the right password runs
   * scrypt once and the other joins share the outcome (counted as cache hits). Each check
   * counts as a failed attempt before scrypt runs, atomically in the engine, so parallel
   * guesses cannot get past AUTH_MAX_FAILURES; a right password takes its count back.
   */
  private check(groupId: string, password: string, stored: string): Promise<AuthOutcome> {
    const key = this.cacheKey(groupId, password);
    const running = this.checking.get(key);
    if (running) {
      this.metrics.authCacheHits.inc();
      return running;
    }
    const check = this.countedCheck(key, groupId, password, stored).finally(() => this.checking.delete(key));
    this.checking.set(key, check);
    return check;
  }

  private async countedCheck(key: string, groupId: string, password: string, stored: string): Promise<AuthOutcome> {
    const attempts = await this.engine.recordAuthFailure(groupId, this.config.authLockoutSeconds);
    if (attempts > this.config.authMaxFailures) return 'locked';
    if (!(await verifyPassword(password, stored))) return 'wrong';
    if (this.authCache.size >= AUTH_CACHE_SIZE) this.authCache.delete(this.authCache.keys().next().value as string);
    this.authCache.set(key, stored);
    await this.engine.authSucceeded(groupId);
    return 'ok';
  }

  private token(groupId: string, name: string): string {
    return issueToken(this.config.chatSecret, groupId, name, this.config.tokenTtlSeconds * 1000);
  }

  /** Perform one call; engine errors propagate (the node maps them to `unavailable`). */
  async perform(memberId: string, call: Call): Promise<CallResult> {
    const { engine } = this;
    switch (call.call) {
      case 'hasGroups': {
        const hasGroups = await engine.hasGroups();
        if (!hasGroups) this.metrics.joins.inc({ result: 'no_groups' });
        return { ok: true, hasGroups };
      }
      case 'groupExists': {
        const exists = (await engine.getGroup(call.groupId)) !== null;
        if (!exists) this.metrics.joins.inc({ result: 'unknown_group' });
        else this.log.info({ conn: memberId, groupId: call.groupId }, '[MEMBER REQUEST]');
        return { ok: true, exists };
      }
      case 'create': {
        const passwordHash = await hashPassword(call.password, this.config.scryptN);
        const rec = await engine.createGroup({ passwordHash, creator: call.name, createdAt: Date.now() });
        this.metrics.groupsCreated.inc();
        this.log.info({ conn: memberId, groupId: rec.id, name: call.name }, '[NEW CHAT]');
        return { ok: true, groupId: rec.id, name: call.name, token: this.token(rec.id, call.name), seq: 0 };
      }
      case 'join': {
        const rec = await engine.getGroup(call.groupId);
        if (!rec) {
          const any = await engine.hasGroups();
          this.metrics.joins.inc({ result: any ? 'unknown_group' : 'no_groups' });
          return any ? { ok: false, code: 'unknown_group', message: T.WRONG_ID } : { ok: false, code: 'no_groups', message: T.NO_CHATS };
        }
        // A password this node has already seen succeed passes even while guessers have the
        // group locked: the lockout stops guessing, it must not lock members out.
        if (!this.knownGood(rec.id, call.password, rec.passwordHash)) {
          const outcome = await this.check(rec.id, call.password, rec.passwordHash);
          if (outcome === 'locked') {
            this.metrics.joins.inc({ result: 'locked' });
            return { ok: false, code: 'rate_limited', message: T.LOCKED };
          }
          if (outcome === 'wrong') {
            this.metrics.joins.inc({ result: 'wrong_password' });
            this.log.info({ conn: memberId, groupId: rec.id }, '[WRONG PASSWORD]');
            return { ok: false, code: 'wrong_password', message: T.WRONG_PASSWORD };
          }
        }
        this.metrics.joins.inc({ result: 'ok' });
        this.log.info({ conn: memberId, groupId: rec.id, name: call.name }, '[NEW MEMBER]');
        return { ok: true, groupId: rec.id, name: call.name, token: this.token(rec.id, call.name), seq: await engine.latestSeq(rec.id) };
      }
      case 'resume': {
        const claims = verifyToken(this.config.chatSecret, call.token);
        if (!claims || !(await engine.getGroup(claims.groupId)))
          return { ok: false, code: 'invalid_input', message: 'Invalid or expired resume token' };
        this.metrics.joins.inc({ result: 'ok' });
        this.log.info({ conn: memberId, groupId: claims.groupId, name: claims.name }, '[RESUMED]');
        return {
          ok: true,
          groupId: claims.groupId,
          name: claims.name,
          token: this.token(claims.groupId, claims.name),
          seq: await engine.latestSeq(claims.groupId),
        };
      }
      case 'who':
        return { ok: true, names: await engine.members(call.groupId) };
    }
  }
}
