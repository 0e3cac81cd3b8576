// The resume-capable client library (src/resume.ts) against real gateways on a real Redis:
// a member whose node is killed (SIGKILL, by PID) comes back on the other node with no gap and
// no duplicate, and a send left unacked by the drop is stored once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResumingClient, type ChatMessage } from '../src/resume.js';
import { MuteRelay } from './relay.js';
import { TEST_CHAT_SECRET } from '../../gateway/test/helpers/engines.js';
import { WsClient } from '../../gateway/test/helpers/clients.js';
import { metric } from '../../gateway/test/helpers/forwarded.js';
import { startGateway, type Gateway } from '../../gateway/test/helpers/gateway.js';
import { RedisServer } from '../../gateway/test/helpers/redis.js';
import { DEDUPE_TRIM_EVERY } from '../../gateway/src/engine/redis/scripts.js';
import { Inbox, until, within } from '../../gateway/test/helpers/wait.js';

/** A library client that records what it delivers. */
class Member {
  readonly messages: ChatMessage[] = [];
  readonly inbox = new Inbox<ChatMessage>();
  readonly resumed = new Inbox<unknown>();
  readonly gaps: unknown[] = [];
  constructor(readonly c: ResumingClient) {
    c.on('message', (m) => {
      this.messages.push(m);
      this.inbox.push(m);
    });
    c.on('resumed', (r) => this.resumed.push(r));
    c.on('gap', (g) => this.gaps.push(g));
  }

  static async open(urls: string[]): Promise<Member> {
    const c = new ResumingClient({ url: urls, backoff: { initialMs: 20, maxMs: 200, maxAttempts: 50 } });
    await within(c.connect(), 10_000, 'client connect');
    return new Member(c);
  }

