// The engine work behind the session's calls, with admission in front of every
// costly step: per-address budgets (creates, password checks) and the
// wrong-password limit per (group, address), counted cluster-wide in the
// engine's throttle; scrypt through the node's bounded, fair queue
// (password-work.ts); a per-node cache of verified passwords; resume tokens
// tied to one life of one group (tokens.ts).
import { createHmac, randomBytes } from 'node:crypto';
import type { ClientAddress } from './clientip.js';
import type { Config } from './config.js';
import { GroupLimitError, textBytes, type Broker, type GroupRecord, type GroupStore, type PresenceManager, type StoredMessage } from './engine/engine.js';
import type { ChatMessage } from './engine/model.js';
import type { AuthPolicy, Throttle } from './engine/throttle.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { AdmissionReason } from './ports.js';
import { PasswordWork } from './password-work.js';
import { hashPassword, localScrypt, normalizePassword, verifyPassword } from './passwords.js';
import type { Scrypt } from './scrypt-process.js';
import type { ErrorCode } from './protocol/frames.js';
import * as T from './protocol/text.js';
import type { Call, CallFailure, CallResult } from './session.js';
import { issueToken, newJoinId, verifyToken, type TokenClaims } from './tokens.js';

/** A history page's size when the client names none (PROTOCOL.md §3). */
export const HISTORY_PAGE_DEFAULT = 50;

/** A stored message as members see it (without the origin connection). */
function chatMessage(m: StoredMessage): ChatMessage {
  const out: ChatMessage = { groupId: m.groupId, seq: m.seq, from: m.from, text: m.text, ts: m.ts };
  if (m.api) out.api = true;
  return out;
}

/** Groups whose verified password this node remembers (one entry per group, least recently used goes). */
const AUTH_CACHE_GROUPS = 10_000;

type AuthOutcome = 'ok' | 'wrong' | 'busy' | 'gone';

/** What the calls need of the engine: the group store, the top of a group's history, who is online, and the throttle. */
export type CallsEngine = GroupStore & Pick<Broker, 'history'> & Pick<PresenceManager, 'members'> & { readonly throttle: Throttle };

/** Who is asking: the connection, its address for budgets, and whether it is still there. */
export interface CallContext {
  memberId: string;
  address: ClientAddress;
  gone: () => boolean;
}

/** A check of one password for one group that several joins may share (a join storm runs scrypt once). */
interface SharedCheck {
  /** `locked`: the attempt of the address that started it was refused before any scrypt. */
  outcome: Promise<AuthOutcome | 'locked'>;
  /** The address (budget key) whose attempt was counted for this check. */
  addressKey: string;
  waiters: Array<() => boolean>;
}

export class Calls {
  /** Per group: a keyed hash of the NFC password that last checked right, and the stored hash it matched. */
  private readonly authCache = new Map<string, { mac: string; stored: string }>();
  private readonly authCacheKey = randomBytes(32);
  private readonly checking = new Map<string, SharedCheck>();
  readonly work: PasswordWork;
  private readonly policy: AuthPolicy;
  private readonly secrets: () => string[];

  constructor(
    private readonly engine: CallsEngine,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** Where scrypt runs (main.ts: the password process). */
    private readonly scrypt: Scrypt = localScrypt,
  ) {
    this.work = new PasswordWork(
      { concurrency: config.scryptConcurrency, maxQueued: config.passwordQueueMax, maxPerAddress: config.passwordQueuePerAddress },
      (n) => metrics.passwordQueue.set(n),
    );
    this.policy = { maxFailures: config.authMaxFailures, windowMs: config.authLockoutSeconds * 1000, backoffAfter: config.authBackoffAfter };
    this.secrets = () =>
      config.chatSecretPrevious !== null && Date.now() < config.chatSecretPreviousUntil ? [config.chatSecret, config.chatSecretPrevious] : [config.chatSecret];
  }

