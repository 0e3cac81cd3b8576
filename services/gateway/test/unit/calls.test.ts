// calls.ts in-process, against a fake group store and the real memory throttle: the admission
// order of create and join, what is counted, and what a refused token looks like.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Calls, type CallContext, type CallsEngine } from '../../src/calls.js';
import { loadConfig } from '../../src/config.js';
import { GroupLimitError, type GroupRecord, type HistoryPage } from '../../src/engine/engine.js';
import { MemoryThrottle } from '../../src/engine/memory-throttle.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { hashPassword } from '../../src/passwords.js';
import type { CallResult } from '../../src/session.js';
import { issueToken } from '../../src/tokens.js';
import { until } from '../helpers/wait.js';

const SECRET = 'calls-test-secret-0123456789abcdef';

/** A group store in a map; `limit` makes createGroup throw GroupLimitError like an engine at its ceiling. */
class FakeStore implements CallsEngine {
  readonly groups = new Map<string, GroupRecord>();
  readonly throttle = new MemoryThrottle();
  next = 0;
  limit = Infinity;
  touched: string[] = [];
  async hasGroups(): Promise<boolean> {
    return this.groups.size > 0;
  }
  async createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord> {
    if (this.groups.size >= this.limit) throw new GroupLimitError();
    const g = { ...rec, id: String(this.next++), epoch: `ep${this.next}` };
    this.groups.set(g.id, g);
    return g;
  }
  async getGroup(id: string): Promise<GroupRecord | null> {
    return this.groups.get(id) ?? null;
  }
  async countGroups(): Promise<number> {
    return this.groups.size;
  }
  async touchGroup(id: string): Promise<boolean> {
    this.touched.push(id);
    return this.groups.has(id);
  }
  async sweepIdle(): Promise<string[]> {
    return [];
  }
  async removeGroup(id: string): Promise<boolean> {
    return this.groups.delete(id);
  }
  /** The top seq each group's history reports (0 unless a test sets it). */
  readonly tops = new Map<string, number>();
  async history(id: string): Promise<HistoryPage> {
    return { messages: [], top: this.tops.get(id) ?? 0 };
  }
  async members(): Promise<string[]> {
    return [];
  }
}

function setup(env: Record<string, string> = {}): { calls: Calls; store: FakeStore; metrics: Metrics } {
  const config = loadConfig({ SCRYPT_N: '1024', CHAT_SECRET: SECRET, ...env });
  const store = new FakeStore();
  const metrics = new Metrics('test');
  return { calls: new Calls(store, config, createLogger('silent', 'test'), metrics), store, metrics };
}

const from = (ip: string, gone = (): boolean => false): CallContext => ({ memberId: 'n/1', address: { ip, key: ip, exempt: false }, gone });
const code = (r: CallResult): string => (r.ok ? 'ok' : r.code);
const refusals = async (m: Metrics, reason: string): Promise<number> =>
  (await m.admissionRefusals.get()).values.find((v) => v.labels['reason'] === reason)?.value ?? 0;

async function groupWith(store: FakeStore, password: string): Promise<GroupRecord> {
  return store.createGroup({ passwordHash: await hashPassword(password, 1024), creator: 'ann', createdAt: Date.now() - 1000 });
}

describe('calls: create', () => {
  test('the ceiling refuses before the budget is used; past the budget, rate_limited; an exempt address has no budget', async () => {
    const { calls, store, metrics } = setup({ CREATE_BUDGET: '2', MAX_GROUPS: '3' });
    const c = from('198.51.100.1');
    assert.equal(code(await calls.perform(c, { call: 'create', name: 'A', password: 'p' })), 'ok');
    assert.equal(code(await calls.perform(c, { call: 'create', name: 'A', password: 'p' })), 'ok');
    const over = await calls.perform(c, { call: 'create', name: 'A', password: 'p' });
    assert.deepEqual(over, { ok: false, code: 'rate_limited', message: 'You have created too many groups for now, try again later! ' });
    assert.equal(await refusals(metrics, 'create_budget'), 1);
    const local = { ...from('127.0.0.1'), address: { ip: '127.0.0.1', key: '127.0.0.1', exempt: true } };
    assert.equal(code(await calls.perform(local, { call: 'create', name: 'L', password: 'p' })), 'ok');
    assert.equal(code(await calls.perform(from('198.51.100.2'), { call: 'create', name: 'B', password: 'p' })), 'group_limit');
    assert.equal(await refusals(metrics, 'group_limit'), 1);
    assert.equal(store.groups.size, 3);
  });

  test('GroupLimitError from the store (a race past the pre-check) is group_limit', async () => {
    const { calls, store } = setup();
    store.limit = 0;
    assert.equal(code(await calls.perform(from('198.51.100.3'), { call: 'create', name: 'A', password: 'p' })), 'group_limit');
  });

  test('a client gone while its password was hashed gets no group stored', async () => {
    const { calls, store } = setup();
    let gone = false;
    const r = calls.perform(from('198.51.100.4', () => gone), { call: 'create', name: 'A', password: 'p' });
    gone = true;
    assert.equal((await r).ok, false);
    assert.equal(store.groups.size, 0);
  });
});

