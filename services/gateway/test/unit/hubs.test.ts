// hubs.ts in-process, against a scripted broker and a recording fan-out: in-order delivery by seq,
// duplicates dropped, gaps backfilled, a failed backfill kept and retried, a resync during a backfill.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Broker, ChannelEvent, ChannelHandler, HistoryPage, HistoryQuery, Notice, StoredMessage } from '../../src/engine/engine.js';
import { GroupHubs } from '../../src/hubs.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { Conn, Fanout } from '../../src/ports.js';
import type { Encoded } from '../../src/protocol/codecs.js';
import { Inbox } from '../helpers/wait.js';

const G = '7';
const msg = (seq: number): StoredMessage => ({ groupId: G, seq, from: 'ann', text: `m${seq}`, ts: Date.now(), origin: 'other/1' });

/** A broker whose history is the messages the test stored, whose calls can fail or wait when the test says. */
class ScriptedBroker implements Broker {
  stored: StoredMessage[] = [];
  handler: ChannelHandler | null = null;
  subscribed = false;
  historyCalls = new Inbox<HistoryQuery>();
  failHistory = 0;
  /** While set, history() waits for it. */
  gate: Promise<void> | null = null;
  async publish(): Promise<StoredMessage> {
    throw new Error('not used');
  }
  async history(_g: string, q: HistoryQuery): Promise<HistoryPage> {
    this.historyCalls.push(q);
    // What is stored now is what this read sees, however long its answer then takes (the gate).
    const since = q.since;
    const rows = q.limit <= 0 ? [] : since === undefined ? this.stored.slice(-q.limit) : this.stored.filter((m) => m.seq > since).slice(0, q.limit);
    const top = this.stored.at(-1)?.seq ?? 0;
    const fail = this.failHistory > 0;
    if (fail) this.failHistory--;
    if (this.gate) await this.gate;
    if (fail) throw new Error('redis down');
    return { messages: rows, top };
  }
  onChannel(h: ChannelHandler): void {
    this.handler = h;
  }
  async subscribe(): Promise<void> {
    this.subscribed = true;
  }
  async unsubscribe(): Promise<void> {
    this.subscribed = false;
  }
  async notify(_n: Notice): Promise<void> {}
  /** Store and deliver (or, with `deliver: false`, store only: a message this node missed). */
  add(seq: number, deliver = true): void {
    const m = msg(seq);
    this.stored.push(m);
    if (deliver) this.emit({ kind: 'message', message: m });
  }
  emit(ev: ChannelEvent): void {
    if (this.subscribed) this.handler?.(G, ev);
  }
}

/** A member's connection: records what the hubs asked of it. */
class RecordingConn implements Conn {
  readonly codec = 'json' as const;
  readonly transport = 'ws_json' as const;
  readonly address = { ip: '192.0.2.1', key: '192.0.2.1', exempt: false };
  readonly log: string[] = [];
  write(msg: string): void {
    this.log.push(`write ${msg}`);
  }
  end(): void {}
  subscribe(groupId: string): void {
    this.log.push(`subscribe ${groupId}`);
  }
  unsubscribe(groupId: string): void {
    this.log.push(`unsubscribe ${groupId}`);
  }
}

class RecordingFanout implements Fanout {
  readonly seqs: number[] = [];
  /** Per message fanned out: the connection left out (its sender, when local). */
  readonly excluded: (Conn | null)[] = [];
  readonly delivered = new Inbox<number>();
  publish(_g: string, out: Encoded, exclude: Conn | null, isMessage: boolean): void {
    if (!isMessage) return;
    const seq = (JSON.parse(out.json as string) as { seq: number }).seq;
    this.seqs.push(seq);
    this.excluded.push(exclude);
    this.delivered.push(seq);
  }
  /** Wait until `seq` has been fanned out. */
  async upTo(seq: number): Promise<void> {
    if (this.seqs.includes(seq)) return;
    await this.delivered.next(5000, `seq ${seq} fanned out`, (s) => s === seq);
  }
}

/** Hubs with one member (`m/1`) in group G. */
async function live(limit = 100): Promise<{ hubs: GroupHubs; broker: ScriptedBroker; out: RecordingFanout; metrics: Metrics; conn: RecordingConn }> {
  const broker = new ScriptedBroker();
  const metrics = new Metrics('test');
  const hubs = new GroupHubs(broker, { historyLimit: limit, historyReplay: limit }, createLogger('silent', 'test'), metrics);
  const out = new RecordingFanout();
  hubs.addFanout(out);
  const conn = new RecordingConn();
  assert.equal(await hubs.attach(G, 'm/1', conn, 'recent', () => false, () => undefined), true);
  return { hubs, broker, out, metrics, conn };
}

