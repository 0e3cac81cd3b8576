// Bounded growth, one suite for every Engine (issue 8, item 4): the ceiling on
// groups, idle-group retention (IDs never reused, "no chats available" after
// removals), history bounded in bytes, epochs over restarts, and data from
// before these (old journal lines, old Redis keys) carried over. Run in-process
// against the MemoryEngine (temp DATA_DIR), the RedisEngine on a real
// redis-server and on a real 3-master Redis Cluster.
//
// Retention is driven by the engine's clock option: a test moves time forward
// and calls sweepIdle(), so no test waits out a real period; one test per
// engine lets the engine's own timer do it with a 1 s period.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Cluster, Redis } from 'ioredis';
import { loadConfig } from '../../src/config.js';
import { GroupLimitError, type Engine } from '../../src/engine/engine.js';
import { MemoryEngine } from '../../src/engine/memory.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { GROUP_INDEX, GROUP_INDEX_BUILT, GROUPS_EXIST, ID_COUNTER, authFailureKey, groupKeys } from '../../src/engine/redis/keys.js';
import { tempDir } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis.js';
import { RedisClusterServer } from '../helpers/redis-cluster-server.js';
import { until } from '../helpers/wait.js';

const rec = (creator: string) => ({ passwordHash: `scrypt$1024$8$1$salt$${creator}`, creator, createdAt: 1_700_000_000_000 });
const msg = (from: string, text: string) => ({ from, text, ts: Date.now(), origin: `node/${from}` });
const HOUR = 3_600_000;

interface Settings {
  maxGroups?: number;
  /** Seconds; 0 = off. */
  retention?: number;
  maxBytes?: number;
  limit?: number;
  /** A clock the test moves (also turns the engine's own sweeper timer down to once an hour). */
  clock?: () => number;
  onRemoved?: (id: string) => void;
}

/** A clock that only moves when the test says so. */
function testClock(): { now: () => number; advance: (ms: number) => number } {
  let t = Date.now();
  return { now: () => t, advance: (ms) => (t += ms) };
}

