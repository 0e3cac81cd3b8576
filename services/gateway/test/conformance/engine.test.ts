// One behavioural suite for every Engine, run in-process and organised by the
// engine's interfaces (Lifecycle, GroupStore, Broker, PresenceManager,
// Throttle): the embedded MemoryEngine (temp DATA_DIR), the RedisEngine on a
// real redis-server, and the RedisEngine on a real 3-master Redis Cluster
// (REDIS_CLUSTER_NODES).
// Then what only the Redis engine has: several processes' worth of engines on
// one Redis, a counter gone backwards, a killed subscriber connection, an
// outage, a Redis that stops answering. (Cluster-only cases:
// integration/redis-cluster-sharded.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { EngineUnavailableError, type ChannelEvent, type Engine, type HistoryQuery, type StoredMessage } from '../../src/engine/engine.js';
import { MemoryEngine } from '../../src/engine/memory.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { DEDUPE_TRIM_EVERY } from '../../src/engine/redis/scripts.js';
import { ID_COUNTER, NODE_REGISTRY, groupKeys, memberValue, nodeKeys } from '../../src/engine/redis/keys.js';
import { tempDir } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis.js';
import { RedisClusterServer } from '../helpers/redis-cluster-server.js';
import { listen } from '../helpers/channels.js';
import { type Inbox, until } from '../helpers/wait.js';

const HISTORY_LIMIT = 5;
const rec = (creator: string) => ({ passwordHash: `scrypt$1024$8$1$salt$${creator}`, creator, createdAt: 1_700_000_000_000 });
const msg = (from: string, text: string) => ({ from, text, ts: Date.now(), origin: `node/${from}` });

function redisEngine(server: RedisServer | RedisClusterServer, nodeId = 'conf-a', env: Record<string, string> = {}): RedisEngine {
  const config = loadConfig({
    ...(server instanceof RedisClusterServer ? { REDIS_CLUSTER_NODES: server.seeds } : { REDIS_URL: server.url }),
    CHAT_SECRET: 'conformance-secret-0123456789',
    HISTORY_LIMIT: String(HISTORY_LIMIT),
    NODE_ID: nodeId,
    LOG_LEVEL: 'silent',
    ...env,
  });
  return new RedisEngine(config);
}

/** The group's top seq. */
const top = async (e: Engine, g: string): Promise<number> => (await e.history(g, { limit: 0 })).top;
/** A page of history's messages. */
const page = async (e: Engine, g: string, q: HistoryQuery): Promise<StoredMessage[]> => (await e.history(g, q)).messages;

async function nextMessage(inbox: Inbox<ChannelEvent>, what: string): Promise<StoredMessage> {
  const ev = await inbox.next(5000, what, (e) => e.kind === 'message');
  assert.equal(ev.kind, 'message');
  return ev.message;
}

/** What a fresh engine may be given besides the defaults. */
interface FreshOptions {
  /** DEDUPE_WINDOW. */
  dedupeWindow?: number;
}

interface Harness {
  /** A started engine on empty state. */
  fresh(o?: FreshOptions): Promise<Engine>;
  /** A new engine instance on the state `e` left (e is stopped first). */
  reopen(e: Engine): Promise<Engine>;
  close(): Promise<void>;
}

const envOf = (o: FreshOptions): Record<string, string> => (o.dedupeWindow !== undefined ? { DEDUPE_WINDOW: String(o.dedupeWindow) } : {});

