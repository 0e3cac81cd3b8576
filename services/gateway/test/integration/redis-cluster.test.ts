// Three gateways on one Redis behave as one chat server (issue 4): one order
// for everyone, cluster-wide /who and notices, one Redis subscription per
// group per node, and one Redis round trip per chat message.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { groupKeys } from '../../src/engine/redis/keys.js';
import { DEDUPE_TRIM_EVERY } from '../../src/engine/redis/scripts.js';
import { JsonChat, range, startCluster, summarize, type ChatMsg, type Cluster } from '../helpers/redis-cluster.js';
import { until } from '../helpers/wait.js';

describe('three gateways, one Redis', () => {
  let cl: Cluster;
  const clients: JsonChat[] = [];
  const open = async (node: number): Promise<JsonChat> => {
    const c = await JsonChat.open(cl.nodes[node]!);
    clients.push(c);
    return c;
  };
  const numsub = async (groupId: string): Promise<number> =>
    Number(((await cl.redis.admin.pubsub('NUMSUB', groupKeys(groupId).channel)) as unknown[])[1]);

  before(async () => {
    cl = await startCluster(3);
  });
  after(async () => {
    for (const c of clients) c.close();
    await cl.stop();
  });

  test('members on different nodes create, join and chat, and all see one order (same seq everywhere)', async () => {
    const a = await open(0);
    const groupId = await a.create('Adina', 'pw-one');
    assert.equal(groupId, '0');
    const b = await open(1);
    await b.join('Maya', groupId, 'pw-one');
    const c = await open(2);
    await c.join('Noa', groupId, 'pw-one');
    await a.events.take((e) => e.type === 'member_joined' && e['name'] === 'Noa', 5000, 'Noa joined, seen on node 0');
    await b.events.take((e) => e.type === 'member_joined' && e['name'] === 'Noa', 5000, 'Noa joined, seen on node 1');

    // All three send at once, without waiting for each other.
    const PER = 15;
    const acks = await Promise.all(
      [a, b, c].map(async (m, i) => {
        const seqs: number[] = [];
        const pending = range(1, PER).map((k) => m.sayOk(`${i}:${k}`));
        for (const p of pending) seqs.push(await p);
        return seqs;
      }),
    );
    const total = 3 * PER;
    assert.deepEqual(acks.flat().sort((x, y) => x - y), range(1, total), 'every message got its own seq');
    const bySeq = new Map<number, ChatMsg>();
    for (const [i, m] of [a, b, c].entries()) {
      // A member does not get its own messages back: it sees everyone else's.
      await m.untilMessages((ms) => ms.length >= total - PER, 10_000, `member ${i} to have the others' messages`);
      const seqs = m.seqs();
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `member ${i} sees messages in seq order`);
      assert.deepEqual([...seqs, ...(acks[i] as number[])].sort((x, y) => x - y), range(1, total), `member ${i}: nothing missing or twice`);
      for (const msg of m.messages) {
        const seen = bySeq.get(msg.seq);
        if (seen) assert.deepEqual([seen.from, seen.text], [msg.from, msg.text], `seq ${msg.seq} is the same message on every node`);
        else bySeq.set(msg.seq, msg);
      }
    }
    // A late joiner on any node gets the same history in the same order.
    const d = await open(0);
    await d.join('Dov', groupId, 'pw-one');
    await d.untilMessages((ms) => ms.length >= total, 5000, 'history for the late joiner');
    assert.deepEqual(d.seqs(), range(1, total));
    assert.equal(bySeq.size, total);
    for (const msg of d.messages) assert.equal(msg.text, bySeq.get(msg.seq)?.text);
  });

  test('/who lists members from every node; join and leave notices reach every node', async () => {
    const a = await open(0);
    const groupId = await a.create('Ann', 'pw-who');
    const b = await open(1);
    await b.join('Ben', groupId, 'pw-who');
    const c = await open(2);
    await c.join('Cat', groupId, 'pw-who');
    await a.events.take((e) => e.type === 'member_joined' && e['name'] === 'Cat', 5000, 'Cat joined (node 0)');
    await b.events.take((e) => e.type === 'member_joined' && e['name'] === 'Cat', 5000, 'Cat joined (node 1)');
    for (const m of [a, b, c]) assert.deepEqual(await m.who(), ['Ann', 'Ben', 'Cat']);
    c.close();
    await a.events.take((e) => e.type === 'member_left' && e['name'] === 'Cat', 5000, 'Cat left (node 0)');
    await b.events.take((e) => e.type === 'member_left' && e['name'] === 'Cat', 5000, 'Cat left (node 1)');
    assert.deepEqual(await b.who(), ['Ann', 'Ben']);
  });

  test('one Redis subscription per group per node with members, however many members', async () => {
    const a = await open(0);
    const groupId = await a.create('Ari', 'pw-sub');
    await until(async () => (await numsub(groupId)) === 1, 5000, 'node 0 to subscribe');
    const onNode1: JsonChat[] = [];
    for (let i = 0; i < 4; i++) {
      const m = await open(1);
      await m.join(`b${i}`, groupId, 'pw-sub');
      onNode1.push(m);
    }
    const c = await open(2);
    await c.join('c0', groupId, 'pw-sub');
    await a.events.take((e) => e.type === 'member_joined' && e['name'] === 'c0', 5000, 'c0 joined');
    // Each node subscribes before its member's join notice goes out, so all three are in by now.
    assert.equal(await numsub(groupId), 3, 'three nodes, six members: three subscriptions');
    for (const m of onNode1.slice(1)) m.close();
    await until(async () => (await a.who()).length === 3, 5000, 'three of node 1’s members to leave');
    assert.equal(await numsub(groupId), 3, 'node 1 still has a member');
    onNode1[0]!.close();
    await until(async () => (await numsub(groupId)) === 2, 5000, 'node 1 to unsubscribe after its last member left');
  });

  test('a published message costs one Redis round trip (one EVALSHA), whatever the group size; a client id adds one command inside it', async (t) => {
    const a = await open(0);
    const groupId = await a.create('Eli', 'pw-cost');
    for (const [node, name] of [[1, 'f'], [2, 'g'], [2, 'h']] as const) {
      await (await open(node)).join(name, groupId, 'pw-cost');
      await a.events.take((e) => e.type === 'member_joined' && e['name'] === name, 5000, `${name} joined`);
    }
    await a.sayOk('warm-up'); // loads the script into Redis's cache (EVALSHA, else EVAL once)
    const N = 200;
    /** INFO commandstats difference over `run` (our own INFO left out). */
    const measure = async (run: () => Promise<void>): Promise<Map<string, number>> => {
      const before = await cl.redis.commandCalls();
      await run();
      const afterCalls = await cl.redis.commandCalls();
      const delta = new Map<string, number>();
      for (const [cmd, n] of afterCalls) if (n - (before.get(cmd) ?? 0) > 0) delta.set(cmd, n - (before.get(cmd) ?? 0));
      delta.delete('info');
      return delta;
    };
    // Sends with a client id (idempotent: the dedupe window), then the same without one.
    const keyed = await measure(async () => {
      for (let i = 0; i < N; i++) await a.sayOk(`m${i}`);
    });
    const keyless = await measure(async () => {
      for (let i = 0; i < N; i++) {
        a.ws.sendJson({ op: 'send', text: `p${i}` });
        await a.events.take((e) => e.type === 'ack' && e['id'] === null, 5000, `keyless ack ${i}`);
      }
    });
    t.diagnostic(`commandstats delta for ${N} messages with a client id, group with members on 3 nodes: ${JSON.stringify(Object.fromEntries(keyed))}`);
    t.diagnostic(`commandstats delta for ${N} messages without one: ${JSON.stringify(Object.fromEntries(keyless))}`);
    for (const delta of [keyed, keyless]) {
      assert.equal(delta.get('evalsha'), N, 'one EVALSHA (round trip) per message');
      assert.equal(delta.get('eval'), undefined, 'no script reloads');
      assert.equal(delta.get('xadd'), N);
      assert.equal(delta.get('publish'), N, 'one PUBLISH per message, not one per member or node');
      // The script's own commands: one read (seq and the byte total), one write, the stream; trimming
      // reads only what it drops (HISTORY_LIMIT=100 here: once full, one entry per message).
      assert.equal(delta.get('hmget'), N);
      assert.equal(delta.get('hset'), N);
      assert.ok((delta.get('xrange') ?? 0) <= N, 'at most one XRANGE per message');
      for (const c of ['hget', 'hexists', 'hincrby', 'hdel']) assert.equal(delta.get(c), undefined, `no ${c}`);
    }
    // The dedupe window, inside the same script: one ZADD NX per keyed message is both the lookup and
    // the record (a ZSCORE only for a retry, none here); the trim runs every DEDUPE_TRIM_EVERY
    // messages, keyed or not; the TTL is renewed once 10 % of it has passed (once here, the first time).
    assert.equal(keyed.get('zadd'), N, 'one ZADD per message with a client id');
    assert.equal(keyed.get('zscore'), undefined, 'no ZSCORE when nothing is retried');
    for (const c of ['zadd', 'zscore']) assert.equal(keyless.get(c), undefined, `no ${c} without a client id`);
    const trims = Math.ceil(N / DEDUPE_TRIM_EVERY);
    for (const [what, delta] of [['keyed', keyed], ['keyless', keyless]] as const)
      assert.ok((delta.get('zremrangebyrank') ?? 0) <= trims, `${what}: one trim per ${DEDUPE_TRIM_EVERY} messages at most`);
    assert.ok((keyed.get('zremrangebyrank') ?? 0) >= Math.floor(N / DEDUPE_TRIM_EVERY), 'the set is trimmed');
    // PEXPIRE: the presence heartbeats' few (they run without messages too), plus at most one renewal.
    const heartbeatPexpire = keyless.get('pexpire') ?? 0;
    assert.ok((keyed.get('pexpire') ?? 0) <= heartbeatPexpire + 1 + 10, `no PEXPIRE per keyed message (${keyed.get('pexpire') ?? 0})`);
    assert.equal(await numsub(groupId), 3);
  });
});
