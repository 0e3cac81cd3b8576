// A network partition between one gateway and Redis, the rest of the system intact: the gateway
// runs in a network namespace with one veth link to Redis and another to HAProxy, and the Redis
// link is taken down (no FIN, no RST: a cable pulled out), then brought back.
// - The cut gateway turns /readyz 503, so HAProxy stops sending it new clients; its members' sends
//   get `unavailable` (nothing acked is lost); after ENGINE_LOSS_SHED_SECONDS it closes them with
//   1012 and they resume through HAProxy on the other gateway, with no gap and no duplicate.
// - Healed, it answers Redis again, turns ready, HAProxy routes to it again, and a member joining
//   there gets the history it missed and the live chat.
// Needs root (ip netns, veth); skipped without it, and failed under CI.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatewayOn, TEST_CHAT_SECRET } from '../helpers/engines.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { HaProxy } from '../helpers/haproxy.js';
import { canMakeNamespaces, NetNs, type Link } from '../helpers/netns.js';
import { parseMetrics } from '../helpers/proc.js';
import { JsonChat, range, summarize } from '../helpers/redis-cluster.js';
import { RedisServer } from '../helpers/redis.js';
import { until, within } from '../helpers/wait.js';

const MEMBERS = 12;
const SHED_S = 3;
const skip = canMakeNamespaces() ? false : process.env['CI'] ? false : 'needs root and ip netns';

interface Member {
  name: string;
  chat: JsonChat;
  token: string;
  /** Every seq this member was shown, over its earlier connections. */
  seen: number[];
  /** The seqs of its own messages (acked, not echoed to it). */
  own: number[];
  /** Connections it had (1 + resumes). */
  connections: number;
}

/** Wait until the member has every seq up to `top`, shown or its own. */
const caughtUp = (m: Member, top: number): Promise<void> =>
  m.chat.untilMessages(
    (msgs) => {
      const have = new Set([...m.seen, ...m.own, ...msgs.map((x) => x.seq)]);
      return range(1, top).every((q) => have.has(q));
    },
    10_000,
    `${m.name} to have seqs 1-${top}`,
  );
const metrics = async (gw: Gateway): Promise<Map<string, number>> => parseMetrics((await gw.http('/metrics', gw.metricsPort)).body);
const conns = (m: Map<string, number>): number => m.get('chat_connections{transport="ws_json"}') ?? 0;