const harnesses: Record<'memory' | 'redis' | 'redis-cluster', () => Promise<Harness>> = {
  memory: async () => {
    const dirs = new WeakMap<Engine, { dir: string; o: FreshOptions }>();
    const open = async (dir: string, o: FreshOptions): Promise<Engine> => {
      const e = new MemoryEngine({ dataDir: dir, historyLimit: HISTORY_LIMIT, ...(o.dedupeWindow !== undefined ? { dedupeWindow: o.dedupeWindow } : {}) });
      dirs.set(e, { dir, o });
      await e.start();
      return e;
    };
    return {
      fresh: (o = {}) => open(tempDir('chat-conf-'), o),
      reopen: async (e) => {
        await e.stop();
        const was = dirs.get(e) as { dir: string; o: FreshOptions };
        return open(was.dir, was.o);
      },
      close: async () => undefined,
    };
  },
  redis: async () => {
    const server = await RedisServer.start();
    return {
      fresh: async (o = {}) => {
        await server.admin.flushall();
        const e = redisEngine(server, 'conf-a', envOf(o));
        await e.start();
        return e;
      },
      reopen: async (e) => {
        await e.stop();
        const again = redisEngine(server, 'conf-b');
        await again.start();
        return again;
      },
      close: () => server.close(),
    };
  },
  'redis-cluster': async () => {
    const cluster = await RedisClusterServer.start(3);
    return {
      fresh: async (o = {}) => {
        await cluster.flushall();
        const e = redisEngine(cluster, 'conf-a', envOf(o));
        await e.start();
        return e;
      },
      reopen: async (e) => {
        await e.stop();
        const again = redisEngine(cluster, 'conf-b');
        await again.start();
        return again;
      },
      close: () => cluster.close(),
    };
  },
};