  /** Keyed on exactly what scrypt checks (the NFC form), so spelling variants of one password are one entry. */
  private passwordMac(password: string): string {
    return createHmac('sha256', this.authCacheKey).update(normalizePassword(password)).digest('base64');
  }

  private knownGood(rec: GroupRecord, mac: string): boolean {
    const hit = this.authCache.get(rec.id);
    if (!hit || hit.mac !== mac || hit.stored !== rec.passwordHash) return false;
    this.authCache.delete(rec.id); // most recently used goes last
    this.authCache.set(rec.id, hit);
    this.metrics.authCacheHits.inc();
    return true;
  }

  private remember(rec: GroupRecord, mac: string): void {
    this.authCache.delete(rec.id);
    if (this.authCache.size >= AUTH_CACHE_GROUPS) this.authCache.delete(this.authCache.keys().next().value as string);
    this.authCache.set(rec.id, { mac, stored: rec.passwordHash });
  }

  private refuse(reason: AdmissionReason, code: ErrorCode, message: string, ctx: CallContext): CallFailure {
    this.metrics.admissionRefusals.inc({ reason });
    // Counted by reason in chat_admission_refusals_total; one log line per refusal would be a flood of its own.
    this.log.debug({ conn: ctx.memberId, remote: ctx.address.ip, reason }, '[REFUSED]');
    return { ok: false, code, message };
  }

  /** Count one use of a per-address budget; false once past it. Exempt addresses and a budget of 0 always pass. */
  private async withinBudget(kind: 'create' | 'auth', ctx: CallContext): Promise<boolean> {
    const [limit, windowSeconds] =
      kind === 'create' ? [this.config.createBudget, this.config.createBudgetWindowSeconds] : [this.config.authBudget, this.config.authBudgetWindowSeconds];
    if (limit === 0 || ctx.address.exempt) return true;
    const { count } = await this.engine.throttle.hit(`${kind}/${ctx.address.key}`, windowSeconds * 1000);
    return count <= limit;
  }

  /**
   * One check per (group, password) at a time, from its counted attempt to the end of scrypt:
   * concurrent joins with the same password from one address share it (a join storm on a node
   * counts one attempt and runs scrypt once). A join from another address counts its own attempt
   * (its lockout and backoff apply) and then shares the scrypt. A check is dropped unqueued only
   * when every client waiting on it has gone.
   */
  private shareCheck(rec: GroupRecord, password: string, mac: string, ctx: CallContext): Promise<AuthOutcome | 'locked'> | null {
    const running = this.checking.get(`${rec.id}\0${mac}`);
    if (!running) return null;
    running.waiters.push(ctx.gone);
    this.metrics.authCacheHits.inc();
    if (running.addressKey === ctx.address.key) return running.outcome;
    return this.shareAcross(running, rec, password, mac, ctx);
  }

  private async shareAcross(running: SharedCheck, rec: GroupRecord, password: string, mac: string, ctx: CallContext): Promise<AuthOutcome | 'locked'> {
    const counted = await this.countAttempt(rec, ctx);
    if (counted === 'locked') return 'locked';
    let outcome: AuthOutcome | 'locked';
    try {
      outcome = await running.outcome;
      // The address that started it was refused before any scrypt: this one checks for itself.
      if (outcome === 'locked') outcome = await this.scryptCheck(rec, password, counted.suspect, [ctx.gone], ctx);
    } catch (e) {
      await this.releaseAttempt(rec, ctx).catch(() => undefined);
      throw e;
    }
    await this.settleAttempt(rec, mac, ctx, outcome);
    return outcome;
  }