describe('a gateway cut off from Redis by the network', { skip }, () => {
  let ns: NetNs;
  let toRedis: Link;
  let toLb: Link;
  let redis: RedisServer;
  let cut: Gateway;
  let ok: Gateway;
  let lb: HaProxy;
  const chats: JsonChat[] = [];

  before(async () => {
    ns = NetNs.create('pt');
    toRedis = ns.link;
    toLb = ns.addLink();
    redis = await RedisServer.start({ args: ['--bind', '127.0.0.1', toRedis.hostAddr, '--protected-mode', 'no'] });
    const common = { RATE_LIMIT_PER_SEC: '0', ENGINE_LOSS_SHED_SECONDS: String(SHED_S), REDIS_PING_TIMEOUT_MS: '500', DRAIN_SECONDS: '1', PRESENCE_TTL_SECONDS: '3' };
    cut = await startGateway({
      netns: { spawn: (c, a, o) => ns.spawn(c, a, o), host: toLb.nsAddr },
      env: {
        HOST: '0.0.0.0',
        NODE_ID: 'cut',
        REDIS_URL: `redis://${toRedis.hostAddr}:${redis.port}`,
        CHAT_SECRET: TEST_CHAT_SECRET,
        TRUSTED_PROXIES: `127.0.0.1,${toLb.hostAddr}`,
        ...common,
      },
    });
    ok = await gatewayOn('redis', { redis, env: { NODE_ID: 'ok', TRUSTED_PROXIES: '127.0.0.1', ...common } });
    lb = await HaProxy.start([cut, ok, ok]);
  });
  after(async () => {
    for (const c of chats) c.close();
    await lb?.stop();
    await cut?.stop('SIGKILL').catch(() => undefined);
    ns?.removeSync();
    await ok?.stop();
    await redis?.close();
  });

  test('its clients get unavailable, then move and resume elsewhere with no gap; healed, it serves again', async () => {
    const lbUrl = `ws://127.0.0.1:${lb.ws}/`;
    const open = async (): Promise<JsonChat> => {
      const c = await JsonChat.open(lbUrl);
      chats.push(c);
      return c;
    };
    const members: Member[] = [];
    const first = await open();
    const groupId = await first.create('m0', 'pw-cut');
    members.push({ name: 'm0', chat: first, token: first.token, seen: [], own: [], connections: 1 });
    for (let i = 1; i < MEMBERS; i++) {
      const c = await open();
      const j = await c.join(`m${i}`, groupId, 'pw-cut');
      members.push({ name: `m${i}`, chat: c, token: String(j['token']), seen: [], own: [], connections: 1 });
    }
    const onCut = conns(await metrics(cut));
    assert.ok(onCut >= 2 && onCut < MEMBERS, `HAProxy spread the members (${onCut} of ${MEMBERS} on the gateway to cut)`);
    for (const m of members) m.own.push(await m.chat.sayOk(`hello from ${m.name}`));
    let top = MEMBERS;
    for (const m of members) await caughtUp(m, top);

    ns.linkDown(toRedis);
    await until(async () => (await cut.http('/readyz')).status === 503, 5000, 'the cut gateway /readyz 503');
    // Every member sends once: those on the cut gateway are told `unavailable` or lose their
    // connection (HAProxy's on-marked-down shutdown-sessions may cut them first); none is acked.
    // The others are stored.
    const during = await Promise.all(
      members.map((m) => Promise.race([m.chat.say(`during the cut from ${m.name}`, 10_000), m.chat.closed.then((c) => ({ closed: c.code }))])),
    );
    const refused = members.filter((_, i) => !('seq' in during[i]!));
    members.forEach((m, i) => {
      const r = during[i]!;
      if ('error' in r) assert.equal(r.error, 'unavailable', `${m.name}: refused as unavailable`);
      else if ('seq' in r) m.own.push(r.seq);
    });
    assert.equal(refused.length, onCut, 'exactly the members on the cut gateway were not acked');
    top += MEMBERS - onCut;
    await lb.waitStatus(['gw1'], 'DOWN', 10_000);

    // They are closed (by the gateway with 1012 after ENGINE_LOSS_SHED_SECONDS, or by HAProxy when
    // it marks the gateway down: 1006), and resume through HAProxy elsewhere.
    const codes: number[] = [];
    for (const m of refused) {
      const closed = await within(m.chat.closed, (SHED_S + 10) * 1000, `${m.name} closed`);
      codes.push(closed.code);
      assert.ok(closed.code === 1012 || closed.code === 1006, `${m.name}: closed with ${closed.code}`);
      m.seen.push(...m.chat.seqs());
      const last = Math.max(0, ...m.seen, ...m.own);
      m.chat = await open();
      await m.chat.resume(m.token, last);
      m.connections++;
    }
    assert.equal(conns(await metrics(ok)), MEMBERS, 'every member is on the other gateway');
    // A message sent from the cut gateway's side during the outage was never acked; the members
    // retry it now, as a client library does, and every member sees every stored seq once.
    for (const m of refused) m.own.push(await m.chat.sayOk(`retried from ${m.name}`));
    top += refused.length;
    for (const m of members) {
      await caughtUp(m, top);
      const shown = [...m.seen, ...m.chat.seqs()];
      assert.deepEqual(shown, [...shown].sort((a, b) => a - b), `${m.name}: in order`);
      const all = [...shown, ...m.own].sort((a, b) => a - b);
      assert.deepEqual(all, range(1, top), `${m.name}: every seq once, its own by ack (got ${summarize(all)})`);
    }

    // Healed: ready again, routed to again, and a member joining there catches up from history.
    ns.linkUp(toRedis);
    await until(async () => (await cut.http('/readyz')).status === 200, 15_000, 'the healed gateway /readyz 200');
    await lb.waitStatus(['gw1'], 'UP', 10_000);
    const late = await open();
    await late.join('late', groupId, 'pw-cut', top - 3);
    assert.equal(conns(await metrics(cut)), 1, 'HAProxy sent the newcomer to the healed gateway (leastconn)');
    assert.equal(await members[0]!.chat.sayOk('after the heal'), top + 1);
    await late.untilSeq(top + 1);
    assert.deepEqual(late.seqs(), range(top - 2, top + 1), 'the history it missed, then live');
    const m = await metrics(cut);
    assert.equal(m.get('chat_engine_up'), 1);
    const shed = m.get('chat_engine_loss_disconnects_total') ?? 0;
    assert.equal(shed, codes.filter((c) => c === 1012).length, 'the 1012s are the gateway\'s');
    process.stdout.write(`# partition: ${onCut} of ${MEMBERS} members on the cut gateway; closes ${JSON.stringify(codes)} (1012: the gateway shed them; 1006: HAProxy cut them when it marked the gateway down)\n`);
  });
});