for (const name of ['memory', 'redis', 'redis-cluster'] as const) {
  describe(`engine conformance: ${name}`, () => {
    let h: Harness;
    const open: Engine[] = [];
    const fresh = async (o?: FreshOptions): Promise<Engine> => {
      const e = await h.fresh(o);
      open.push(e);
      return e;
    };
    before(async () => {
      h = await harnesses[name]();
    });
    after(async () => {
      for (const e of open) await e.stop();
      await h.close();
    });

    describe('Lifecycle', () => {
      test('is up once started, down once stopped', async () => {
        const e = await h.fresh();
        assert.equal(e.isUp(), true);
        await e.stop();
        assert.equal(e.isUp(), false);
      });
    });

    describe('GroupStore', () => {
      test('group IDs come from one counter starting at "0"; records read back', async () => {
        const e = await fresh();
        assert.equal(await e.hasGroups(), false);
        assert.equal(await e.getGroup('0'), null);
        const ids: string[] = [];
        const epochs: string[] = [];
        for (const who of ['ann', 'bob', 'cy']) {
          const g = await e.createGroup(rec(who));
          ids.push(g.id);
          epochs.push(g.epoch);
        }
        assert.deepEqual(ids, ['0', '1', '2']);
        assert.equal(new Set(epochs).size, 3, 'every group gets its own random epoch');
        assert.equal(await e.hasGroups(), true);
        assert.deepEqual(await e.getGroup('1'), { id: '1', ...rec('bob'), epoch: epochs[1] });
        assert.equal(await e.getGroup('3'), null);
        assert.equal(await e.getGroup('not-an-id'), null);
        assert.equal(await top(e, '0'), 0);
      });

      test('removeGroup: the group, its history and presence go, subscribers get `closed`, its ID is never reused', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const kept = (await e.createGroup(rec('bob'))).id;
        const events = await listen(e, g);
        await e.publish(g, msg('ann', 'gone soon'));
        await e.addMember(g, 'node/ann', 'ann');
        assert.equal(await e.removeGroup(g), true);
        await events.next(5000, 'closed', (ev) => ev.kind === 'closed');
        assert.equal(await e.getGroup(g), null);
        assert.equal(await e.touchGroup(g), false);
        assert.deepEqual(await e.history(g, { limit: 10 }), { messages: [], top: 0 });
        assert.deepEqual(await e.members(g), []);
        await assert.rejects(e.publish(g, msg('ann', 'late')), /no group/);
        assert.equal(await e.removeGroup(g), false, 'a second removal finds nothing');
        assert.equal(await e.removeGroup('404'), false);
        assert.equal(await e.countGroups(), 1);
        assert.notEqual((await e.getGroup(kept)), null, 'other groups stay');
        assert.equal((await e.createGroup(rec('cy'))).id, '2', 'the removed ID is not handed out again');
        const again = await h.reopen(e);
        open.push(again);
        assert.equal(await again.getGroup(g), null, 'removed for good');
        assert.equal((await again.createGroup(rec('dan'))).id, '3');
      });

      test('concurrent creates get distinct consecutive IDs', async () => {
        const e = await fresh();
        const got = await Promise.all(Array.from({ length: 50 }, (_, i) => e.createGroup(rec(`u${i}`))));
        assert.deepEqual(got.map((g) => Number(g.id)).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
        for (const g of got) assert.equal((await e.getGroup(g.id))?.creator, g.creator);
      });

      test('a reopened engine keeps groups and history and never reuses or overwrites an ID', async () => {
        let e = await fresh();
        const ann = await e.createGroup(rec('ann'));
        const bob = await e.createGroup(rec('bob'));
        await e.publish('1', msg('bob', 'kept'));
        e = await h.reopen(e);
        open.push(e);
        assert.equal(await e.hasGroups(), true);
        assert.deepEqual(await e.getGroup('0'), { id: '0', ...rec('ann'), epoch: ann.epoch });
        assert.equal((await e.createGroup(rec('cy'))).id, '2');
        assert.deepEqual(await e.getGroup('1'), { id: '1', ...rec('bob'), epoch: bob.epoch });
        assert.deepEqual((await page(e, '1', { limit: 10 })).map((m) => [m.seq, m.text]), [[1, 'kept']]);
        assert.equal(await top(e, '1'), 1);
      });
    });

    describe('Broker', () => {
      test('publish: seq grows by one per message, the top seq follows, concurrent sends get distinct seqs', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const other = (await e.createGroup(rec('bob'))).id;
        const first = await e.publish(g, msg('ann', 'one'));
        assert.equal(first.seq, 1);
        assert.equal(first.groupId, g);
        assert.equal(first.text, 'one');
        assert.equal((await e.publish(g, msg('ann', 'two'))).seq, 2);
        assert.equal(await top(e, g), 2);
        assert.equal(await top(e, other), 0, 'seq is per group');
        const seqs = (await Promise.all(Array.from({ length: 20 }, (_, i) => e.publish(g, msg('ann', `c${i}`))))).map((m) => m.seq);
        assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 3));
        assert.equal(await top(e, g), 22);
      });

      test('idempotent sends: a retry of a dedupe key is answered with the first seq, not stored or delivered again; other keys and keyless sends are stored', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const other = (await e.createGroup(rec('bob'))).id;
        const inbox = await listen(e, g);
        const keyed = (text: string, key: string) => ({ ...msg('ann', text), dedupe: key });
        const first = await e.publish(g, keyed('once', 'J1 s1'));
        assert.equal(first.seq, 1);
        assert.equal(first.duplicate, undefined);
        const again = await e.publish(g, keyed('once', 'J1 s1'));
        assert.equal(again.seq, 1, 'the retry is answered with the first seq');
        assert.equal(again.duplicate, true);
        // The same client id from another member (join id), or a keyless message, is a message of its own.
        assert.equal((await e.publish(g, keyed('theirs', 'J2 s1'))).seq, 2);
        assert.equal((await e.publish(g, msg('ann', 'plain'))).seq, 3);
        assert.equal((await e.publish(g, msg('ann', 'plain'))).seq, 4);
        // Keys are per group.
        assert.equal((await e.publish(other, keyed('elsewhere', 'J1 s1'))).seq, 1);
        // Retries racing each other (and their first) store one message.
        const raced = await Promise.all(Array.from({ length: 6 }, () => e.publish(g, keyed('raced', 'J1 s2'))));
        assert.deepEqual(new Set(raced.map((m) => m.seq)), new Set([5]));
        assert.equal(raced.filter((m) => !m.duplicate).length, 1, 'one of them stored it');
        assert.equal(await top(e, g), 5);
        assert.deepEqual((await page(e, g, { limit: 10 })).map((m) => m.text), ['once', 'theirs', 'plain', 'plain', 'raced']);
        const delivered: number[] = [];
        for (let i = 0; i < 5; i++) delivered.push((await nextMessage(inbox, `message ${i + 1}`)).seq);
        assert.deepEqual(delivered, [1, 2, 3, 4, 5], 'each stored message delivered once');
        await e.publish(g, msg('ann', 'marker'));
        assert.equal((await nextMessage(inbox, 'the marker')).seq, 6, 'no second delivery of a retried send came before it');
      });

      test('idempotent sends: the window keeps the newest DEDUPE_WINDOW keys per group, forgets older ones, and survives a reopen', async () => {
        let e = await fresh({ dedupeWindow: 3 });
        const g = (await e.createGroup(rec('ann'))).id;
        const keyed = (text: string, i: number): Promise<[number, boolean | undefined]> =>
          e.publish(g, { ...msg('ann', text), dedupe: `J s${i}` }).then((m) => [m.seq, m.duplicate]);
        for (let i = 1; i <= 4; i++) assert.deepEqual(await keyed(`k${i}`, i), [i, undefined]);
        // The newest three are always known: their retries get their first seq.
        for (const i of [4, 3, 2]) assert.deepEqual(await keyed(`k${i}`, i), [i, true]);
        // The window is a bound too. The Redis engines cut the set every DEDUPE_TRIM_EVERY messages (the
        // memory engine at once): once that many more keyed sends went by, k1 is forgotten and its
        // retry is a new message.
        const T = DEDUPE_TRIM_EVERY;
        for (let i = 5; i <= 4 + T; i++) assert.deepEqual(await keyed(`n${i}`, i), [i, undefined]);
        assert.deepEqual(await keyed('k1', 1), [T + 5, undefined], 'outside the window: a new message');
        e = await h.reopen(e);
        open.push(e);
        // The newest three (the last two and the re-stored k1) are still known after a restart.
        for (const [i, seq] of [[T + 3, T + 3], [T + 4, T + 4], [1, T + 5]] as const) assert.deepEqual(await keyed('again', i), [seq, true], `s${i}`);
        assert.equal(await top(e, g), T + 5);
      });

      test('publish to a group that does not exist fails and stores nothing', async () => {
        const e = await fresh();
        await assert.rejects(e.publish('7', msg('ann', 'secret text')), (err: Error) => {
          assert.match(err.message, /no group 7/);
          assert.doesNotMatch(JSON.stringify({ ...err, message: err.message }), /secret text/, 'the error carries no message text');
          assert.ok(!(err instanceof EngineUnavailableError));
          return true;
        });
        assert.equal(await top(e, '7'), 0);
        assert.deepEqual(await page(e, '7', { limit: 10 }), []);
      });

      test('history: newest N oldest first, since a seq, capped at HISTORY_LIMIT, text as sent', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        assert.deepEqual(await page(e, g, { limit: 10 }), []);
        const odd = 'ünï "quoted" \\ / {"t":"m"} \u2028 line';
        for (let i = 1; i <= 8; i++) await e.publish(g, msg('ann', i === 8 ? odd : `m${i}`));
        const seqs = (ms: StoredMessage[]): number[] => ms.map((m) => m.seq);
        assert.deepEqual(seqs(await page(e, g, { limit: 100 })), [4, 5, 6, 7, 8], 'only HISTORY_LIMIT kept');
        assert.deepEqual(seqs(await page(e, g, { limit: 2 })), [7, 8]);
        assert.deepEqual(seqs(await page(e, g, { since: 5, limit: 100 })), [6, 7, 8]);
        assert.deepEqual(seqs(await page(e, g, { since: 1, limit: 100 })), [4, 5, 6, 7, 8], 'since older than what is kept');
        assert.deepEqual(seqs(await page(e, g, { since: 0, limit: 2 })), [4, 5]);
        assert.deepEqual(await page(e, g, { since: 8, limit: 100 }), []);
        const last = (await page(e, g, { since: 7, limit: 1 }))[0];
        assert.equal(last?.text, odd);
        assert.equal(last?.from, 'ann');
        assert.equal(typeof last?.ts, 'number');
      });

      test('history pages back with `before` (exclusive) across everything kept: no gap, no overlap', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        for (let i = 1; i <= 8; i++) await e.publish(g, msg('ann', `m${i}`));
        const seqs = (ms: StoredMessage[]): number[] => ms.map((m) => m.seq);
        assert.deepEqual(seqs(await page(e, g, { before: 7, limit: 2 })), [5, 6]);
        assert.deepEqual(seqs(await page(e, g, { before: 100, limit: 100 })), [4, 5, 6, 7, 8], 'before past the top: everything kept');
        assert.deepEqual(seqs(await page(e, g, { before: 5, limit: 100 })), [4], 'only what HISTORY_LIMIT kept');
        assert.deepEqual(await page(e, g, { before: 4, limit: 100 }), []);
        assert.deepEqual(await page(e, g, { before: 1, limit: 100 }), []);
        // Every page size, from the newest back to the oldest kept: each message exactly once.
        for (const size of [1, 2, 3, 5]) {
          const got: number[] = [];
          let cursor: number | undefined;
          for (let pages = 0; pages < 10; pages++) {
            const p = await page(e, g, cursor === undefined ? { limit: size } : { before: cursor, limit: size });
            if (p.length === 0) break;
            assert.ok(p.length <= size);
            got.unshift(...seqs(p));
            cursor = p[0]?.seq;
          }
          assert.deepEqual(got, [4, 5, 6, 7, 8], `pages of ${size}`);
        }
        const withTop = await e.history(g, { before: 6, limit: 1 });
        assert.deepEqual([seqs(withTop.messages), withTop.top], [[5], 8], 'the top of the group, not of the page');
      });

      test('a message published through the server API keeps `api: true` in history and on the channel', async () => {
        let e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const events = await listen(e, g);
        await e.publish(g, msg('ann', 'member'));
        await e.publish(g, { ...msg('app', 'from the api'), api: true });
        const live = [await nextMessage(events, 'member'), await nextMessage(events, 'api')];
        assert.deepEqual(live.map((m) => [m.seq, m.api]), [[1, undefined], [2, true]]);
        assert.deepEqual((await page(e, g, { limit: 10 })).map((m) => [m.seq, m.api]), [[1, undefined], [2, true]]);
        e = await h.reopen(e);
        open.push(e);
        assert.deepEqual((await page(e, g, { limit: 10 })).map((m) => [m.seq, m.text, m.api]), [[1, 'member', undefined], [2, 'from the api', true]]);
      });

      test('history returns the top seq with every page: trimmed, empty, past the end, or limit 0', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        assert.deepEqual(await e.history(g, { limit: 10 }), { messages: [], top: 0 });
        for (let i = 1; i <= 8; i++) await e.publish(g, msg('ann', `m${i}`));
        const recent = await e.history(g, { limit: 2 });
        assert.deepEqual([recent.messages.map((m) => m.seq), recent.top], [[7, 8], 8]);
        const after = await e.history(g, { since: 3, limit: 1 });
        assert.deepEqual([after.messages.map((m) => m.seq), after.top], [[4], 8], 'the top of the group, not of the page');
        assert.deepEqual(await e.history(g, { since: 8, limit: 10 }), { messages: [], top: 8 });
        assert.deepEqual(await e.history(g, { limit: 0 }), { messages: [], top: 8 });
        assert.deepEqual(await e.history('404', { limit: 10 }), { messages: [], top: 0 }, 'a group that does not exist');
      });

      test('subscribe delivers each message once in seq order, to the one handler with its group; unsubscribe stops delivery', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const g2 = (await e.createGroup(rec('bob'))).id;
        const a = await listen(e, g);
        const b = await listen(e, g2);
        for (let i = 1; i <= 10; i++) await e.publish(g, msg('ann', `m${i}`));
        for (let i = 1; i <= 10; i++) {
          const m = await nextMessage(a, `message ${i}`);
          assert.deepEqual([m.seq, m.text, m.from, m.origin], [i, `m${i}`, 'ann', 'node/ann']);
        }
        await e.unsubscribe(g);
        await e.publish(g, msg('ann', 'unheard'));
        await e.publish(g2, msg('bob', 'marker'));
        // Delivery is in order per engine, so once g2's message is in, g's would have been too.
        assert.equal((await nextMessage(b, 'marker')).text, 'marker');
        assert.deepEqual(a.peek(), [], 'nothing after unsubscribe');
        // Subscribing again works.
        const c = await listen(e, g);
        await e.publish(g, msg('ann', 'again'));
        assert.equal((await nextMessage(c, 'after resubscribe')).seq, 12);
      });

      test('notices reach the subscriber, carry no seq and are not stored', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const a = await listen(e, g);
        await e.notify({ kind: 'joined', groupId: g, name: 'maya', origin: 'n1/5' });
        await e.notify({ kind: 'left', groupId: g, name: 'maya', origin: 'n1/5' });
        assert.deepEqual(await a.next(5000, 'joined notice'), { kind: 'notice', notice: { kind: 'joined', groupId: g, name: 'maya', origin: 'n1/5' } });
        assert.deepEqual(await a.next(5000, 'left notice'), { kind: 'notice', notice: { kind: 'left', groupId: g, name: 'maya', origin: 'n1/5' } });
        assert.equal(await top(e, g), 0);
        assert.deepEqual(await page(e, g, { limit: 10 }), []);
      });
    });

    describe('PresenceManager', () => {
      test('presence: add, list, remove, per group', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const g2 = (await e.createGroup(rec('bob'))).id;
        assert.deepEqual(await e.members(g), []);
        await e.addMember(g, 'n1/1', 'ann');
        await e.addMember(g, 'n1/2', 'maya');
        await e.addMember(g, 'n2/1', 'ann');
        await e.addMember(g2, 'n1/3', 'bob');
        assert.deepEqual((await e.members(g)).sort(), ['ann', 'ann', 'maya']);
        assert.deepEqual(await e.members(g2), ['bob']);
        await e.removeMember(g, 'n1/1');
        await e.removeMember(g, 'n1/404');
        assert.deepEqual((await e.members(g)).sort(), ['ann', 'maya']);
        await e.removeMember(g, 'n1/2');
        await e.removeMember(g, 'n2/1');
        assert.deepEqual(await e.members(g), []);
        assert.deepEqual(await e.members(g2), ['bob']);
      });
    });

    describe('Throttle', () => {
      test('wrong-password limit: per (group, address), counted before the check, locks at max, forgets after a quiet window', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const g2 = (await e.createGroup(rec('bob'))).id;
        const policy = { maxFailures: 3, windowMs: 1000, backoffAfter: 100 };
        for (const n of [1, 2, 3]) assert.deepEqual(await e.throttle.authAttempt(g, '198.51.100.7', policy), { allowed: true, failures: n });
        const locked = await e.throttle.authAttempt(g, '198.51.100.7', policy);
        assert.equal(locked.allowed, false);
        assert.equal(!locked.allowed && locked.locked, true);
        assert.equal((await e.throttle.authAttempt(g, '198.51.100.8', policy)).allowed, true, 'another address is not locked out');
        assert.equal((await e.throttle.authAttempt(g2, '198.51.100.7', policy)).allowed, true, 'another group is not affected');
        const lockedAt = Date.now();
        await until(async () => (await e.throttle.authAttempt(g, '198.51.100.7', policy)).allowed, 5000, 'the lockout window to end');
        assert.ok(Date.now() - lockedAt < 2500, 'unlocked within about the window');
      });

      test('wrong-password limit: parallel attempts are counted atomically; backoff grows; a right password clears the count', async () => {
        const e = await fresh();
        const g = (await e.createGroup(rec('ann'))).id;
        const policy = { maxFailures: 10, windowMs: 60_000, backoffAfter: 2 };
        const t0 = 1_000_000;
        const got = await Promise.all([1, 2, 3, 4].map(() => e.throttle.authAttempt(g, '2001:db8::/64', policy, t0)));
        assert.deepEqual(got.filter((a) => a.allowed).map((a) => (a.allowed ? a.failures : 0)).sort(), [1, 2], 'two pass, then backoff');
        const wait = got.find((a) => !a.allowed);
        assert.ok(wait && !wait.allowed && !wait.locked && wait.retryMs === 1000, 'after 2 failures: wait 1 s');
        assert.equal((await e.throttle.authAttempt(g, '2001:db8::/64', policy, t0 + 1000)).allowed, true, 'the third after 1 s');
        const next = await e.throttle.authAttempt(g, '2001:db8::/64', policy, t0 + 2000);
        assert.ok(!next.allowed && next.retryMs === 1000, 'after 3 failures: 2 s after the last');
        await e.throttle.authSuccess(g, '2001:db8::/64');
        assert.deepEqual(await e.throttle.authAttempt(g, '2001:db8::/64', policy, t0 + 2000), { allowed: true, failures: 1 });
      });

      test('per-address budgets: a fixed window from the first hit', async () => {
        const e = await fresh();
        const hits = await Promise.all(Array.from({ length: 5 }, () => e.throttle.hit('create/203.0.113.9', 60_000)));
        assert.deepEqual(hits.map((h) => h.count).sort(), [1, 2, 3, 4, 5]);
        assert.ok(hits.every((h) => h.resetMs > 0 && h.resetMs <= 60_000));
        assert.equal((await e.throttle.hit('create/203.0.113.10', 60_000)).count, 1, 'another address has its own budget');
        const short = await e.throttle.hit('auth/203.0.113.9', 300);
        assert.equal(short.count, 1);
        await until(async () => (await e.throttle.hit('auth/203.0.113.9', 300)).count === 1, 5000, 'the budget window to end');
      });
    });
  });
}