  /**
   * A check of a password nobody is checking now, registered for sharing before anything is
   * awaited: counted as a failure for this (group, address) before scrypt runs, atomically in the
   * engine (parallel guesses cannot slip past the limit, and the lockout and backoff apply), and
   * cleared when it was right. An address that failed for the group before is a suspect: its
   * checks queue behind everyone else's, one at a time per group.
   */
  private countedCheck(rec: GroupRecord, password: string, mac: string, ctx: CallContext): Promise<AuthOutcome | 'locked'> {
    const key = `${rec.id}\0${mac}`;
    const shared: SharedCheck = { outcome: Promise.resolve('gone'), addressKey: ctx.address.key, waiters: [ctx.gone] };
    shared.outcome = this.runCounted(rec, password, mac, shared, ctx).finally(() => {
      if (this.checking.get(key) === shared) this.checking.delete(key);
    });
    this.checking.set(key, shared);
    return shared.outcome;
  }

  private async runCounted(rec: GroupRecord, password: string, mac: string, shared: SharedCheck, ctx: CallContext): Promise<AuthOutcome | 'locked'> {
    const counted = await this.countAttempt(rec, ctx);
    if (counted === 'locked') return 'locked';
    let outcome: AuthOutcome;
    try {
      outcome = await this.scryptCheck(rec, password, counted.suspect, shared.waiters, ctx);
    } catch (e) {
      await this.releaseAttempt(rec, ctx).catch(() => undefined);
      throw e;
    }
    await this.settleAttempt(rec, mac, ctx, outcome);
    return outcome;
  }

  private get limited(): boolean {
    return this.policy.maxFailures > 0 || this.policy.backoffAfter > 0;
  }

  /** Count one attempt for (group, address) before scrypt: `locked` when refused (lockout, backoff). */
  private async countAttempt(rec: GroupRecord, ctx: CallContext): Promise<'locked' | { suspect: boolean }> {
    if (!this.limited) return { suspect: false };
    const attempt = await this.engine.throttle.authAttempt(rec.id, ctx.address.key, this.policy);
    return attempt.allowed ? { suspect: attempt.failures > 1 } : 'locked';
  }

  /** Right: the count is cleared and the password remembered. Wrong: it stays. `busy` or gone: taken back. */
  private async settleAttempt(rec: GroupRecord, mac: string, ctx: CallContext, outcome: AuthOutcome): Promise<void> {
    if (outcome === 'ok') {
      if (this.limited) await this.engine.throttle.authSuccess(rec.id, ctx.address.key);
      this.remember(rec, mac);
    } else if (outcome !== 'wrong') {
      // `busy` or gone: no password was checked, so no wrong password is counted (PROTOCOL.md §3).
      await this.releaseAttempt(rec, ctx);
    }
  }

  private async releaseAttempt(rec: GroupRecord, ctx: CallContext): Promise<void> {
    if (this.limited) await this.engine.throttle.authRelease(rec.id, ctx.address.key);
  }

  /** scrypt through the node's password queue; dropped unqueued when every waiter has gone. */
  private async scryptCheck(rec: GroupRecord, password: string, suspect: boolean, waiters: Array<() => boolean>, ctx: CallContext): Promise<AuthOutcome> {
    const r = await this.work.submit(
      { address: ctx.address, kind: 'check', suspectGroup: suspect ? rec.id : null, gone: () => waiters.every((g) => g()) },
      () => verifyPassword(password, rec.passwordHash, this.scrypt),
    );
    return r.ok ? (r.value ? 'ok' : 'wrong') : r.reason;
  }

  private token(rec: GroupRecord, name: string, authAt: number, joinId: string): string {
    return issueToken(this.config.chatSecret, { groupId: rec.id, name, epoch: rec.epoch, authAt, joinId }, this.config.tokenTtlSeconds * 1000);
  }