interface Harness {
  name: 'memory' | 'redis' | 'redis-cluster';
  /** A started engine on empty state. */
  fresh(s?: Settings): Promise<Engine>;
  /** Another engine on the state `e` left (e is stopped first), e.g. a restarted process. */
  reopen(e: Engine, s?: Settings): Promise<Engine>;
  /** A second engine on the same state, running alongside (Redis: another node); null for memory. */
  peer(e: Engine, s?: Settings): Promise<Engine | null>;
  /** Write a group (and optional history) in the format from before epochs, retention and the index, on empty state; returns an engine opened on it. */
  legacy(groups: Array<{ id: string; creator: string; texts?: string[] }>, nextId: number, s?: Settings): Promise<Engine>;
  /** A Redis client for inspecting keys (null for memory). */
  inspect(): Redis | Cluster | null;
  /** `INFO commandstats` summed over the Redis servers (empty for memory). */
  commandCalls(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

function redisConfig(target: RedisServer | RedisClusterServer, nodeId: string, s: Settings) {
  return loadConfig({
    ...(target instanceof RedisClusterServer ? { REDIS_CLUSTER_NODES: target.seeds } : { REDIS_URL: target.url }),
    CHAT_SECRET: 'conformance-secret-0123456789',
    HISTORY_LIMIT: String(s.limit ?? 50),
    MAX_GROUPS: String(s.maxGroups ?? 0),
    GROUP_RETENTION_SECONDS: String(s.retention ?? 0),
    HISTORY_MAX_BYTES: String(s.maxBytes ?? 0),
    NODE_ID: nodeId,
    LOG_LEVEL: 'silent',
  });
}

const timerFor = (s: Settings): number | undefined => (s.clock ? HOUR : undefined);

function memoryHarness(): Harness {
  const dirs = new WeakMap<Engine, string>();
  const open = async (dir: string, s: Settings = {}): Promise<Engine> => {
    const e = new MemoryEngine({
      dataDir: dir,
      historyLimit: s.limit ?? 50,
      maxGroups: s.maxGroups ?? 0,
      retentionSeconds: s.retention ?? 0,
      historyMaxBytes: s.maxBytes ?? 0,
      ...(s.clock ? { clock: s.clock } : {}),
      ...(s.onRemoved ? { onGroupRemoved: s.onRemoved } : {}),
      ...(timerFor(s) ? { sweepIntervalMs: timerFor(s) } : {}),
    });
    dirs.set(e, dir);
    await e.start();
    return e;
  };
  return {
    name: 'memory',
    fresh: (s) => open(tempDir('chat-growth-'), s),
    reopen: async (e, s) => {
      await e.stop();
      return open(dirs.get(e) as string, s);
    },
    peer: async () => null,
    legacy: async (groups, _nextId, s) => {
      // Journal lines as written before epochs (`ep`) and activity (`a`) existed.
      const dir = tempDir('chat-growth-legacy-');
      const lines: string[] = [];
      for (const g of groups) {
        lines.push(JSON.stringify({ t: 'g', id: g.id, h: rec(g.creator).passwordHash, c: g.creator, at: 1_600_000_000_000 }));
        (g.texts ?? []).forEach((x, i) => lines.push(JSON.stringify({ t: 'm', g: g.id, s: i + 1, f: g.creator, x, ts: 1_600_000_000_000 + i })));
      }
      writeFileSync(join(dir, 'journal.ndjson'), lines.map((l) => l + '\n').join(''));
      return open(dir, s);
    },
    inspect: () => null,
    commandCalls: async () => new Map(),
    close: async () => undefined,
  };
}

function redisHarness(name: 'redis' | 'redis-cluster', target: RedisServer | RedisClusterServer): Harness {
  let n = 0;
  const admin: Redis | Cluster = target instanceof RedisClusterServer ? target.client() : target.admin;
  const flushall = async (): Promise<void> => {
    if (target instanceof RedisClusterServer) await target.flushall();
    else await target.admin.flushall();
  };
  const open = async (s: Settings = {}): Promise<Engine> => {
    const e = new RedisEngine(redisConfig(target, `growth-${++n}`, s), undefined, {
      ...(s.clock ? { clock: s.clock } : {}),
      ...(s.onRemoved ? { onGroupRemoved: s.onRemoved } : {}),
      ...(timerFor(s) ? { sweepIntervalMs: timerFor(s) } : {}),
    });
    await e.start();
    return e;
  };
  return {
    name,
    fresh: async (s) => {
      await flushall();
      return open(s);
    },
    reopen: async (e, s) => {
      await e.stop();
      return open(s);
    },
    peer: async (_e, s) => open(s),
    legacy: async (groups, nextId, s) => {
      await flushall();
      // Keys as written before epochs (`ep`), activity (`la`), byte counts and the index: the
      // one-way GROUPS_EXIST flag, group hashes, history entries with field `m` only.
      await admin.set(ID_COUNTER, String(nextId));
      await admin.set(GROUPS_EXIST, '1');
      for (const g of groups) {
        const k = groupKeys(g.id);
        const texts = g.texts ?? [];
        await admin.hset(k.meta, 'h', rec(g.creator).passwordHash, 'c', g.creator, 'at', '1600000000000', 'seq', String(texts.length));
        for (let i = 0; i < texts.length; i++)
          await admin.xadd(k.history, `${i + 1}-0`, 'm', JSON.stringify({ from: g.creator, text: texts[i], ts: 1_600_000_000_000 + i, origin: '' }));
      }
      return open(s);
    },
    inspect: () => admin,
    commandCalls: () => target.commandCalls(),
    close: () => target.close(),
  };
}

const harnesses: Record<Harness['name'], () => Promise<Harness>> = {
  memory: async () => memoryHarness(),
  redis: async () => redisHarness('redis', await RedisServer.start()),
  'redis-cluster': async () => redisHarness('redis-cluster', await RedisClusterServer.start(3)),
};

const sorted = (ids: string[]): string[] => [...ids].sort((a, b) => Number(a) - Number(b));

for (const name of ['memory', 'redis', 'redis-cluster'] as const) {
  describe(`growth conformance: ${name}`, () => {
    let h: Harness;
    let open: Engine[] = [];
    /** Every engine a test starts is stopped after it, so no sweeper outlives its test. */
    const track = async (p: Promise<Engine | null>): Promise<Engine> => {
      const e = await p;
      assert.ok(e);
      open.push(e);
      return e;
    };
    before(async () => {
      h = await harnesses[name]();
    });
    afterEach(async () => {
      for (const e of open) await e.stop();
      open = [];
    });
    after(async () => {
      await h.close();
    });

    test('the ceiling on groups is exact under concurrent creates (several nodes on Redis); countGroups follows', async () => {
      const a = await track(h.fresh({ maxGroups: 7 }));
      const b = h.name === 'memory' ? a : await track(h.peer(a, { maxGroups: 7 }));
      assert.equal(await a.countGroups(), 0);
      const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 ? b : a).createGroup(rec(`u${i}`))));
      const created = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.id] : []));
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      assert.equal(created.length, 7, 'exactly MAX_GROUPS creates succeed');
      assert.equal(new Set(created).size, 7);
      for (const err of refused) assert.ok(err instanceof GroupLimitError, `refused with GroupLimitError, got ${String(err)}`);
      assert.equal(await a.countGroups(), 7);
      assert.equal(await b.countGroups(), 7);
      await assert.rejects(b.createGroup(rec('late')), GroupLimitError);
      for (const id of created) assert.equal((await a.getGroup(id))?.id, id);
      assert.equal(await a.countGroups(), 7, 'a refused create stores nothing');
    });

    test('MAX_GROUPS=0 is no ceiling', async () => {
      const e = await track(h.fresh({ maxGroups: 0 }));
      const got = await Promise.all(Array.from({ length: 25 }, (_, i) => e.createGroup(rec(`u${i}`))));
      assert.equal(got.length, 25);
      assert.equal(await e.countGroups(), 25);
    });

    test('retention removes an idle group with its history, throttle and owned keys; members online, messages and joins keep groups', async () => {
      const clock = testClock();
      const removedHook: string[] = [];
      const R = 60;
      const s: Settings = { retention: R, clock: clock.now, onRemoved: (id) => removedHook.push(id) };
      const e = await track(h.fresh(s));
      const idle = (await e.createGroup(rec('idle'))).id;
      const online = (await e.createGroup(rec('online'))).id;
      const joined = (await e.createGroup(rec('joined'))).id;
      const talked = (await e.createGroup(rec('talked'))).id;
      await e.publish(idle, msg('idle', 'old news'));
      await e.publish(idle, { ...msg('idle', 'older news'), dedupe: 'J s1' }); // a keyed send: its dedupe set
      await e.throttle.authAttempt(idle, '203.0.113.9', { maxFailures: 10, windowMs: 3_600_000, backoffAfter: 3 });
      await e.addMember(online, 'n1/1', 'maya');
      const admin = h.inspect();
      const extra = `${groupKeys(idle).meta}:throttle:203.0.113.9`;
      if (admin) {
        // A key another part of the gateway keeps under the group's tag and registers as owned.
        await admin.set(extra, '3');
        await admin.sadd(groupKeys(idle).owned, extra);
      }

      clock.advance(R * 1000 - 1000);
      assert.deepEqual(await e.sweepIdle(), [], 'nothing is idle for the whole period yet');
      assert.equal(await e.touchGroup(joined), true, 'a join');
      await e.publish(talked, msg('talked', 'still here'));

      clock.advance(1000);
      assert.deepEqual(await e.sweepIdle(), [idle], 'only the idle group goes');
      assert.deepEqual(removedHook, [idle]);
      assert.equal(await e.getGroup(idle), null);
      assert.deepEqual(await e.history(idle, { limit: 10 }), { messages: [], top: 0 });
      assert.equal((await e.history(idle, { limit: 0 })).top, 0);
      assert.equal(await e.touchGroup(idle), false, 'a late join finds no group');
      await assert.rejects(e.publish(idle, msg('idle', 'too late')), /no group/);
      for (const id of [online, joined, talked]) assert.ok(await e.getGroup(id), `group ${id} is kept`);
      assert.deepEqual(await e.sweepIdle(), [], 'a second sweep at the same time removes nothing');
      if (admin) {
        const k = groupKeys(idle);
        // Its wrong-password counts went with it (the throttle lists them among the group's owned keys).
        // The dedupe set too, whatever its TTL says.
        for (const key of [k.meta, k.history, k.members, k.owned, k.sent, authFailureKey(idle, '203.0.113.9'), extra])
          assert.equal(await admin.exists(key), 0, `${key} deleted`);
        assert.equal(await admin.zscore(GROUP_INDEX, idle), null, 'out of the index');
      }
      assert.equal(await e.countGroups(), 3);

      // A period after the join and the message, those two go; the member online keeps hers.
      clock.advance(R * 1000 - 1000);
      assert.deepEqual(sorted(await e.sweepIdle()), sorted([joined, talked]));
      assert.ok(await e.getGroup(online));
      // Leaving counts as activity: once she leaves, the group goes a period later.
      await e.removeMember(online, 'n1/1');
      clock.advance(R * 1000 - 1);
      assert.deepEqual(await e.sweepIdle(), []);
      clock.advance(1);
      assert.deepEqual(await e.sweepIdle(), [online]);
      assert.deepEqual(sorted(removedHook), sorted([idle, joined, talked, online]));

      assert.equal(await e.hasGroups(), false, '"no chats available" once every group is gone');
      assert.equal(await e.countGroups(), 0);
      const next = await e.createGroup(rec('new'));
      assert.equal(next.id, '4', 'IDs are never reused');
      assert.equal(await e.hasGroups(), true);
    });

    test('removed groups’ IDs stay taken across restarts (and journal compactions)', async () => {
      const clock = testClock();
      const s: Settings = { retention: 10, clock: clock.now };
      let e = await track(h.fresh(s));
      for (const who of ['a', 'b', 'c']) await e.createGroup(rec(who));
      clock.advance(10_000);
      assert.deepEqual(sorted(await e.sweepIdle()), ['0', '1', '2']);
      e = await track(h.reopen(e, s));
      assert.equal(await e.hasGroups(), false);
      e = await track(h.reopen(e, s)); // the memory engine compacts at every start
      assert.equal(await e.hasGroups(), false);
      assert.equal(await e.getGroup('0'), null);
      assert.equal((await e.createGroup(rec('d'))).id, '3');
      e = await track(h.reopen(e, s));
      assert.equal((await e.createGroup(rec('e'))).id, '4');
      assert.equal(await e.countGroups(), 2);
    });

    test('an idle group is removed by the engine’s own sweeper (1 s retention, real time), and after removals hasGroups is false', async () => {
      const removed: string[] = [];
      const e = await track(h.fresh({ retention: 1, onRemoved: (id) => removed.push(id) }));
      const g = (await e.createGroup(rec('ann'))).id;
      await e.publish(g, msg('ann', 'hello'));
      assert.equal(await e.hasGroups(), true);
      await until(() => removed.length > 0, 8000, 'the sweeper to remove the idle group');
      assert.deepEqual(removed, [g]);
      assert.equal(await e.getGroup(g), null);
      assert.equal(await e.hasGroups(), false);
      assert.deepEqual(await e.history(g, { limit: 10 }), { messages: [], top: 0 });
    });

    test('history is bounded in UTF-8 text bytes as well as in count; seq is unchanged; the newest message always stays', async () => {
      const s: Settings = { limit: 5, maxBytes: 100 };
      let e = await track(h.fresh(s));
      const g = (await e.createGroup(rec('ann'))).id;
      const emoji = '😀'.repeat(10); // 10 characters, 40 bytes
      for (let i = 0; i < 4; i++) await e.publish(g, msg('ann', emoji));
      const seqs = async (): Promise<number[]> => (await e.history(g, { limit: 100 })).messages.map((m) => m.seq);
      assert.deepEqual(await seqs(), [3, 4], '80 bytes fit, 120 do not');
      assert.equal((await e.history(g, { limit: 0 })).top, 4);
      await e.publish(g, msg('ann', 'x'.repeat(150)));
      assert.deepEqual(await seqs(), [5], 'a message over the bound alone is kept, alone');
      for (let i = 0; i < 3; i++) await e.publish(g, msg('ann', 'ab'));
      assert.deepEqual(await seqs(), [6, 7, 8]);
      for (let i = 0; i < 6; i++) await e.publish(g, msg('ann', 'c'));
      assert.deepEqual(await seqs(), [10, 11, 12, 13, 14], 'the count bound still applies');
      assert.deepEqual(await e.history(g, { since: 11, limit: 100 }).then((p) => p.messages.map((m) => m.seq)), [12, 13, 14]);
      e = await track(h.reopen(e, s));
      assert.deepEqual(await seqs(), [10, 11, 12, 13, 14], 'the same after a restart');
      await e.publish(g, msg('ann', emoji));
      await e.publish(g, msg('ann', emoji));
      assert.deepEqual(await seqs(), [12, 13, 14, 15, 16], '3 + 80 bytes');
      await e.publish(g, msg('ann', emoji));
      assert.deepEqual(await seqs(), [16, 17], 'byte bound after a restart');
      assert.equal((await e.history(g, { limit: 0 })).top, 17);
    });

    test('the count stays exact when HISTORY_LIMIT is lowered, when the byte bound goes off and on, and (Redis) when the stream was changed by something else', async () => {
      const s: Settings = { limit: 10, maxBytes: 1000 };
      let e = await track(h.fresh(s));
      const g = (await e.createGroup(rec('ann'))).id;
      const seqs = async (): Promise<number[]> => (await e.history(g, { limit: 100 })).messages.map((m) => m.seq);
      const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
      for (let i = 0; i < 12; i++) await e.publish(g, msg('ann', 'm'));
      assert.deepEqual(await seqs(), range(3, 12));
      e = await track(h.reopen(e, { limit: 4, maxBytes: 1000 }));
      await e.publish(g, msg('ann', 'm'));
      assert.deepEqual(await seqs(), range(10, 13), 'a lowered limit drops several at once');
      e = await track(h.reopen(e, { limit: 4, maxBytes: 0 }));
      for (const text of ['mmmmm', 'mmm', 'm']) await e.publish(g, msg('ann', text)); // seqs 14, 15, 16
      assert.deepEqual(await seqs(), range(13, 16), 'count only');
      e = await track(h.reopen(e, { limit: 6, maxBytes: 1000 }));
      for (let i = 0; i < 3; i++) await e.publish(g, msg('ann', 'm'));
      assert.deepEqual(await seqs(), range(14, 19), 'the byte bound back on, the limit raised');
      const admin = h.inspect();
      if (admin) {
        // An entry removed behind the script's back: the oldest seq it keeps no longer matches.
        await admin.xdel(groupKeys(g).history, '14-0');
        await e.publish(g, msg('ann', 'm'));
        assert.deepEqual(await seqs(), range(15, 20), 'counted again: nothing more dropped than the limit asks');
        // The group's byte total and oldest seq match the stream again: 15 has 3 bytes, the rest 1
        // (not the 5 bytes of the entry removed, nor the 3 of one read but not dropped).
        const kept = async (): Promise<[string | null, string | null]> => admin.hmget(groupKeys(g).meta, 'hb', 'lo') as Promise<[string | null, string | null]>;
        assert.deepEqual(await kept(), ['8', '15']);
        await e.publish(g, msg('ann', 'm'));
        assert.deepEqual(await seqs(), range(16, 21));
        assert.deepEqual(await kept(), ['6', '16']);
      }
    });

    test('one large message drops many small ones at once', async () => {
      const e = await track(h.fresh({ limit: 500, maxBytes: 100 }));
      const g = (await e.createGroup(rec('ann'))).id;
      for (let i = 0; i < 150; i++) await e.publish(g, msg('ann', 'a'));
      const seqs = async (): Promise<number[]> => (await e.history(g, { limit: 1000 })).messages.map((m) => m.seq);
      assert.deepEqual(await seqs(), Array.from({ length: 100 }, (_, i) => 51 + i));
      await e.publish(g, msg('ann', 'b'.repeat(90)));
      assert.deepEqual(await seqs(), [...Array.from({ length: 10 }, (_, i) => 141 + i), 151], '90 small ones make room');
    });

    test('the dedupe set never lapses while keyed sends go on, and its TTL is renewed only once 10 % of it has passed', { skip: name === 'memory' && 'Redis engines: the set is a Redis key with a TTL' }, async () => {
      const clock = testClock();
      const e = await track(h.fresh({ clock: clock.now }));
      const admin = h.inspect();
      assert.ok(admin);
      const g = (await e.createGroup(rec('ann'))).id;
      const key = groupKeys(g).sent;
      const ttlMs = 600_000; // DEDUPE_TTL_SECONDS' default
      let n = 0;
      const keyed = (): Promise<unknown> => e.publish(g, { ...msg('ann', `k${++n}`), dedupe: `J s${n}` });
      await keyed();
      const first = await admin.pttl(key);
      assert.ok(first > ttlMs - 5_000 && first <= ttlMs, `the first keyed send sets the TTL (${first} ms)`);
      // A marker TTL the script would overwrite if it renewed.
      await admin.pexpire(key, 5 * ttlMs);
      clock.advance(ttlMs * 0.05);
      await keyed();
      assert.ok((await admin.pttl(key)) > 4 * ttlMs, 'not renewed while 95 % of it is left');
      clock.advance(ttlMs * 0.06);
      await keyed();
      const renewed = await admin.pttl(key);
      assert.ok(renewed > ttlMs - 5_000 && renewed <= ttlMs, `renewed once under 90 % was left (${renewed} ms)`);
      // Keyless sends leave it alone.
      await admin.pexpire(key, 5 * ttlMs);
      clock.advance(ttlMs * 0.5);
      await e.publish(g, msg('ann', 'plain'));
      assert.ok((await admin.pttl(key)) > 4 * ttlMs, 'a keyless send does not touch the set');
    });

    for (const maxBytes of [0, 1000])
      test(`a keyed send whose history write fails leaves no dedupe record behind: its retry is stored, not acked with a seq that was never kept (byte bound ${maxBytes === 0 ? 'off' : 'on'})`, { skip: name === 'memory' && 'Redis engines: publish.lua records the id in Redis' }, async () => {
        const e = await track(h.fresh({ maxBytes }));
        const admin = h.inspect();
        assert.ok(admin);
        const g = (await e.createGroup(rec('ann'))).id;
        const k = groupKeys(g);
        await e.publish(g, msg('ann', 'first')); // with the byte bound on, `hb` and `lo` now exist
        // A history key of the wrong type makes the script's XADD fail, or (byte bound on, with the
        // oldest seq unknown so that the script must count) its XLEN before it.
        await admin.del(k.history);
        await admin.set(k.history, 'not a stream');
        if (maxBytes > 0) await admin.hdel(k.meta, 'lo');
        await assert.rejects(e.publish(g, { ...msg('ann', 'lost'), dedupe: 'J s1' }), /WRONGTYPE/);
        assert.equal(await admin.zscore(k.sent, 'J s1'), null, 'no record left behind');
        assert.equal(await admin.hget(k.meta, 'seq'), '1', 'the seq was not bumped');
        await admin.del(k.history);
        const again = await e.publish(g, { ...msg('ann', 'lost'), dedupe: 'J s1' });
        assert.deepEqual([again.seq, again.duplicate], [2, undefined], 'the retry is a new message');
        assert.deepEqual((await e.history(g, { limit: 10 })).messages.map((m) => m.text), ['lost']);
      });

    test('a trim by bytes counts again when `lo` is stale (a node on the previous script trimmed the stream): the bound holds and the byte total stays true', { skip: name === 'memory' && 'Redis engines: `lo` is in the group hash' }, async () => {
      const e = await track(h.fresh({ limit: 10, maxBytes: 100 }));
      const admin = h.inspect();
      assert.ok(admin);
      const g = (await e.createGroup(rec('ann'))).id;
      const k = groupKeys(g);
      for (let i = 0; i < 5; i++) await e.publish(g, msg('ann', 'a'.repeat(10)));
      assert.deepEqual(await admin.hmget(k.meta, 'hb', 'lo'), ['50', '1']);
      // What the previous script did: it trimmed with XTRIM and kept `hb` right, but knew nothing of `lo`.
      await admin.xtrim(k.history, 'MAXLEN', 3);
      await admin.hset(k.meta, 'hb', 30);
      // 30 + 80 bytes: over the byte bound, under the count bound, so this goes the walk-and-XTRIM way.
      await e.publish(g, msg('ann', 'x'.repeat(80)));
      const seqs = (await e.history(g, { limit: 100 })).messages.map((m) => m.seq);
      assert.deepEqual(seqs, [4, 5, 6], 'one 10-byte message made room: 10 + 10 + 80 = 100');
      assert.deepEqual(await admin.hmget(k.meta, 'hb', 'lo'), ['100', '4']);
    });

    test('epochs are stable over restarts; a group recreated on reset data gets another', async () => {
      let e = await track(h.fresh());
      const made = await e.createGroup(rec('ann'));
      e = await track(h.reopen(e));
      assert.equal((await e.getGroup(made.id))?.epoch, made.epoch);
      e = await track(h.reopen(e));
      assert.equal((await e.getGroup(made.id))?.epoch, made.epoch);
      const again = await track(h.fresh()); // a data reset (fresh DATA_DIR, Redis flushed)
      const remade = await again.createGroup(rec('ann'));
      assert.equal(remade.id, made.id, 'the same ID, as after a reset');
      assert.notEqual(remade.epoch, made.epoch);
    });

    test('data from before epochs, retention and the index is carried over: listed, counted, given a stable epoch, and bounded', async () => {
      const clock = testClock();
      const texts = ['😀'.repeat(10), 'b'.repeat(30), 'c'.repeat(20)]; // 90 bytes: within the bound
      const s: Settings = { maxGroups: 3, retention: 30, maxBytes: 100, limit: 50, clock: clock.now };
      let e = await track(
        h.legacy(
          [
            { id: '0', creator: 'ann', texts },
            { id: '2', creator: 'bob' },
          ],
          3,
          s,
        ),
      );
      assert.equal(await e.hasGroups(), true);
      assert.equal(await e.countGroups(), 2);
      const admin = h.inspect();
      if (admin) {
        assert.equal(await admin.exists(GROUP_INDEX_BUILT), 1, 'the index was built at start');
        assert.equal(await admin.exists(GROUPS_EXIST), 1, 'the old flag stays, for nodes of the previous version during a rolling upgrade');
        assert.deepEqual(sorted(await admin.zrange(GROUP_INDEX, '0', '-1')), ['0', '2']);
        // A node of the previous version creates a group after the index was built: the next node start indexes it.
        await admin.hset(groupKeys('3').meta, 'h', rec('old').passwordHash, 'c', 'old', 'at', '1600000000000', 'seq', '0');
        await admin.set(ID_COUNTER, '4');
        e = await track(h.reopen(e, { ...s, maxGroups: 10 }));
        assert.equal(await e.countGroups(), 3, 'the late group is counted after a restart');
        assert.ok(await e.getGroup('3'));
        await admin.del(groupKeys('3').meta);
        await admin.zrem(GROUP_INDEX, '3');
        await admin.set(ID_COUNTER, '3'); // as the rest of this test expects
        e = await track(h.reopen(e, s));
      }
      const epoch = (await e.getGroup('0'))?.epoch;
      assert.ok(epoch && epoch.length >= 16, 'an old group gets an epoch');
      assert.deepEqual((await e.history('0', { limit: 10 })).messages.map((m) => m.seq), [1, 2, 3], 'old history is kept as it was');
      e = await track(h.reopen(e, s));
      assert.equal((await e.getGroup('0'))?.epoch, epoch, 'the epoch it got is kept');
      assert.equal((await e.getGroup('2'))?.epoch, (await e.getGroup('2'))?.epoch);
      // Old history is counted in bytes (emoji as 4 bytes each) at the next message: 40 + 30 + 20 + 15 > 100.
      clock.advance(10_000);
      await e.publish('0', msg('ann', 'd'.repeat(15)));
      assert.deepEqual((await e.history('0', { limit: 10 })).messages.map((m) => m.seq), [2, 3, 4]);
      // The ceiling counts old groups too; the counter is not reused.
      assert.equal((await e.createGroup(rec('cy'))).id, '3');
      await assert.rejects(e.createGroup(rec('dan')), GroupLimitError);
      // Old groups' retention period starts when they were first found (here: at the first start).
      clock.advance(20_000);
      assert.deepEqual(await e.sweepIdle(), ['2'], 'the old idle group goes a period after the upgrade; the one with a new message stays');
      assert.equal(await e.countGroups(), 2);
    });

    if (name !== 'memory') {
      test('several nodes sweeping at once remove each idle group exactly once', async () => {
        const clock = testClock();
        const seen: string[] = [];
        const s: Settings = { retention: 5, clock: clock.now, onRemoved: (id) => seen.push(id) };
        const a = await track(h.fresh(s));
        const b = await track(h.peer(a, s));
        const c = await track(h.peer(a, s));
        const ids = (await Promise.all(Array.from({ length: 30 }, (_, i) => a.createGroup(rec(`u${i}`))))).map((g) => g.id);
        clock.advance(5000);
        const [ra, rb, rc] = await Promise.all([a.sweepIdle(), b.sweepIdle(), c.sweepIdle()]);
        assert.deepEqual(sorted([...ra, ...rb, ...rc]), sorted(ids), 'every group removed, none twice');
        assert.deepEqual(sorted(seen), sorted(ids));
        assert.equal(await b.hasGroups(), false);
        assert.equal(await c.countGroups(), 0);
      });

      test('publish stays one script call per message (activity and byte bound inside it)', async () => {
        const e = await track(h.fresh({ maxBytes: 1000, limit: 10 }));
        const g = (await e.createGroup(rec('ann'))).id;
        await e.publish(g, msg('ann', 'warm-up')); // the script is loaded where the group lives
        const calls = (): Promise<Map<string, number>> => h.commandCalls();
        const before = await calls();
        for (let i = 0; i < 40; i++) await e.publish(g, msg('ann', 'x'.repeat(100)));
        const afterCalls = await calls();
        const delta = (c: string): number => (afterCalls.get(c) ?? 0) - (before.get(c) ?? 0);
        // Commands a script runs count too: one EVALSHA per message, and inside it one HMGET (seq and
        // the byte total) and one HSET (both back); trimming reads only the entries that go.
        assert.equal(delta('evalsha'), 40, 'one EVALSHA (round trip) per message');
        assert.equal(delta('eval'), 0, 'no script reloads');
        for (const c of ['hmget', 'hset', 'xadd', 'publish']) assert.equal(delta(c) + delta(c === 'publish' ? 'spublish' : '_'), 40, `one ${c} per message`);
        for (const c of ['hget', 'hexists', 'hincrby']) assert.equal(delta(c), 0, `no ${c}`);
        assert.equal(delta('zadd'), 0, 'the index is not touched per message (and no dedupe window without a client id)');
        assert.equal(delta('zscore'), 0, 'no dedupe lookup without a client id');
        // Once full, the count bound drops one entry per message and the bytes fit: the script reads
        // the one that goes and XADD's exact MAXLEN drops it. The count comes from the oldest seq kept
        // (`lo` in the group hash), so no XLEN, and no XTRIM.
        assert.equal(delta('xlen'), 0, 'no XLEN per message');
        assert.equal(delta('xtrim'), 0, 'no XTRIM while the bytes fit');
        assert.equal(delta('xrange'), 40 - 9, 'one XRANGE per message once the history is full');
        assert.equal((await e.history(g, { limit: 100 })).messages.length, 10);
      });
    }
  });
}