  /** Seqs delivered after the join (own sends included), in delivery order. */
  seqs(): number[] {
    return this.messages.filter((m) => !m.replay).map((m) => m.seq);
  }
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function twoNodes(extra: Record<string, string> = {}): Promise<{ redis: RedisServer; gws: Gateway[]; stop: () => Promise<void> }> {
  const redis = await RedisServer.start();
  const env = { REDIS_URL: redis.url, CHAT_SECRET: TEST_CHAT_SECRET, RATE_LIMIT_PER_SEC: '0', ...extra };
  const gws = [await startGateway({ env, noTcp: true }), await startGateway({ env, noTcp: true })];
  return {
    redis,
    gws,
    stop: async () => {
      for (const g of gws) await g.stop('SIGKILL').catch(() => undefined);
      await redis.close();
    },
  };
}

test('a member whose node is killed resumes on the other node: no gap, no duplicate, its sends stored once', async () => {
  const { gws, stop } = await twoNodes();
  const [g1, g2] = gws as [Gateway, Gateway];
  try {
    // Ann lives on node 1 first (her URL list starts there); Bob stays on node 2.
    const ann = await Member.open([g1.wsUrl, g2.wsUrl]);
    const bob = await Member.open([g2.wsUrl]);
    const created = await ann.c.create('Ann', 'pw');
    await bob.c.join('Bob', created.groupId, 'pw');
    for (let i = 1; i <= 5; i++) await ann.c.send(`a${i}`);
    for (let i = 1; i <= 5; i++) await bob.c.send(`b${i}`);
    await until(() => ann.c.lastSeq === 10, 5000, 'Ann at seq 10');

    // Node 1 dies with Ann on it; Bob keeps talking meanwhile; Ann's sends while down wait.
    const annSends = [ann.c.send('while-down-1'), ann.c.send('while-down-2')];
    g1.proc.kill('SIGKILL');
    const bobSends = [bob.c.send('b6'), bob.c.send('b7')];
    await within(ann.resumed.next(15_000), 15_000, 'Ann resumed');
    const acks = await within(Promise.all([...annSends, ...bobSends]), 10_000, 'every send acked');
    assert.equal(new Set(acks.map((a) => a.seq)).size, 4, 'four distinct seqs');
    await until(() => ann.c.lastSeq === 14 && bob.c.lastSeq === 14, 10_000, 'both at seq 14').catch((e: Error) => {
      throw new Error(`${e.message}: Ann ${ann.c.lastSeq} [${ann.seqs().join(',')}], Bob ${bob.c.lastSeq} [${bob.seqs().join(',')}], acks ${JSON.stringify(acks)}`);
    });

    assert.deepEqual(ann.seqs(), range(1, 14), 'Ann: every seq once, in order');
    assert.deepEqual(bob.seqs(), range(1, 14), 'Bob: every seq once, in order');
    assert.deepEqual(ann.gaps, []);
    assert.ok(ann.c.counters.reconnects >= 1);
    assert.equal(ann.c.counters.resumes, 1);
    // What Bob saw is what Ann sent, once each.
    const bobTexts = bob.messages.filter((m) => !m.own).map((m) => m.text);
    assert.deepEqual(bobTexts.filter((t) => t.startsWith('while-down')), ['while-down-1', 'while-down-2']);
    await ann.c.close();
    await bob.c.close();
  } finally {
    await stop();
  }
});

test('a send stored but never acked (the link died) is resent after the resume on the other node and stored once: the ack carries the first seq', async () => {
  const { redis, gws, stop } = await twoNodes();
  const [g1, g2] = gws as [Gateway, Gateway];
  const relay = await MuteRelay.start(g1.port);
  try {
    // Ann reaches node 1 through the relay, then node 2 directly.
    const ann = await Member.open([relay.url, g2.wsUrl]);
    const bob = await Member.open([g2.wsUrl]);
    const { groupId } = await ann.c.create('Ann', 'pw');
    await bob.c.join('Bob', groupId, 'pw');
    await ann.c.send('before');
    await until(() => bob.c.lastSeq === 1, 5000, 'Bob has seq 1');

    // Node 1 stores Ann's message and publishes it, but its ack never reaches her.
    relay.muted = true;
    const sent = ann.c.send('exactly once');
    const seen = await bob.inbox.next(5000, 'Bob sees the message', (m) => m.text === 'exactly once');
    assert.equal(seen.seq, 2);
    assert.equal(ann.c.unacked, 1, 'Ann has no ack');
    relay.cut();

    const ack = await within(sent, 15_000, 'the resent send acked');
    assert.equal(ack.seq, 2, 'the retry is acked with the seq it was first stored as');
    assert.ok(ann.c.counters.resends >= 1, 'it was written again');
    assert.equal(await metric(g2, 'chat_sends_deduplicated_total'), 1, 'node 2 recognised the retry');

    // Stored once, seen once by everyone; chat goes on from seq 3.
    await bob.c.send('after');
    await until(() => ann.c.lastSeq === 3, 5000, 'Ann at seq 3');
    const history = await redis.admin.xrange('chat:{g:' + groupId + '}:history', '-', '+');
    assert.deepEqual(history.map(([id]) => id), ['1-0', '2-0', '3-0'], 'three messages stored, the retried one once');
    assert.deepEqual(bob.seqs(), [1, 2, 3]);
    assert.deepEqual(bob.messages.map((m) => m.text), ['before', 'exactly once', 'after']);
    assert.deepEqual(ann.seqs(), [1, 2, 3], 'Ann: each seq once (her own included)');
    assert.deepEqual(ann.gaps, []);
    // A newcomer's replay holds it once too.
    const cy = await Member.open([g1.wsUrl]);
    await cy.c.join('Cy', groupId, 'pw');
    await until(() => cy.messages.length === 3, 5000, 'Cy replayed three');
    assert.deepEqual(cy.messages.map((m) => m.text), ['before', 'exactly once', 'after']);
    for (const m of [ann, bob, cy]) await m.c.close();
  } finally {
    await relay.close();
    await stop();
  }
});

test('the dedupe window holds: the newest DEDUPE_WINDOW ids per group, a TTL, one member\'s id never suppresses another\'s', async (t) => {
  const W = 50;
  const TTL = 30;
  const { redis, gws, stop } = await twoNodes({ DEDUPE_WINDOW: String(W), DEDUPE_TTL_SECONDS: String(TTL) });
  const [g1, g2] = gws as [Gateway, Gateway];
  try {
    const json = async (gw: Gateway): Promise<WsClient> => {
      const c = await WsClient.connect(gw.wsUrl, 'chat.json');
      await c.nextOfType('menu');
      return c;
    };
    const ack = async (c: WsClient, text: string, id: string | number): Promise<number> => {
      c.sendJson({ op: 'send', text, id });
      const a = await c.nextOfType<{ id: unknown; seq: number }>('ack');
      assert.equal(a.id, id);
      return a.seq;
    };
    const ann = await json(g1);
    ann.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
    const joined = await ann.nextOfType<{ groupId: string; token: string }>('joined');
    // Another member with the same name (names are not unique) and the same ids is someone else.
    const twin = await json(g2);
    twin.sendJson({ op: 'join', name: 'Ann', groupId: joined.groupId, password: 'pw' });
    await twin.nextOfType('joined');
    assert.equal(await ack(ann, 'a0', 0), 1);
    assert.equal(await ack(twin, 'twin0', 0), 2, 'the same client id from another join is a new message');
    assert.equal(await ack(ann, 'a0', 0), 1, 'a retry on the same connection: the first seq');
    assert.equal(await ack(ann, 'a0', '0'), 3, 'the string "0" is another id than the number 0');
    // Enough sends that the set was cut twice (publish.lua trims it every DEDUPE_TRIM_EVERY messages).
    const N = 2 * DEDUPE_TRIM_EVERY;
    for (let i = 1; i <= N; i++) await ack(ann, `m${i}`, `id${i}`);
    const top = 3 + N;
    const key = `chat:{g:${joined.groupId}}:sent`;
    const held = await redis.admin.zcard(key);
    assert.ok(held >= W && held < W + DEDUPE_TRIM_EVERY, `the window keeps the newest W ids of the group, and fewer than ${DEDUPE_TRIM_EVERY} more (${held})`);
    const pttl = await redis.admin.pttl(key);
    assert.ok(pttl > 0 && pttl <= TTL * 1000, `a TTL of at most ${TTL} s (${pttl} ms)`);
    const bytes = Number(await redis.admin.call('MEMORY', 'USAGE', key));
    t.diagnostic(`dedupe set with ${held} entries: ${bytes} bytes (${Math.round(bytes / held)} per entry)`);

    // Resumed on the other node (a new connection, the same member): ids in the window are answered
    // with their first seq; one that fell out is a new message.
    ann.close();
    const back = await json(g2);
    back.sendJson({ op: 'resume', token: joined.token, since: top });
    await back.nextOfType('joined');
    assert.equal(await ack(back, `m${N}`, `id${N}`), top, 'newest id: deduplicated across nodes');
    const oldest = N - W + 1;
    assert.equal(await ack(back, `m${oldest}`, `id${oldest}`), 3 + oldest, 'the oldest id still in the window');
    assert.equal(await ack(back, 'm10', 'id10'), top + 1, 'an id past the window is stored again');
    assert.equal(await redis.admin.xlen(`chat:{g:${joined.groupId}}:history`), top + 1, 'every message kept (HISTORY_LIMIT 1000)');
    back.close();
    twin.close();
  } finally {
    await stop();
  }
});

test('reconnects are bounded (attempts, full jitter under the ceiling) and give up with closed: gave_up; close() while reconnecting leaves no timer or socket', async () => {
  const { freePort } = await import('../../gateway/test/helpers/gateway.js');
  const dead = `ws://127.0.0.1:${await freePort()}/`; // nothing listens there
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap').length;
  const baseline = timers();

  const delays: number[] = [];
  const c = new ResumingClient({ url: dead, backoff: { initialMs: 40, maxMs: 80, maxAttempts: 4 }, random: () => 0.999 });
  c.on('reconnecting', (r) => delays.push(r.delayMs));
  const closed = new Promise<string>((res) => c.once('closed', (e) => res(e.reason)));
  await assert.rejects(within(c.connect(), 10_000, 'connect to give up'), /could not connect/);
  assert.equal(await closed, 'gave_up');
  assert.equal(delays.length, 4, 'maxAttempts tries, then no more');
  // Full jitter: random × min(maxMs, initialMs × 2^(attempt-1)); here random is just under 1.
  assert.deepEqual(delays, [39, 79, 79, 79]);
  await assert.rejects(c.send('x'), /closed/);

  const d = new ResumingClient({ url: dead, backoff: { initialMs: 5000, maxMs: 5000 } });
  const first = d.connect().catch(() => 'rejected');
  await new Promise<void>((res) => d.once('reconnecting', () => res()));
  assert.ok(timers() > baseline, 'a retry timer is pending');
  await d.close();
  assert.equal(await first, 'rejected');
  // Polled without a timer of our own (until() would add one): the socket's handle goes within a few ticks.
  const deadline = Date.now() + 2000;
  while (timers() > baseline && Date.now() < deadline) await new Promise<void>((r) => setImmediate(r));
  assert.ok(timers() <= baseline, `no timer or socket left after close(): ${process.getActiveResourcesInfo().join(', ')}`);
});

test('a resume onto a group whose seq went backwards (Redis lost messages) is reported as rewound, and the reused seqs are delivered', async () => {
  const { redis, gws, stop } = await twoNodes();
  const [g1, g2] = gws as [Gateway, Gateway];
  const relay = await MuteRelay.start(g1.port);
  // A third node with no member of the group yet: Ann's resume lands there, on a fresh hub. (A node
  // that fanned out seqs 3..5 before the loss still drops their reuse: hubs.ts keeps its last seq.)
  const g3 = await startGateway({ env: g1.env, noTcp: true });
  try {
    const ann = await Member.open([relay.url, g3.wsUrl]);
    const bob = await Member.open([g2.wsUrl]);
    const { groupId } = await ann.c.create('Ann', 'pw');
    await bob.c.join('Bob', groupId, 'pw');
    for (let i = 1; i <= 5; i++) await bob.c.send(`b${i}`);
    await until(() => ann.c.lastSeq === 5, 5000, 'Ann at seq 5');
    // Redis loses the last three messages (as a restore from an older AOF would), then Ann's link drops.
    const stream = `chat:{g:${groupId}}:history`;
    const kept = (await redis.admin.xrange(stream, '-', '+')).slice(0, 2);
    await redis.admin.del(stream);
    for (const [id, fields] of kept) await redis.admin.xadd(stream, id, ...fields);
    await redis.admin.hset(`chat:{g:${groupId}}`, 'seq', '2');
    const rewound = new Promise<{ lastSeq: number; top: number }>((res) => ann.c.once('rewound', res));
    relay.cut();
    assert.deepEqual(await within(rewound, 15_000, 'rewound'), { groupId, lastSeq: 5, top: 2 });
    await bob.c.send('after the loss');
    const m = await ann.inbox.next(5000, 'the message with a reused seq', (x) => x.text === 'after the loss').catch((e: Error) => {
      throw new Error(`${e.message}: Ann last ${ann.c.lastSeq} ${JSON.stringify(ann.c.counters)} on g3 ${g3.output.filter((l) => l.includes('RESUMED')).length}`);
    });
    assert.equal(m.seq, 3, 'seq 3 again, delivered rather than dropped as a duplicate');
    for (const x of [ann, bob]) await x.c.close();
  } finally {
    await relay.close();
    await g3.stop('SIGKILL');
    await stop();
  }
});