  /** Perform one call; engine errors propagate (the node maps them to `unavailable`). */
  async perform(ctx: CallContext, call: Call): Promise<CallResult> {
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
        else this.log.info({ conn: ctx.memberId, groupId: call.groupId }, '[MEMBER REQUEST]');
        return { ok: true, exists };
      }
      case 'create':
        return this.create(ctx, call.name, call.password);
      case 'join':
        return this.join(ctx, call.name, call.groupId, call.password);
      case 'resume':
        return this.resume(ctx, call.token);
      case 'who':
        return { ok: true, names: await engine.members(call.groupId) };
      case 'history':
        // `seen` is the node's to resolve (it knows what it showed the connection); unresolved = newest.
        return { ok: true, ...(await this.historyPage(call.groupId, typeof call.before === 'number' ? call.before : null, call.limit)) };
    }
  }

  /**
   * One page of history before `before` (exclusive; null = the newest), oldest first, for the
   * `history` op, `/history` and the server API. `limit` (default 50) is clamped to HISTORY_PAGE_MAX,
   * and a page also stops at a quarter of MAX_BACKPRESSURE_BYTES of text (at least one message), so
   * one page never makes its reader a slow consumer. `more`: older messages remain in the history
   * (what retention and HISTORY_LIMIT / HISTORY_MAX_BYTES kept).
   */
  async historyPage(groupId: string, before: number | null, limit: number | null): Promise<{ messages: ChatMessage[]; more: boolean }> {
    const n = Math.max(1, Math.min(limit ?? HISTORY_PAGE_DEFAULT, this.config.historyPageMax));
    // One more than asked for says whether older ones remain.
    const page = await this.engine.history(groupId, before === null ? { limit: n + 1 } : { before, limit: n + 1 });
    let msgs = page.messages;
    let more = msgs.length > n;
    if (more) msgs = msgs.slice(msgs.length - n);
    const maxBytes = Math.floor(this.config.maxBackpressureBytes / 4);
    let bytes = 0;
    let from = msgs.length;
    while (from > 0) {
      const m = msgs[from - 1] as StoredMessage;
      const b = textBytes(m.text) + textBytes(m.from);
      if (from < msgs.length && bytes + b > maxBytes) break;
      bytes += b;
      from--;
    }
    if (from > 0) {
      more = true;
      msgs = msgs.slice(from);
    }
    return { messages: msgs.map(chatMessage), more };
  }

  private async create(ctx: CallContext, name: string, password: string): Promise<CallResult> {
    const { engine, config } = this;
    // Before any budget or scrypt: a full registry refuses at once.
    if (config.maxGroups > 0 && (await engine.countGroups()) >= config.maxGroups) return this.refuse('group_limit', 'group_limit', T.GROUP_LIMIT, ctx);
    if (!(await this.withinBudget('create', ctx))) return this.refuse('create_budget', 'rate_limited', T.CREATE_BUDGET, ctx);
    const hashed = await this.work.submit({ address: ctx.address, kind: 'create', gone: ctx.gone }, () => hashPassword(password, config.scryptN, this.scrypt));
    if (!hashed.ok) return hashed.reason === 'busy' ? this.refuse('busy', 'busy', T.BUSY, ctx) : { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
    // A client that left while its password was hashed gets no group: nothing is stored for nobody.
    if (ctx.gone()) return { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
    let rec: GroupRecord;
    try {
      rec = await engine.createGroup({ passwordHash: hashed.value, creator: name, createdAt: Date.now() });
    } catch (e) {
      if (e instanceof GroupLimitError) return this.refuse('group_limit', 'group_limit', T.GROUP_LIMIT, ctx);
      throw e;
    }
    this.metrics.groupsCreated.inc();
    this.log.info({ conn: ctx.memberId, groupId: rec.id, name }, '[NEW CHAT]');
    const member = newJoinId();
    return { ok: true, groupId: rec.id, name, member, token: this.token(rec, name, Date.now(), member), seq: 0 };
  }

  private async join(ctx: CallContext, name: string, groupId: string, password: string): Promise<CallResult> {
    const { engine } = this;
    const rec = await engine.getGroup(groupId);
    if (!rec) {
      const any = await engine.hasGroups();
      this.metrics.joins.inc({ result: any ? 'unknown_group' : 'no_groups' });
      return any ? { ok: false, code: 'unknown_group', message: T.WRONG_ID } : { ok: false, code: 'no_groups', message: T.NO_CHATS };
    }
    if (!(await this.withinBudget('auth', ctx))) return this.refuse('auth_budget', 'rate_limited', T.AUTH_BUDGET, ctx);
    const mac = this.passwordMac(password);
    // A password this node has already verified passes at once: the limits below stop guessing,
    // and whoever has the right password is not guessing.
    if (!this.knownGood(rec, mac)) {
      const outcome = await (this.shareCheck(rec, password, mac, ctx) ?? this.countedCheck(rec, password, mac, ctx));
      if (outcome === 'locked') {
        this.metrics.joins.inc({ result: 'locked' });
        return this.refuse('lockout', 'rate_limited', T.LOCKED, ctx);
      }
      if (outcome === 'busy') return this.refuse('busy', 'busy', T.BUSY, ctx);
      if (outcome === 'gone') return { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
      if (outcome === 'wrong') {
        this.metrics.joins.inc({ result: 'wrong_password' });
        this.log.info({ conn: ctx.memberId, groupId: rec.id, remote: ctx.address.ip }, '[WRONG PASSWORD]');
        return { ok: false, code: 'wrong_password', message: T.WRONG_PASSWORD };
      }
    }
    // Activity for retention; a group removed by a sweep since it was looked up is gone now.
    if (!(await engine.touchGroup(rec.id))) {
      this.metrics.joins.inc({ result: 'unknown_group' });
      return { ok: false, code: 'unknown_group', message: T.WRONG_ID };
    }
    this.metrics.joins.inc({ result: 'ok' });
    this.log.info({ conn: ctx.memberId, groupId: rec.id, name }, '[NEW MEMBER]');
    const member = newJoinId();
    return { ok: true, groupId: rec.id, name, member, token: this.token(rec, name, Date.now(), member), seq: await this.top(rec.id) };
  }

  /** The group this token was issued for, in the same life; null for a removed, recreated or unknown one. */
  private async tokenGroup(claims: TokenClaims): Promise<{ rec: GroupRecord; authAt: number } | null> {
    const rec = await this.engine.getGroup(claims.groupId);
    if (!rec) return null;
    if (claims.epoch !== null && claims.authAt !== null) return claims.epoch === rec.epoch ? { rec, authAt: claims.authAt } : null;
    // A token from before epochs: it was issued TOKEN_TTL before its expiry; it can only be for a group that existed then.
    const issuedAt = claims.exp - this.config.tokenTtlSeconds * 1000;
    return rec.createdAt <= issuedAt ? { rec, authAt: issuedAt } : null;
  }

  private async resume(ctx: CallContext, token: string): Promise<CallResult> {
    const claims = verifyToken(this.secrets(), token);
    const found = claims ? await this.tokenGroup(claims) : null;
    const fresh = found !== null && Date.now() - found.authAt <= this.config.tokenMaxAgeSeconds * 1000;
    if (!claims || !found || !fresh || !(await this.engine.touchGroup(found.rec.id))) {
      this.log.info({ conn: ctx.memberId, remote: ctx.address.ip }, '[TOKEN REFUSED]');
      return { ok: false, code: 'invalid_token', message: T.INVALID_TOKEN };
    }
    this.metrics.joins.inc({ result: 'ok' });
    this.log.info({ conn: ctx.memberId, groupId: claims.groupId, name: claims.name }, '[RESUMED]');
    // The same member as before the drop (its sends' ids still dedupe); a token from before join ids starts one now.
    const member = claims.joinId ?? newJoinId();
    return {
      ok: true,
      groupId: claims.groupId,
      name: claims.name,
      member,
      // Renewed, but the chain still ends TOKEN_MAX_AGE_SECONDS after the password was checked.
      token: this.token(found.rec, claims.name, found.authAt, member),
      seq: await this.top(claims.groupId),
    };
  }

  /** The group's newest seq (a page of no messages). */
  private async top(groupId: string): Promise<number> {
    return (await this.engine.history(groupId, { limit: 0 })).top;
  }
}
