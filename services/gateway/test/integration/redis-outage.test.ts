// Redis trouble, with real processes: Redis restarted (AOF on) during a chat,
// and the subscriber connections killed by Redis (CLIENT KILL TYPE pubsub).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseMetrics } from '../helpers/proc.js';
import { JsonChat, range, startCluster, summarize, type Cluster } from '../helpers/redis-cluster.js';
import { until, within } from '../helpers/wait.js';

const readyz = async (cl: Cluster, node: number): Promise<number> => (await cl.nodes[node]!.http('/readyz')).status;

describe('Redis restarted with AOF during a chat', () => {
  let cl: Cluster;
  const clients: JsonChat[] = [];
  before(async () => {
    cl = await startCluster(2, { redis: { appendonly: true } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cl.stop();
  });

  test('groups and history survive; sends during the outage get unavailable; chat resumes after', async () => {
    const a = await JsonChat.open(cl.nodes[0]!);
    const b = await JsonChat.open(cl.nodes[1]!);
    clients.push(a, b);
    const groupId = await a.create('Ann', 'pw-aof');
    await b.join('Ben', groupId, 'pw-aof');
    for (let i = 1; i <= 5; i++) assert.equal(await a.sayOk(`before ${i}`), i);
    await b.untilSeq(5);

    await cl.redis.stop('SIGKILL'); // a crash: only what AOF (fsync always) holds comes back
    await until(async () => (await readyz(cl, 0)) === 503 && (await readyz(cl, 1)) === 503, 5000, '/readyz 503 on both nodes');
    // The balancer's check fails too (503, not the drain's 404): HAProxy marks the node down.
    assert.deepEqual(await cl.nodes[0]!.http('/readyz/balancer'), { status: 503, body: 'engine unavailable\n' });
    assert.deepEqual(await a.say('lost?'), { error: 'unavailable' });
    assert.deepEqual(await b.say('lost?'), { error: 'unavailable' });
    const newcomer = await JsonChat.open(cl.nodes[1]!);
    clients.push(newcomer);
    await assert.rejects(newcomer.create('Cy', 'pw-2'), /unavailable/);

    await cl.redis.restart();
    await until(async () => (await readyz(cl, 0)) === 200 && (await readyz(cl, 1)) === 200, 10_000, '/readyz 200 on both nodes');
    // The same connections chat on: seq continues where it was, nothing from the outage was stored.
    assert.equal(await a.sayOk('after 6'), 6);
    assert.equal(await b.sayOk('after 7'), 7);
    await b.untilSeq(6);
    await a.untilSeq(7);
    assert.deepEqual(b.seqs(), range(1, 6));
    assert.deepEqual(a.seqs(), [7]);
    // A new member joins the surviving group on the other node and gets the whole history.
    const c = await JsonChat.open(cl.nodes[1]!);
    clients.push(c);
    await c.join('Cy', groupId, 'pw-aof');
    await c.untilSeq(7);
    assert.deepEqual(
      c.messages.map((m) => m.text),
      ['before 1', 'before 2', 'before 3', 'before 4', 'before 5', 'after 6', 'after 7'],
    );
    assert.deepEqual(await c.who(), ['Ann', 'Ben', 'Cy']);
    assert.equal(await newcomer.create('Cy', 'pw-2'), '1', 'the ID counter survived too');
  });
});

describe('subscriber connections killed by Redis (CLIENT KILL TYPE pubsub)', () => {
  let cl: Cluster;
  const clients: JsonChat[] = [];
  before(async () => {
    cl = await startCluster(2);
  });
  after(async () => {
    for (const c of clients) c.close();
    await cl.stop();
  });

  test('the node notices, resubscribes and backfills: no message missed', async () => {
    const a = await JsonChat.open(cl.nodes[0]!);
    const b = await JsonChat.open(cl.nodes[1]!);
    clients.push(a, b);
    const groupId = await a.create('Ann', 'pw-kill');
    await b.join('Ben', groupId, 'pw-kill');
    await a.events.take((e) => e.type === 'member_joined' && e['name'] === 'Ben', 5000, 'Ben joined');
    for (let i = 1; i <= 5; i++) await a.sayOk(`before ${i}`);
    await b.untilSeq(5);

    const node1 = cl.nodes[1]!;
    const killed = Number(await cl.redis.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    assert.equal(killed, 2, 'one subscriber connection per node');
    // Sent at once, while node 1 has no subscription (it reconnects after ~100 ms):
    // pub/sub drops these for node 1, and no later message will reveal the gap.
    const acks = await Promise.all(range(6, 25).map((i) => a.sayOk(`during ${i}`)));
    assert.deepEqual(acks, range(6, 25));
    await node1.waitLog('[REDIS DOWN]', 10_000);
    await node1.waitLog('[RESUBSCRIBED]', 10_000);
    await node1.waitLog('[RESYNC]', 10_000);
    await b.untilSeq(25);
    assert.deepEqual(b.seqs(), range(1, 25), `every seq once, in order (got ${summarize(b.seqs())})`);
    assert.equal(await b.sayOk('still here'), 26);
    await a.untilSeq(26);
    const m = parseMetrics((await node1.http('/metrics', node1.metricsPort)).body);
    assert.ok((m.get('chat_redis_reconnects_total') ?? 0) >= 1, 'the reconnect is counted');
    assert.ok((m.get('chat_backfills_total') ?? 0) >= 1, 'the backfill is counted');
    assert.equal(m.get('chat_engine_up'), 1);
  });
});

describe('a member who leaves while Redis is down', () => {
  let cl: Cluster;
  const clients: JsonChat[] = [];
  before(async () => {
    // Heartbeats every second (a third of the TTL): the deferred removal runs soon after Redis is back.
    cl = await startCluster(1, { redis: { appendonly: true }, env: { PRESENCE_TTL_SECONDS: '3' } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cl.stop();
  });

  test('does not stay in /who once Redis is back, and the others are told', async () => {
    const a = await JsonChat.open(cl.nodes[0]!);
    const b = await JsonChat.open(cl.nodes[0]!);
    clients.push(a, b);
    const groupId = await a.create('Ann', 'pw-ghost');
    await b.join('Ben', groupId, 'pw-ghost');
    // Ben's presence is stored before the others are told, and `joined` comes before both.
    await a.events.take((e) => e.type === 'member_joined' && e['name'] === 'Ben', 10_000, 'member_joined for Ben');
    assert.deepEqual(await a.who(), ['Ann', 'Ben']);

    await cl.redis.stop('SIGKILL');
    await until(async () => (await readyz(cl, 0)) === 503, 5000, '/readyz 503');
    b.close(); // its presence entry cannot be removed now
    await b.closed;
    await cl.redis.restart();
    await until(async () => (await readyz(cl, 0)) === 200, 10_000, '/readyz 200');
    const left = await a.events.take((e) => e.type === 'member_left', 10_000, 'member_left for Ben after Redis is back');
    assert.equal(left['name'], 'Ben');
    assert.deepEqual(await a.who(), ['Ann']);
  });
});

describe('a node that has lost Redis for ENGINE_LOSS_SHED_SECONDS', () => {
  let cl: Cluster;
  const clients: JsonChat[] = [];
  before(async () => {
    cl = await startCluster(2, { env: { ENGINE_LOSS_SHED_SECONDS: '2', REDIS_PING_TIMEOUT_MS: '500' } });
  });
  after(async () => {
    if (cl.redis.pid) process.kill(cl.redis.pid, 'SIGCONT');
    for (const c of clients) c.close();
    await cl.stop();
  });

  test('closes its clients with 1012 once, so they go to a ready node; they resume there with no gap', async () => {
    const a = await JsonChat.open(cl.nodes[0]!);
    const b = await JsonChat.open(cl.nodes[1]!);
    clients.push(a, b);
    const groupId = await a.create('Ann', 'pw-shed');
    const joined = await b.join('Ben', groupId, 'pw-shed');
    for (let i = 1; i <= 3; i++) await a.sayOk(`before ${i}`);
    await b.untilSeq(3);

    // Frozen, not gone: the connections stay open and only the PINGs tell (a partition looks the same).
    process.kill(cl.redis.pid!, 'SIGSTOP');
    const t0 = Date.now();
    const [ca, cb] = await within(Promise.all([a.closed, b.closed]), 15_000, 'both clients closed by their nodes');
    assert.equal(ca.code, 1012);
    assert.equal(cb.code, 1012);
    const waited = (Date.now() - t0) / 1000;
    assert.ok(waited >= 2, `not before ENGINE_LOSS_SHED_SECONDS (closed after ${waited} s)`);
    await cl.nodes[0]!.waitLog('[SHEDDING] engine unreachable: clients sent elsewhere');
    // Once per outage: a client that comes straight here meanwhile stays.
    const c = await JsonChat.open(cl.nodes[1]!);
    clients.push(c);
    process.kill(cl.redis.pid!, 'SIGCONT');
    await until(async () => (await readyz(cl, 0)) === 200 && (await readyz(cl, 1)) === 200, 10_000, '/readyz 200 on both nodes');
    const m = parseMetrics((await cl.nodes[1]!.http('/metrics', cl.nodes[1]!.metricsPort)).body);
    assert.equal(m.get('chat_engine_loss_disconnects_total'), 1, 'one client closed on node 1, the later one left alone');
    assert.equal(c.ws.ws.readyState, 1, 'the client that came during the outage is still connected');

    // Ben resumes (on the other node this time) and misses nothing sent meanwhile.
    const b2 = await JsonChat.open(cl.nodes[0]!);
    const a2 = await JsonChat.open(cl.nodes[1]!);
    clients.push(a2, b2);
    await b2.resume(String(joined['token']), 3);
    await a2.join('Ann', groupId, 'pw-shed', 3);
    assert.equal(await a2.sayOk('after'), 4);
    await b2.untilSeq(4);
    assert.deepEqual(b2.seqs(), [4]);
  });
});