describe('redis engine: several nodes on one Redis', () => {
  let server: RedisServer;
  const engines: RedisEngine[] = [];
  const node = async (id: string, env: Record<string, string> = {}): Promise<RedisEngine> => {
    const e = redisEngine(server, id, env);
    engines.push(e);
    await e.start();
    return e;
  };
  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    for (const e of engines) await e.stop();
    await server.close();
  });

  test('groups, seq, history, presence and channels are shared; one subscription per group per node', async () => {
    await server.admin.flushall();
    const a = await node('a');
    const b = await node('b');
    const created = await a.createGroup(rec('ann'));
    const g = created.id;
    assert.equal((await b.createGroup(rec('bob'))).id, '1');
    assert.deepEqual(await b.getGroup(g), { id: g, ...rec('ann'), epoch: created.epoch });
    const onA = await listen(a, g);
    const onB = await listen(b, g);
    const [numsub] = (await server.admin.pubsub('NUMSUB', groupKeys(g).channel)).slice(1) as [number];
    assert.equal(numsub, 2);
    await a.publish(g, msg('ann', 'from a'));
    await b.publish(g, msg('bob', 'from b'));
    for (const inbox of [onA, onB]) {
      assert.deepEqual([(await nextMessage(inbox, 'first')).text, (await nextMessage(inbox, 'second')).text], ['from a', 'from b']);
    }
    await a.addMember(g, 'a/1', 'ann');
    await b.addMember(g, 'b/1', 'bob');
    assert.deepEqual((await a.members(g)).sort(), ['ann', 'bob']);
    const policy = { maxFailures: 2, windowMs: 60_000, backoffAfter: 100 };
    await b.throttle.authAttempt(g, '192.0.2.1', policy);
    await a.throttle.authAttempt(g, '192.0.2.1', policy);
    assert.equal((await b.throttle.authAttempt(g, '192.0.2.1', policy)).allowed, false, 'failures on two nodes count together');
    await a.throttle.hit('create/192.0.2.1', 60_000);
    assert.equal((await b.throttle.hit('create/192.0.2.1', 60_000)).count, 2, 'budgets are shared by every node');
  });

  test('a counter gone backwards never overwrites a group: creation takes the next free ID', async () => {
    await server.admin.flushall();
    const a = await node('a2');
    const epochs: string[] = [];
    for (const who of ['ann', 'bob', 'cy']) epochs.push((await a.createGroup(rec(who))).epoch);
    await server.admin.set(ID_COUNTER, '1'); // as if a failover lost two increments
    const created = await a.createGroup(rec('dan'));
    assert.equal(created.id, '3');
    assert.deepEqual(await a.getGroup('1'), { id: '1', ...rec('bob'), epoch: epochs[1] });
    assert.deepEqual(await a.getGroup('2'), { id: '2', ...rec('cy'), epoch: epochs[2] });
    assert.equal((await a.createGroup(rec('eve'))).id, '4');
  });

  test('a killed subscriber connection comes back, resubscribes and asks for a resync', async () => {
    await server.admin.flushall();
    const a = await node('a3');
    const g = (await a.createGroup(rec('ann'))).id;
    const l = await listen(a, g);
    const killed = await server.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    assert.ok(Number(killed) >= 1);
    await l.next(10_000, 'a resync event', (ev) => ev.kind === 'resync');
    assert.equal(a.isUp(), true);
    await a.publish(g, msg('ann', 'after'));
    assert.equal((await nextMessage(l, 'live again')).text, 'after');
  });

  test('a dead node’s members are hidden at once and swept by a live node, with left notices', async () => {
    await server.admin.flushall();
    const watcher = await node('w', { PRESENCE_TTL_SECONDS: '1' });
    const g = (await watcher.createGroup(rec('ann'))).id;
    const l = await listen(watcher, g);
    await watcher.addMember(g, 'w/1', 'ann');
    // What a kill -9'd node leaves behind: its registration and members, and no heartbeat key.
    const dead = 'v.0badc0ffee00';
    await server.admin.sadd(NODE_REGISTRY, dead);
    await server.admin.sadd(nodeKeys(dead).groups, g);
    await server.admin.hset(groupKeys(g).members, 'v/1', memberValue(dead, 'ghost'));
    assert.deepEqual(await watcher.members(g), ['ann'], 'members of a node without a heartbeat are not listed');
    const left = await l.next(5000, 'left notice from the sweep', (ev) => ev.kind === 'notice');
    assert.deepEqual(left, { kind: 'notice', notice: { kind: 'left', groupId: g, name: 'ghost', origin: 'v/1' } });
    assert.equal(await server.admin.hexists(groupKeys(g).members, 'v/1'), 0, 'swept from Redis');
    assert.equal(await server.admin.sismember(NODE_REGISTRY, dead), 0);
    assert.deepEqual(await watcher.members(g), ['ann']);
  });
});