describe('calls: join', () => {
  test('wrong passwords are counted per (group, address); backoff refuses the next at once; another address is not affected', async () => {
    const { calls, store, metrics } = setup({ AUTH_BACKOFF_AFTER: '2', AUTH_BUDGET: '0' });
    const g = await groupWith(store, 'right');
    const guess = (ip: string, password: string): Promise<CallResult> =>
      calls.perform(from(ip), { call: 'join', name: 'E', groupId: g.id, password, history: 'recent' });
    assert.equal(code(await guess('203.0.113.1', 'a')), 'wrong_password');
    assert.equal(code(await guess('203.0.113.1', 'b')), 'wrong_password');
    const t0 = performance.now();
    const locked = await guess('203.0.113.1', 'right');
    assert.deepEqual(locked, { ok: false, code: 'rate_limited', message: 'Too many wrong passwords for this group, try again later! ' });
    assert.ok(performance.now() - t0 < 50, 'no scrypt');
    assert.equal(await refusals(metrics, 'lockout'), 1);
    assert.equal(code(await guess('203.0.113.2', 'right')), 'ok', 'another address gets in');
    assert.deepEqual(store.touched, [g.id], 'a join touches the group (retention)');
  });

  test('a verified password is cached per group: the next join, even in backoff, skips scrypt and the lockout', async () => {
    const { calls, store, metrics } = setup({ AUTH_BACKOFF_AFTER: '1', AUTH_BUDGET: '0' });
    const g = await groupWith(store, 'café');
    const join = (ip: string, password: string): Promise<CallResult> =>
      calls.perform(from(ip), { call: 'join', name: 'M', groupId: g.id, password, history: 'recent' });
    store.tops.set(g.id, 41);
    const first = await join('203.0.113.5', 'café');
    assert.ok(first.ok && 'seq' in first && first.seq === 41, 'a join reports the group’s top seq');
    assert.equal(code(await join('203.0.113.6', 'nope')), 'wrong_password');
    // The NFD spelling of the same password is a hit on the one entry, even from the address in backoff.
    assert.equal(code(await join('203.0.113.6', 'cafe\u0301')), 'ok');
    assert.equal((await metrics.authCacheHits.get()).values[0]?.value, 1);
  });

  test('a join storm from one address (a NAT, an office) counts one attempt: all get in even with backoff after one failure', async () => {
    const { calls, store } = setup({ AUTH_BACKOFF_AFTER: '1', AUTH_BUDGET: '0' });
    const g = await groupWith(store, 'right');
    const joins = await Promise.all(
      Array.from({ length: 10 }, (_, i) => calls.perform(from('203.0.113.60'), { call: 'join', name: `M${i}`, groupId: g.id, password: 'right', history: 'recent' })),
    );
    assert.deepEqual(joins.map(code), Array(10).fill('ok'));
    assert.deepEqual(await store.throttle.authAttempt(g.id, '203.0.113.60', { maxFailures: 10, windowMs: 60_000, backoffAfter: 1 }), { allowed: true, failures: 1 }, 'nothing left counted');
  });

  test('a locked-out address that shares a check does not lock out another address with the same password', async () => {
    const { calls, store } = setup({ AUTH_MAX_FAILURES: '2', AUTH_BACKOFF_AFTER: '0', AUTH_BUDGET: '0' });
    const g = await groupWith(store, 'right');
    const join = (ip: string, password: string): Promise<CallResult> =>
      calls.perform(from(ip), { call: 'join', name: 'M', groupId: g.id, password, history: 'recent' });
    for (const p of ['a', 'b']) assert.equal(code(await join('203.0.113.70', p)), 'wrong_password');
    const [locked, other] = await Promise.all([join('203.0.113.70', 'right'), join('203.0.113.71', 'right')]);
    assert.equal(code(locked), 'rate_limited');
    assert.equal(code(other), 'ok');
  });

  test('sharing another address\'s check of the same password does not skip this address\'s own lockout', async () => {
    const { calls, store } = setup({ AUTH_MAX_FAILURES: '2', AUTH_BACKOFF_AFTER: '0', AUTH_BUDGET: '0' });
    const g = await groupWith(store, 'right');
    const join = (ip: string, password: string): Promise<CallResult> =>
      calls.perform(from(ip), { call: 'join', name: 'M', groupId: g.id, password, history: 'recent' });
    for (const p of ['a', 'b']) assert.equal(code(await join('203.0.113.81', p)), 'wrong_password');
    const [member, lockedOut] = await Promise.all([join('203.0.113.80', 'right'), join('203.0.113.81', 'right')]);
    assert.equal(code(member), 'ok');
    assert.equal(code(lockedOut), 'rate_limited', 'the locked-out address stays out while sharing the check');
  });

  test('busy is not a wrong password: the counted attempt is taken back', async () => {
    // No queue room at all for anyone but exempt addresses: every check is busy.
    const { calls, store, metrics } = setup({ AUTH_BACKOFF_AFTER: '1', AUTH_BUDGET: '0', PASSWORD_QUEUE_MAX: '1', SCRYPT_CONCURRENCY: '1' });
    const g = await groupWith(store, 'right');
    // A costly hash (N=2^16) so the two checks below hold the only slot and the only queue place for a while.
    const slow = await store.createGroup({ passwordHash: await hashPassword('other', 65536), creator: 'bob', createdAt: Date.now() });
    const hold = [1, 2].map((i) => calls.perform(from(`203.0.113.${20 + i}`), { call: 'join', name: 'H', groupId: slow.id, password: `other ${i}`, history: 'recent' }));
    await until(() => calls.work.length === 1, 5000, 'one check running and one waiting');
    for (let i = 0; i < 4; i++) {
      const r = await calls.perform(from('203.0.113.30'), { call: 'join', name: 'M', groupId: g.id, password: 'right', history: 'recent' });
      assert.equal(code(r), 'busy');
    }
    await Promise.all(hold);
    assert.equal(await refusals(metrics, 'busy'), 4);
    const r = await calls.perform(from('203.0.113.30'), { call: 'join', name: 'M', groupId: g.id, password: 'right', history: 'recent' });
    assert.equal(code(r), 'ok', 'four busy answers did not count as four wrong passwords');
  });

  test('unknown group: Wrong ID; with no groups at all: no_groups', async () => {
    const { calls, store } = setup();
    assert.equal(code(await calls.perform(from('203.0.113.40'), { call: 'join', name: 'M', groupId: '0', password: 'x', history: 'recent' })), 'no_groups');
    await groupWith(store, 'x');
    assert.equal(code(await calls.perform(from('203.0.113.40'), { call: 'join', name: 'M', groupId: '9', password: 'x', history: 'recent' })), 'unknown_group');
  });
});

