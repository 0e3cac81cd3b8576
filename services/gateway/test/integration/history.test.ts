// History paging (PROTOCOL.md §3 `history`; `/history` for text clients) on a real gateway, on
// each engine: pages reach everything HISTORY_LIMIT kept, with no gap or overlap; a join replays
// only HISTORY_REPLAY; bad fields and a client outside a group get their errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { WsClient } from '../helpers/clients.js';
import { ENGINES, gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { jsonFrom, TRUST_LOOPBACK } from '../helpers/forwarded.js';
import { type Ev, jsonClient, jsonCreate, jsonJoin, tcpJoin, wsTextJoin } from '../helpers/members.js';

const KEPT = 30;
const REPLAY = 5;
const PAGE_MAX = 7;
const SENT = 40;
/** The seqs HISTORY_LIMIT keeps of SENT messages. */
const keptSeqs = Array.from({ length: KEPT }, (_, i) => SENT - KEPT + 1 + i);

interface Page {
  messages: Array<{ type: string; groupId: string; seq: number; from: string; text: string; ts: number }>;
  more: boolean;
}

for (const engine of ENGINES) {
  describe(`history paging on the ${engine} engine`, () => {
    let gw: Gateway;
    let groupId: string;
    before(async () => {
      gw = await gatewayOn(engine, {
        env: { HISTORY_LIMIT: String(KEPT), HISTORY_REPLAY: String(REPLAY), HISTORY_PAGE_MAX: String(PAGE_MAX), RATE_LIMIT_PER_SEC: '0', HISTORY_RATE_PER_SEC: '0' },
      });
      const a = await jsonCreate(gw, 'Adina', 'pw-history');
      groupId = a.groupId;
      for (let i = 1; i <= SENT; i++) a.c.sendJson({ op: 'send', text: `m${i}`, id: i });
      for (let i = 1; i <= SENT; i++) assert.deepEqual(await a.c.nextOfType('ack'), { type: 'ack', id: i, seq: i });
      a.c.close();
    });
    after(async () => {
      await gw.stop();
    });

    test('JSON: a join replays HISTORY_REPLAY; pages go back to the oldest kept message with no gap or overlap', async () => {
      const { c, seq } = await jsonJoin(gw, 'Maya', groupId, 'pw-history');
      assert.equal(seq, SENT);
      const replay: number[] = [];
      for (let i = 0; i < REPLAY; i++) replay.push((await c.nextOfType<{ seq: number }>('message')).seq);
      assert.deepEqual(replay, [36, 37, 38, 39, 40]);

      // No `before`: the newest page; no `limit`: 50, clamped to HISTORY_PAGE_MAX.
      c.sendJson({ op: 'history' });
      const newest = await c.nextOfType<Page & Ev>('history');
      assert.equal(newest['groupId'], groupId);
      assert.deepEqual(newest.messages.map((m) => m.seq), [34, 35, 36, 37, 38, 39, 40]);
      assert.equal(newest.more, true);
      const m34 = newest.messages[0];
      assert.deepEqual({ ...m34, ts: 0 }, { type: 'message', groupId, seq: 34, from: 'Adina', text: 'm34', ts: 0 });
      assert.equal(typeof m34?.ts, 'number');

      // From what the join showed, back to the start: every kept message exactly once.
      const got: number[] = [...replay];
      let cursor = replay[0] as number;
      let pages = 0;
      for (;;) {
        c.sendJson({ op: 'history', before: cursor, limit: 3 });
        const p = await c.nextOfType<Page>('history');
        pages++;
        assert.ok(p.messages.length <= 3);
        got.unshift(...p.messages.map((m) => m.seq));
        if (!p.more) break;
        cursor = p.messages[0]?.seq as number;
        assert.ok(pages < 20, 'paging ends');
      }
      assert.deepEqual(got, keptSeqs);
      // Past the oldest: an empty page, nothing more.
      c.sendJson({ op: 'history', before: keptSeqs[0], limit: 10 });
      assert.deepEqual(await c.nextOfType('history'), { type: 'history', groupId, messages: [], more: false });
      // A page that reaches exactly the oldest says there is no more.
      c.sendJson({ op: 'history', before: keptSeqs[PAGE_MAX], limit: PAGE_MAX });
      const exact = await c.nextOfType<Page>('history');
      assert.deepEqual([exact.messages.map((m) => m.seq), exact.more], [keptSeqs.slice(0, PAGE_MAX), false]);
      c.close();
    });

    test('JSON resume: without `since` the recent HISTORY_REPLAY, with it everything after it that is kept', async () => {
      const { c, token } = await jsonJoin(gw, 'Rae', groupId, 'pw-history');
      c.close();
      const seqs = async (since: number | undefined): Promise<number[]> => {
        const r = await jsonClient(gw);
        r.sendJson(since === undefined ? { op: 'resume', token } : { op: 'resume', token, since });
        assert.equal((await r.nextJson<Ev>()).type, 'joined');
        const out: number[] = [];
        // The replay ends with the newest; `who` answers after it.
        r.sendJson({ op: 'who' });
        for (;;) {
          const e = await r.nextJson<Ev>();
          if (e.type === 'members') break;
          if (e.type === 'message') out.push(e['seq'] as number);
        }
        r.close();
        return out;
      };
      assert.deepEqual(await seqs(undefined), [36, 37, 38, 39, 40]);
      assert.deepEqual(await seqs(20), Array.from({ length: 20 }, (_, i) => 21 + i));
      assert.deepEqual(await seqs(0), keptSeqs, 'since 0: everything kept');
    });

    test('JSON: bad `before` or `limit` is invalid_input; outside a group not_joined', async () => {
      const c = await jsonClient(gw);
      c.sendJson({ op: 'history' });
      assert.equal((await c.nextJson<Ev>())['code'], 'not_joined');
      c.close();
      const { c: m } = await jsonJoin(gw, 'Bad', groupId, 'pw-history');
      for (const bad of [{ before: 0 }, { before: -3 }, { before: 1.5 }, { before: '9' }, { limit: 0 }, { limit: 'all' }, { limit: 2 ** 60 }]) {
        m.sendJson({ op: 'history', ...bad });
        const e = await m.nextOfType<Ev>('error');
        assert.deepEqual([e['code'], e['message']], ['invalid_input', '"before" and "limit" must be positive integers'], JSON.stringify(bad));
      }
      m.sendJson({ op: 'history', limit: 1 });
      assert.deepEqual((await m.nextOfType<Page>('history')).messages.map((x) => x.seq), [SENT], 'still in the group');
      m.close();
    });

    test('TCP text: /history prints the page before the oldest line shown, in `{from}: {text}` lines, until none are left', async () => {
      const t = await tcpJoin(gw, 'Tee', groupId, 'pw-history');
      const seen: string[] = [];
      for (let i = 0; i < REPLAY; i++) seen.push(await t.next());
      assert.deepEqual(seen, ['Adina: m36', 'Adina: m37', 'Adina: m38', 'Adina: m39', 'Adina: m40']);
      // 11..35 are left before the replay: pages of PAGE_MAX lines (29–35, 22–28, 15–21), then 11–14.
      for (const size of [7, 7, 7, 4]) {
        t.send('/history');
        const lines: string[] = [];
        for (let i = 0; i < size; i++) lines.push(await t.next());
        seen.unshift(...lines);
      }
      assert.deepEqual(seen, keptSeqs.map((s) => `Adina: m${s}`));
      t.send('/history');
      assert.equal(await t.next(), 'No older messages.', 'stays at the start');
      t.close();
    });

    test('WebSocket text: one /history page is one frame of lines', async () => {
      const w = await wsTextJoin(gw, 'Wes', groupId, 'pw-history');
      for (let i = 36; i <= 40; i++) assert.equal(await w.next(), `Adina: m${i}`);
      w.send('/history');
      assert.equal(await w.next(), [29, 30, 31, 32, 33, 34, 35].map((s) => `Adina: m${s}`).join('\n'));
      w.send('/history');
      assert.equal(await w.next(), [22, 23, 24, 25, 26, 27, 28].map((s) => `Adina: m${s}`).join('\n'));
      w.close();
    });
  });
}

describe('history budget', () => {
  let gw: Gateway;
  before(async () => {
    gw = await gatewayOn('memory', {
      noTcp: true,
      env: { ...TRUST_LOOPBACK, HISTORY_RATE_PER_SEC: '1', HISTORY_RATE_BURST: '3', HISTORY_ADDRESS_RATE_PER_SEC: '1', HISTORY_REPLAY: '0' },
    });
  });
  after(async () => {
    await gw.stop();
  });

  test('past the connection\'s burst of pages: rate_limited, and the connection stays in its group', async () => {
    const { c, groupId } = await jsonCreate(gw, 'Ann', 'pw-budget');
    c.sendJson({ op: 'send', text: 'one' });
    await c.nextOfType('ack');
    for (let i = 0; i < 3; i++) {
      c.sendJson({ op: 'history' });
      assert.equal((await c.nextOfType<Page>('history')).messages.length, 1);
    }
    c.sendJson({ op: 'history' });
    const e = await c.nextJson<Ev>();
    assert.deepEqual([e.type, e['code']], ['error', 'rate_limited']);
    c.sendJson({ op: 'send', text: 'two' });
    assert.deepEqual(await c.nextOfType('ack'), { type: 'ack', id: null, seq: 2 });
    c.sendJson({ op: 'who' });
    assert.deepEqual(await c.nextOfType('members'), { type: 'members', groupId, names: ['Ann'] });
    c.close();
  });

  test('past an address\'s burst of pages on this node (over all its connections): rate_limited; another address is not affected', async () => {
    const { c: owner, groupId } = await jsonCreate(gw, 'Own', 'pw-addr');
    owner.sendJson({ op: 'send', text: 'one' });
    await owner.nextOfType('ack');
    const from = async (ip: string): Promise<WsClient> => {
      const c = await jsonFrom(gw, ip);
      c.sendJson({ op: 'join', name: 'X', groupId, password: 'pw-addr' });
      await c.nextOfType('joined');
      return c;
    };
    const [x1, x2, other] = [await from('198.51.100.7'), await from('198.51.100.7'), await from('203.0.113.9')];
    const pageOf = async (c: WsClient): Promise<string> => {
      c.sendJson({ op: 'history' });
      const f = await c.frames.next(5000, 'a page or an error', (s) => /"type":"(history|error)"/.test(s));
      const e = JSON.parse(f) as Ev;
      return e.type === 'history' ? 'page' : String(e['code']);
    };
    // The address's burst is 2 (twice HISTORY_ADDRESS_RATE_PER_SEC), each connection's 3.
    assert.deepEqual([await pageOf(x1), await pageOf(x2), await pageOf(x1)], ['page', 'page', 'rate_limited']);
    assert.equal(await pageOf(other), 'page');
    for (const c of [owner, x1, x2, other]) c.close();
  });

  test('HISTORY_REPLAY=0: a join replays nothing; paging and /history still reach everything kept', async () => {
    const { c: owner, groupId } = await jsonCreate(gw, 'Own', 'pw-noreplay');
    for (const t of ['one', 'two']) {
      owner.sendJson({ op: 'send', text: t });
      await owner.nextOfType('ack');
    }
    const { c } = await jsonJoin(gw, 'New', groupId, 'pw-noreplay');
    c.sendJson({ op: 'who' });
    assert.equal((await c.nextJson<Ev>()).type, 'members', 'no message before the answer to who');
    c.sendJson({ op: 'history' });
    assert.deepEqual((await c.nextOfType<Page>('history')).messages.map((m) => m.text), ['one', 'two']);
    owner.sendJson({ op: 'send', text: 'three' });
    assert.equal((await c.nextOfType<{ text: string }>('message')).text, 'three', 'live messages still come');
    const w = await wsTextJoin(gw, 'Wes', groupId, 'pw-noreplay');
    w.send('/history');
    assert.equal(await w.next(), 'Own: one\nOwn: two\nOwn: three', 'the page before the next live line');
    for (const x of [owner, c, w]) x.close();
  });
});