describe('redis engine: Redis goes away and comes back', () => {
  let server: RedisServer;
  let e: RedisEngine;
  before(async () => {
    server = await RedisServer.start({ appendonly: true });
    e = redisEngine(server, 'outage');
    await e.start();
  });
  after(async () => {
    await e.stop();
    await server.close();
  });

  test('calls fail fast with EngineUnavailableError while it is down; state and delivery come back', async () => {
    const created = await e.createGroup(rec('ann'));
    const g = created.id;
    const l = await listen(e, g);
    await e.publish(g, msg('ann', 'before'));
    await server.stop();
    await until(() => !e.isUp(), 5000, 'engine to notice Redis is down');
    const t0 = Date.now();
    await assert.rejects(e.publish(g, msg('ann', 'during')), EngineUnavailableError);
    await assert.rejects(e.getGroup(g), EngineUnavailableError);
    await assert.rejects(e.createGroup(rec('bob')), EngineUnavailableError);
    assert.ok(Date.now() - t0 < 1000, 'no waiting in a queue');
    await server.restart();
    await l.next(10_000, 'a resync after reconnect', (ev) => ev.kind === 'resync');
    assert.equal(e.isUp(), true);
    assert.deepEqual(await e.getGroup(g), { id: g, ...rec('ann'), epoch: created.epoch });
    assert.deepEqual((await page(e, g, { limit: 10 })).map((m) => m.text), ['before']);
    assert.equal((await e.publish(g, msg('ann', 'after'))).seq, 2);
    assert.equal((await nextMessage(l, 'delivery after restart')).text, 'after');
  });
});

