// The Redis engine on a real 3-master Redis Cluster (REDIS_CLUSTER_NODES),
// with sharded pub/sub. In-process engines first (what the resync contract
// says after a killed subscriber connection and a slot migration), then three
// gateway processes: groups on different masters, one seq order per group,
// /who across nodes, one SPUBLISH per message, one SSUBSCRIBE per group per
// node, a slot moved mid-chat, a master that stops answering.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import type { ChannelEvent } from '../../src/engine/engine.js';
import { groupKeys, keySlot } from '../../src/engine/redis/keys.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { MAIN, type Gateway } from '../helpers/gateway.js';
import { RedisClusterServer } from '../helpers/redis-cluster-server.js';
import { JsonChat, range, startGatewaysOnRedisCluster, summarize } from '../helpers/redis-cluster.js';
import { listen } from '../helpers/channels.js';
import { type Inbox, until, within } from '../helpers/wait.js';

let rc: RedisClusterServer;
const API_KEY = 'cluster-api-key-0123456789abcdef';
const engines: RedisEngine[] = [];
before(async () => {
  rc = await RedisClusterServer.start(3);
});
after(async () => {
  await stopEngines();
  await rc.close();
});

async function stopEngines(): Promise<void> {
  for (const e of engines.splice(0)) await e.stop();
}

/** An in-process engine on the cluster, stopped at the end. */
async function node(id: string): Promise<RedisEngine> {
  const config = loadConfig({ REDIS_CLUSTER_NODES: rc.seeds, CHAT_SECRET: 'cluster-test-secret-0123456789', NODE_ID: id, LOG_LEVEL: 'silent' });
  const e = new RedisEngine(config);
  engines.push(e);
  await e.start();
  return e;
}

async function nextText(inbox: Inbox<ChannelEvent>, what: string): Promise<string> {
  const ev = await inbox.next(5000, what, (e) => e.kind === 'message');
  return ev.kind === 'message' ? ev.message.text : '';
}

const rec = (creator: string) => ({ passwordHash: `scrypt$1024$8$1$salt$${creator}`, creator, createdAt: 1_700_000_000_000 });
const msg = (from: string, text: string) => ({ from, text, ts: Date.now(), origin: `node/${from}` });

/** Two engines subscribed to one new group, both having received a first message. */
async function twoSubscribed(prefix: string, what: string) {
  const a = await node(`${prefix}-a`);
  const b = await node(`${prefix}-b`);
  const g = (await a.createGroup(rec('ann'))).id;
  const la = await listen(a, g);
  const lb = await listen(b, g);
  await a.publish(g, msg('ann', 'before'));
  for (const l of [la, lb]) assert.equal(await nextText(l, what), 'before');
  return { a, b, g, la, lb };
}

/** `PUBSUB SHARDNUMSUB` of a group's channel on one master. */
async function shardNumsub(master: number, groupId: string): Promise<number> {
  const r = (await rc.servers[master]!.admin.call('PUBSUB', 'SHARDNUMSUB', groupKeys(groupId).channel)) as [string, number];
  return Number(r[1]);
}