describe('calls: resume', () => {
  test("a token of another life of the group, of a removed group, or past the maximum age is invalid_token; renewal keeps the auth time", async () => {
    const { calls, store } = setup({ TOKEN_MAX_AGE_SECONDS: '60' });
    const g = await groupWith(store, 'x');
    const tok = (epoch: string, authAt: number): string => issueToken(SECRET, { groupId: g.id, name: 'M', epoch, authAt, joinId: 'J'.repeat(16) }, 60_000);
    store.tops.set(g.id, 7);
    const ok = await calls.perform(from('203.0.113.50'), { call: 'resume', token: tok(g.epoch, Date.now() - 1000), since: 0 });
    assert.equal(code(ok), 'ok');
    assert.ok(ok.ok && 'seq' in ok && ok.seq === 7, 'a resume reports the group’s top seq');
    const renewed = ok.ok && 'token' in ok ? ok.token : '';
    const claims = JSON.parse(Buffer.from(renewed.split('.')[0] as string, 'base64url').toString()) as { a: number };
    assert.ok(Date.now() - claims.a >= 1000, 'the renewed token keeps the original auth time');
    assert.ok(ok.ok && 'member' in ok && ok.member === 'J'.repeat(16), 'a resume is the same member (its join id)');
    assert.equal((claims as { j?: string }).j, 'J'.repeat(16), 'the renewed token keeps the join id');
    assert.equal(code(await calls.perform(from('203.0.113.50'), { call: 'resume', token: tok('another-life', Date.now()), since: 0 })), 'invalid_token');
    assert.equal(code(await calls.perform(from('203.0.113.50'), { call: 'resume', token: tok(g.epoch, Date.now() - 61_000), since: 0 })), 'invalid_token');
    store.groups.delete(g.id);
    assert.equal(code(await calls.perform(from('203.0.113.50'), { call: 'resume', token: tok(g.epoch, Date.now()), since: 0 })), 'invalid_token');
  });
});