describe('redis engine: a Redis that keeps the connection open but stops answering', () => {
  let server: RedisServer;
  let e: RedisEngine;
  before(async () => {
    server = await RedisServer.start();
    e = redisEngine(server, 'stuck', { REDIS_PING_INTERVAL_MS: '100', REDIS_PING_TIMEOUT_MS: '300' });
    await e.start();
  });
  after(async () => {
    await e.stop();
    await server.close();
  });

  test('a PING without a reply counts Redis down (calls fail fast) until a PING is answered again', async () => {
    const g = (await e.createGroup(rec('ann'))).id;
    const l = await listen(e, g);
    assert.equal(e.isUp(), true);
    const PAUSE_MS = 1500;
    const pausedAt = Date.now();
    // Every client's commands wait (PING included); the connections stay open.
    await server.admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
    await until(() => !e.isUp(), PAUSE_MS - 100, 'the engine to count a paused Redis down');
    const t0 = Date.now();
    await assert.rejects(e.publish(g, msg('ann', 'while paused')), EngineUnavailableError);
    assert.ok(Date.now() - t0 < 200, 'no waiting for the command timeout');
    await until(() => e.isUp(), 5000, 'the engine to count Redis up once PING answers');
    assert.ok(Date.now() - pausedAt >= PAUSE_MS - 50, 'not up again before the pause ended');
    const sent = await e.publish(g, msg('ann', 'after'));
    assert.equal(sent.seq, 1, 'the refused message was not stored');
    assert.equal((await nextMessage(l, 'delivery after the pause')).text, 'after');
  });
});