test('REDIS_CLUSTER_NODES that are not host:port seeds, or set together with REDIS_URL, stop the gateway with exit code 2', async () => {
  for (const env of [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000,nohost' }, { REDIS_CLUSTER_NODES: rc.seeds, REDIS_URL: 'redis://127.0.0.1:6379' }]) {
    const p = spawn(process.execPath, [MAIN], { env: { PATH: process.env['PATH'] ?? '', CHAT_SECRET: 'cluster-test-secret-0123456789', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await within(new Promise<number | null>((res) => p.once('exit', (c) => res(c))), 10_000, 'the gateway to refuse its settings');
    assert.equal(code, 2, err);
    assert.match(err, /REDIS_CLUSTER_NODES/);
  }
});

describe('Redis Cluster engine, in-process: resubscribe and resync', () => {
  before(async () => {
    await rc.flushall();
  });
  after(stopEngines);

  test('a killed subscriber connection to one master comes back and resyncs only that master’s groups', async () => {
    const e = await node('kill');
    const groups: string[] = [];
    for (let i = 0; i < 4; i++) groups.push((await e.createGroup(rec(`u${i}`))).id);
    const masters = await Promise.all(groups.map((g) => rc.masterOf(groupKeys(g).meta)));
    const gx = groups[0]!;
    const mx = masters[0]!;
    const gy = groups[masters.findIndex((m) => m !== mx)];
    assert.ok(gy !== undefined, `groups on two masters (masters of 0..3: ${masters.join(',')})`);
    const lx = await listen(e, gx);
    const ly = await listen(e, gy);
    const killed = Number(await rc.servers[mx]!.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    assert.equal(killed, 1, 'one subscriber connection per master');
    await lx.next(10_000, 'a resync after the reconnect', (ev) => ev.kind === 'resync');
    assert.equal(e.isUp(), true);
    assert.equal(await shardNumsub(mx, gx), 1, 'subscribed again');
    // Resyncs are sent together, so the other master's group would have one by now.
    assert.deepEqual(ly.peek(), [], 'no resync for a group on another master');
    await e.publish(gx, msg('ann', 'after kill'));
    await e.publish(gy, msg('bob', 'other master'));
    assert.equal(await nextText(lx, 'live again'), 'after kill');
    assert.equal(await nextText(ly, 'unaffected'), 'other master');
  });

  test('a slot migrated to another master: the subscription moves there, with a resync; nothing published is lost', async () => {
    const { a, b, g, la, lb } = await twoSubscribed('mig', 'before the move');
    const from = await rc.masterOf(groupKeys(g).meta);
    const to = (from + 1) % 3;
    await rc.migrateSlot(keySlot(groupKeys(g).meta), from, to);
    assert.equal(await rc.masterOf(groupKeys(g).meta), to);
    // Published right after the move, possibly before the nodes subscribe on the new master.
    const during = await a.publish(g, msg('ann', 'just moved'));
    assert.equal(during.seq, 2, 'seq goes on from the migrated keys');
    for (const l of [la, lb]) await l.next(10_000, 'a resync after the slot moved', (ev) => ev.kind === 'resync');
    await until(async () => (await shardNumsub(to, g)) === 2, 5000, 'both engines subscribed on the new master');
    assert.equal(await shardNumsub(from, g), 0, 'nothing left on the old master');
    await b.publish(g, msg('bob', 'after'));
    for (const l of [la, lb]) {
      // 'just moved' comes live if the subscription moved before it was published; otherwise it is only
      // in the stream, where the node's backfill after the resync finds it.
      const got: string[] = [];
      while (got.at(-1) !== 'after') got.push(await nextText(l, 'delivery from the new master'));
      assert.ok(['just moved,after', 'after'].includes(got.join(',')), `then: ${got.join(',')}`);
    }
    assert.deepEqual((await b.history(g, { limit: 10 })).messages.map((m) => m.text), ['before', 'just moved', 'after'], 'the resync can backfill all of it');
  });
});

describe('three gateways on a 3-master Redis Cluster', () => {
  let nodes: Gateway[];
  let stopGateways: () => Promise<void>;
  const clients: JsonChat[] = [];
  const open = async (i: number): Promise<JsonChat> => {
    const c = await JsonChat.open(nodes[i]!);
    clients.push(c);
    return c;
  };
  /** A group created on node 0 with members `names[k]` joined on node k % 3 (k ≥ 1); returns the members. */
  const group = async (names: string[], password: string): Promise<{ id: string; members: JsonChat[] }> => {
    const owner = await open(0);
    const id = await owner.create(names[0]!, password);
    const members = [owner];
    for (const [k, name] of names.entries()) {
      if (k === 0) continue;
      const m = await open(k % 3);
      await m.join(name, id, password);
      await owner.events.take((e) => e.type === 'member_joined' && e['name'] === name, 5000, `${name} joined`);
      members.push(m);
    }
    return { id, members };
  };

  before(async () => {
    await rc.flushall();
    const started = await startGatewaysOnRedisCluster(rc, 3, { REDIS_PING_INTERVAL_MS: '200', REDIS_PING_TIMEOUT_MS: '500', API_KEY: API_KEY });
    nodes = started.nodes;
    stopGateways = started.stop;
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopGateways();
  });

  test('groups on different masters: one seq order per group on every node, /who across nodes', async () => {
    const made = [];
    for (let i = 0; i < 4; i++) made.push(await group([`a${i}`, `b${i}`, `c${i}`], `pw${i}`));
    assert.deepEqual(made.map((g) => g.id), ['0', '1', '2', '3']);
    const masters = await Promise.all(made.map((g) => rc.masterOf(groupKeys(g.id).meta)));
    for (const g of made) assert.equal(await rc.masterOf(groupKeys(g.id).channel), await rc.masterOf(groupKeys(g.id).meta), 'channel beside the keys');
    assert.ok(new Set(masters).size >= 2, `groups on at least two masters (masters: ${masters.join(',')})`);
    const PER = 10;
    await Promise.all(
      made.flatMap((g) =>
        g.members.map(async (m, i) => {
          for (const p of range(1, PER).map((k) => m.sayOk(`${g.id}:${i}:${k}`))) await p;
        }),
      ),
    );
    const total = 3 * PER;
    for (const g of made) {
      const bySeq = new Map<number, string>();
      for (const [i, m] of g.members.entries()) {
        await m.untilMessages((ms) => ms.length >= total - PER, 10_000, `group ${g.id} member ${i}: the others' messages`);
        const seqs = m.seqs();
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `group ${g.id} member ${i}: seq order (${summarize(seqs)})`);
        for (const x of m.messages) {
          assert.equal(x.groupId, g.id, 'no message from another group');
          assert.equal(bySeq.get(x.seq) ?? x.text, x.text, `seq ${x.seq} is the same message on every node`);
          bySeq.set(x.seq, x.text);
        }
      }
      assert.deepEqual([...bySeq.keys()].sort((x, y) => x - y), range(1, total), `group ${g.id}: every seq seen`);
      for (const m of g.members) assert.deepEqual(await m.who(), [`a${g.id}`, `b${g.id}`, `c${g.id}`]);
    }
  });

  test('one SPUBLISH per message on the group’s master; one SSUBSCRIBE per group per node', async (t) => {
    const { id, members } = await group(['e', 'f', 'g', 'h', 'i', 'j', 'k'], 'pw-cost'); // nodes 0,1,2,0,1,2,0
    const master = await rc.masterOf(groupKeys(id).meta);
    assert.deepEqual(await Promise.all([0, 1, 2].map((m) => shardNumsub(m, id))), [0, 1, 2].map((m) => (m === master ? 3 : 0)), 'seven members on three nodes: three subscriptions, on the group’s master');
    for (const [i, s] of rc.servers.entries()) {
      const subs = ((await s.admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).trim().split('\n');
      for (const n of [0, 1, 2]) assert.equal(subs.filter((l) => l.includes(` name=chat:node${n}:sub `)).length, 1, `node ${n}: one subscriber connection to master ${i}`);
    }
    const sender = members[0]!;
    await sender.sayOk('warm-up'); // loads the script (EVALSHA, else EVAL once)
    const N = 200;
    const beforeCalls = await rc.commandCallsPerMaster();
    for (let i = 0; i < N; i++) await sender.sayOk(`m${i}`);
    const afterCalls = await rc.commandCallsPerMaster();
    const delta = afterCalls.map((m, i) => {
      const d = new Map<string, number>();
      for (const [cmd, n] of m) if (n - (beforeCalls[i]!.get(cmd) ?? 0) > 0) d.set(cmd, n - (beforeCalls[i]!.get(cmd) ?? 0));
      d.delete('info');
      return d;
    });
    const sum = (cmd: string): number => delta.reduce((a, d) => a + (d.get(cmd) ?? 0), 0);
    t.diagnostic(`commandstats delta per master for ${N} messages (group on master ${master}): ${JSON.stringify(delta.map((d) => Object.fromEntries(d)))}`);
    assert.equal(sum('evalsha'), N, 'one EVALSHA (round trip) per message');
    assert.equal(sum('eval'), 0, 'no script reloads');
    assert.equal(sum('spublish'), N, 'one SPUBLISH per message, not one per member or node');
    assert.equal(sum('publish'), 0, 'no classic PUBLISH (it would be broadcast to every master)');
    assert.equal(delta[master]!.get('spublish'), N, 'on the group’s own master');
    for (const cmd of ['xadd', 'hmget', 'hset']) assert.equal(sum(cmd), N, cmd);
    for (const [i, m] of members.entries()) if (i > 0) await m.untilSeq(N + 1, 10_000);
    assert.equal(await shardNumsub(master, id), 3);
  });

  test('a group’s slot moves to another master mid-chat: every member gets every message, in order', async (t) => {
    const { id, members } = await group(['p', 'q', 'r'], 'pw-move');
    const [sender, ...others] = members as [JsonChat, ...JsonChat[]];
    for (let i = 1; i <= 5; i++) await sender.sayOk(`before ${i}`);
    const from = await rc.masterOf(groupKeys(id).meta);
    const to = (from + 1) % 3;
    let sending = true;
    const sent: number[] = [];
    const loop = (async () => {
      for (let i = 1; sending || i <= 5; i++) sent.push(await sender.sayOk(`during ${i}`));
    })();
    const sentBefore = sent.length;
    await rc.migrateSlot(keySlot(groupKeys(id).meta), from, to);
    const movedAt = sent.length;
    await Promise.all(nodes.map((gw) => gw.waitLog('[RESYNC]', 10_000)));
    t.diagnostic(`sent while migrating: ${movedAt - sentBefore}, from the move to the last node's resync: ${sent.length - movedAt}`);
    sending = false;
    await within(loop, 15_000, 'the sender to finish');
    const last = sent.at(-1)!;
    assert.equal(last, 5 + sent.length, 'every send acked with the next seq');
    for (const [i, m] of others.entries()) {
      await m.untilSeq(last, 10_000);
      assert.deepEqual(m.seqs(), range(1, last), `member ${i + 1}: every seq once, in order`);
    }
    await until(async () => (await shardNumsub(to, id)) === 3, 5000, 'three subscriptions on the new master');
    assert.equal(await shardNumsub(from, id), 0);
  });

  test('the server API: a message reaches members on every node (`api: true`); DELETE closes them on every node', async () => {
    const { id, members } = await group(['api0', 'api1', 'api2'], 'pw-api');
    const call = async (gw: Gateway, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const r = await fetch(`http://127.0.0.1:${gw.port}${path}`, {
        method,
        headers: { Authorization: `Bearer ${API_KEY}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      return { status: r.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
    };
    const posted = await call(nodes[1]!, 'POST', `/api/v1/groups/${id}/messages`, { from: 'bot', text: 'to all masters' });
    assert.equal(posted.status, 200);
    for (const [i, m] of members.entries()) {
      await m.untilMessages((ms) => ms.some((x) => x.text === 'to all masters'), 5000, `member ${i}: the API message`);
      const got = m.messages.find((x) => x.text === 'to all masters') as unknown as Record<string, unknown>;
      assert.deepEqual([got['seq'], got['from'], got['api']], [posted.json['seq'], 'bot', true]);
    }
    assert.deepEqual(((await call(nodes[2]!, 'GET', `/api/v1/groups/${id}/members`)).json['members'] as string[]).sort(), ['api0', 'api1', 'api2']);
    assert.equal((await call(nodes[2]!, 'DELETE', `/api/v1/groups/${id}`)).status, 204);
    for (const [i, m] of members.entries()) {
      assert.deepEqual(await m.events.take((e) => e.type === 'group_closed', 5000, `member ${i}: group_closed`), { type: 'group_closed', groupId: id });
      await m.events.take((e) => e.type === 'menu', 5000, `member ${i}: the menu`);
    }
    assert.equal((await call(nodes[0]!, 'GET', `/api/v1/groups/${id}/history`)).status, 404);
    assert.equal((await call(nodes[1]!, 'DELETE', `/api/v1/groups/${id}`)).status, 404, 'removed once');
  });

  test('a master that stops answering turns /readyz 503 on every gateway until it answers again', async () => {
    const ready = async (): Promise<number[]> => Promise.all(nodes.map(async (gw) => (await gw.http('/readyz')).status));
    assert.deepEqual(await ready(), [200, 200, 200]);
    const PAUSE_MS = 2000;
    const pausedAt = Date.now();
    await rc.servers[2]!.admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
    await until(async () => (await ready()).every((s) => s === 503), PAUSE_MS - 200, 'every gateway to report 503');
    assert.equal((await nodes[0]!.http('/readyz')).body, 'engine unavailable\n');
    await until(async () => (await ready()).every((s) => s === 200), 10_000, 'every gateway ready again');
    assert.ok(Date.now() - pausedAt >= PAUSE_MS - 50, 'not ready before the master answered again');
  });

  test('the gateways’ logs carry no message text or password (moves, resyncs and redirects included)', () => {
    const logs = nodes.flatMap((gw) => gw.output).join('\n');
    assert.match(logs, /\[RESYNC\]/, 'the logs of the slot move are there');
    for (const secret of ['pw-cost', 'pw-move', 'warm-up', 'before 1', 'during 1']) assert.ok(!logs.includes(secret), `no "${secret}" in the logs`);
  });
});

// Last: it adds a fourth node (a replica) and leaves the cluster changed.
describe('Redis Cluster engine, in-process: failover', () => {
  test('a replica takes over its master’s slots: subscriptions follow to the new master, with a resync', async () => {
    await rc.flushall();
    const { a, b, g, la, lb } = await twoSubscribed('fo', 'before the failover');
    const old = await rc.masterOf(groupKeys(g).meta);
    const replica = await rc.addReplica(old);
    await rc.failover(replica);
    assert.equal(await rc.masterOf(groupKeys(g).meta), replica, 'the replica serves the slot now');
    // From the old master dropping the channel ('moved'), or from the next slot-map refresh (every 2 s).
    for (const l of [la, lb]) await l.next(10_000, 'a resync after the failover', (ev) => ev.kind === 'resync');
    await until(async () => (await shardNumsub(replica, g)) === 2, 5000, 'both engines subscribed on the new master');
    await until(async () => (await shardNumsub(old, g)) === 0, 5000, 'nothing left on the old master (now a replica)');
    await b.publish(g, msg('bob', 'after'));
    await b.publish(g, msg('bob', 'marker'));
    for (const l of [la, lb]) {
      assert.equal(await nextText(l, 'delivery from the new master'), 'after');
      assert.equal(await nextText(l, 'the next one'), 'marker', 'each message once');
    }
  });
});