describe('hubs', () => {
  test('in seq order, once: duplicates are dropped', async () => {
    const { broker, out } = await live();
    for (const s of [1, 2, 3]) broker.add(s);
    broker.emit({ kind: 'message', message: msg(2) });
    broker.emit({ kind: 'message', message: msg(3) });
    broker.add(4);
    await out.upTo(4);
    assert.deepEqual(out.seqs, [1, 2, 3, 4]);
  });

  test('a gap is backfilled from history, in order, before what came after it', async () => {
    const { broker, out, metrics } = await live();
    broker.add(1);
    broker.add(2, false); // missed by this node
    broker.add(3, false);
    broker.add(4);
    await out.upTo(4);
    assert.deepEqual(out.seqs, [1, 2, 3, 4]);
    assert.equal((await metrics.backfills.get()).values[0]?.value, 1);
  });

  test('history is read in pages of the history limit', async () => {
    const { broker, out } = await live(2);
    broker.add(1);
    for (const s of [2, 3, 4, 5]) broker.add(s, false);
    broker.add(6);
    await out.upTo(6);
    assert.deepEqual(out.seqs, [1, 2, 3, 4, 5, 6]);
  });

  test('a failed backfill keeps what is buffered and is retried: nothing skipped or reordered', async () => {
    const { broker, out } = await live();
    broker.add(1);
    broker.failHistory = 1;
    broker.add(2, false);
    broker.add(3); // gap: the backfill fails
    await broker.historyCalls.next(5000, 'the failing backfill');
    broker.add(4); // buffered while the retry is pending
    assert.deepEqual(out.seqs, [1]);
    broker.emit({ kind: 'resync' }); // e.g. Redis is back: retry now
    await out.upTo(4);
    assert.deepEqual(out.seqs, [1, 2, 3, 4]);
  });

  test('a resync during a backfill runs another round: what was stored meanwhile is not skipped', async () => {
    const { broker, out } = await live();
    broker.add(1);
    let open = (): void => undefined;
    broker.gate = new Promise<void>((r) => (open = r));
    broker.add(2, false);
    broker.add(3); // gap: a backfill starts and waits at the gate
    await broker.historyCalls.next(5000, 'the first backfill round');
    broker.add(4, false); // stored after the first round's read... but this node missed it
    broker.emit({ kind: 'resync' });
    broker.gate = null;
    open();
    await out.upTo(4);
    assert.deepEqual(out.seqs, [1, 2, 3, 4]);
  });

  test('a joining member gets history, then the live topic, in the same tick; what it has seen is not sent twice', async () => {
    const { hubs, broker, out } = await live();
    broker.add(1);
    broker.add(2);
    await out.upTo(2);
    const conn = new RecordingConn();
    let greeted: number[] = [];
    const joined = await hubs.attach(G, 'm/2', conn, { since: 1 }, () => false, (h) => {
      greeted = h.map((m) => m.seq);
      assert.deepEqual(conn.log, [], 'not subscribed before its history');
    });
    assert.equal(joined, true);
    assert.deepEqual(greeted, [2]);
    assert.deepEqual(conn.log, [`subscribe ${G}`]);
  });

  test('a member that left while joining is not added and holds nothing', async () => {
    const { hubs, broker } = await live();
    const conn = new RecordingConn();
    assert.equal(await hubs.attach(G, 'm/2', conn, 'recent', () => true, () => assert.fail('greeted')), false);
    assert.deepEqual(conn.log, []);
    assert.equal(hubs.detach('m/2', true), null, 'not a member');
    assert.equal(hubs.detach('m/1', true), G);
    assert.equal(broker.subscribed, false, 'the only member left: no subscription held for the one that never joined');
  });

  test('a local member is left out of the fan-out of its own messages, nobody else is', async () => {
    const { broker, out, conn } = await live();
    broker.stored.push({ ...msg(1), origin: 'm/1' });
    broker.emit({ kind: 'message', message: broker.stored[0] as StoredMessage });
    broker.add(2); // from another node's member
    await out.upTo(2);
    assert.deepEqual(out.excluded, [conn, null]);
  });

  test('detach unsubscribes the member’s connection; the last member out ends the subscription', async () => {
    const { hubs, broker, conn } = await live();
    const other = new RecordingConn();
    assert.equal(await hubs.attach(G, 'm/2', other, 'recent', () => false, () => undefined), true);
    assert.equal(hubs.detach('m/1', true), G);
    assert.deepEqual(conn.log, [`subscribe ${G}`, `unsubscribe ${G}`]);
    assert.equal(broker.subscribed, true, 'one member is still here');
    assert.equal(hubs.detach('m/2', false), G);
    assert.deepEqual(other.log, [`subscribe ${G}`], 'a closed connection is not unsubscribed');
    assert.equal(broker.subscribed, false);
  });
});
