// The JSON protocol (PROTOCOL.md §3) and a mixed group: TCP and WS-JSON members see each other.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { ENGINES, gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

type Ev = Record<string, unknown> & { type: string };

async function jsonClient(gw: Gateway): Promise<WsClient> {
  const c = await WsClient.connect(gw.wsUrl, 'chat.json');
  assert.deepEqual(await c.nextJson(), {
    type: 'menu',
    options: { '1': 'Connect to a group chat', '2': 'Create a group chat.', '3': 'Exit the server.' },
  });
  return c;
}

for (const engine of ENGINES) {
  describe(`JSON protocol on the ${engine} engine`, () => {
    let gw: Gateway;
    before(async () => {
      gw = await gatewayOn(engine);
    });
    after(async () => {
      await gw.stop();
    });

    test('join with no groups anywhere: no_groups, and the connection stays open', async () => {
      const c = await jsonClient(gw);
      c.sendJson({ op: 'join', name: 'x', groupId: '0', password: 'p' });
      const e = await c.nextJson<Ev>();
      assert.equal(e.type, 'error');
      assert.equal(e['code'], 'no_groups');
      c.sendJson({ op: 'who' });
      assert.equal((await c.nextJson<Ev>())['code'], 'not_joined');
      c.close();
    });

    test('create, join, send with ack and growing seq, members, exit', async () => {
      const a = await jsonClient(gw);
      a.sendJson({ op: 'create', name: 'Adina', password: 'secret-1' });
      const created = await a.nextJson<Ev>();
      assert.equal(created.type, 'created');
      const groupId = created['groupId'];
      assert.equal(typeof groupId, 'string');
      assert.match(groupId as string, /^\d+$/);
      const joinedA = await a.nextJson<Ev>();
      assert.equal(joinedA.type, 'joined');
      assert.equal(joinedA['groupId'], groupId);
      assert.equal(joinedA['name'], 'Adina');
      assert.equal(joinedA['seq'], 0);
      assert.equal(typeof joinedA['token'], 'string');

      const b = await jsonClient(gw);
      b.sendJson({ op: 'join', name: 'Maya', groupId, password: 'wrong' });
      assert.deepEqual(await b.nextJson(), { type: 'error', code: 'wrong_password', message: 'Wrong password. Please try again! ' });
      b.sendJson({ op: 'join', name: 'Maya', groupId: '999', password: 'secret-1' });
      assert.equal((await b.nextJson<Ev>())['code'], 'unknown_group');
      b.sendJson({ op: 'join', name: 'Maya', groupId, password: 'secret-1' });
      const joinedB = await b.nextJson<Ev>();
      assert.equal(joinedB.type, 'joined');
      assert.equal(joinedB['seq'], 0);
      assert.deepEqual(await a.nextJson(), { type: 'member_joined', groupId, name: 'Maya' });

      for (let i = 1; i <= 3; i++) {
        a.sendJson({ op: 'send', text: `m${i}`, id: `c${i}` });
        assert.deepEqual(await a.nextJson(), { type: 'ack', id: `c${i}`, seq: i });
        const m = await b.nextJson<Ev>();
        assert.equal(m.type, 'message');
        assert.equal(m['seq'], i);
        assert.equal(m['from'], 'Adina');
        assert.equal(m['text'], `m${i}`);
        assert.equal(m['groupId'], groupId);
        assert.ok(typeof m['ts'] === 'number' && Math.abs((m['ts'] as number) - Date.now()) < 60_000);
      }
      b.sendJson({ op: 'send', text: 'no id' });
      assert.deepEqual(await b.nextJson(), { type: 'ack', id: null, seq: 4 });
      assert.equal((await a.nextJson<Ev>())['seq'], 4);

      b.sendJson({ op: 'who' });
      const members = await b.nextJson<Ev>();
      assert.equal(members.type, 'members');
      assert.deepEqual([...(members['names'] as string[])].sort(), ['Adina', 'Maya']);

      // A late joiner with `since` gets exactly the history after it.
      const c = await jsonClient(gw);
      c.sendJson({ op: 'join', name: 'Cy', groupId, password: 'secret-1', since: 2 });
      assert.equal((await c.nextJson<Ev>())['seq'], 4);
      assert.deepEqual(
        [await c.nextJson<Ev>(), await c.nextJson<Ev>()].map((m) => [m.type, m['seq'], m['text']]),
        [
          ['message', 3, 'm3'],
          ['message', 4, 'no id'],
        ],
      );

      assert.deepEqual(await b.nextJson(), { type: 'member_joined', groupId, name: 'Cy' });
      b.sendJson({ op: 'exit' });
      assert.deepEqual(await b.nextJson(), { type: 'bye' });
      assert.equal((await within(b.closed, 5000, 'close after exit')).code, 1000);
      assert.deepEqual(await a.nextOfType('member_left'), { type: 'member_left', groupId, name: 'Maya' });
      a.close();
      c.close();
    });

    test('resume with the token and since: every later message, no gap, no duplicate', async () => {
      const a = await jsonClient(gw);
      a.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
      const { groupId } = await a.nextOfType<{ groupId: string }>('created');
      const { token } = await a.nextOfType<{ token: string }>('joined');
      for (let i = 1; i <= 5; i++) {
        a.sendJson({ op: 'send', text: `t${i}` });
        await a.nextOfType('ack');
      }
      a.close();
      await a.closed;
      const r = await jsonClient(gw);
      r.sendJson({ op: 'resume', token, since: 2 });
      const joined = await r.nextJson<Ev>();
      assert.equal(joined.type, 'joined');
      assert.equal(joined['groupId'], groupId);
      assert.equal(joined['name'], 'Ann');
      assert.equal(joined['seq'], 5);
      const seqs = [];
      for (let i = 0; i < 3; i++) seqs.push((await r.nextJson<Ev>())['seq']);
      assert.deepEqual(seqs, [3, 4, 5]);
      r.sendJson({ op: 'send', text: 'back' });
      assert.deepEqual(await r.nextJson(), { type: 'ack', id: null, seq: 6 });
      r.sendJson({ op: 'resume', token: token.slice(0, -2) + 'xx', since: 0 });
      assert.equal((await r.nextJson<Ev>())['code'], 'invalid_token'); // issue 8: a refused token gets invalid_token
      r.close();
    });

    test('a TCP member and a WS-JSON member in one group see each other', async () => {
      const j = await jsonClient(gw);
      j.sendJson({ op: 'create', name: 'Jay', password: 'mixed' });
      const { groupId } = await j.nextOfType<{ groupId: string }>('created');
      await j.nextOfType('joined');

      const t = await LineClient.connect(gw.tcpPort);
      await t.nextLines(4);
      for (const [say, hear] of [
        ['1', 'Enter your name: '],
        ['Tee', 'Enter group ID: '],
        [groupId, 'Enter password: '],
        ['mixed', `Hi Tee! welcome to group ${groupId}!`],
      ] as const) {
        t.send(say);
        assert.equal(await t.next(), hear);
      }
      assert.deepEqual(await j.nextJson(), { type: 'member_joined', groupId, name: 'Tee' });
      t.send('hello from tcp');
      const m = await j.nextJson<Ev>();
      assert.equal(m.type, 'message');
      assert.equal(m['from'], 'Tee');
      assert.equal(m['text'], 'hello from tcp');
      j.sendJson({ op: 'send', text: 'hello from json', id: 7 });
      assert.deepEqual(await j.nextJson(), { type: 'ack', id: 7, seq: (m['seq'] as number) + 1 });
      assert.equal(await t.next(), 'Jay: hello from json');
      // A JSON client's create while in a group leaves that group first.
      j.sendJson({ op: 'create', name: 'Jay', password: 'other' });
      await j.nextOfType('created');
      assert.equal(await t.next(), 'Jay has left the chat.');
      t.close();
      j.close();
    });
  });
}
