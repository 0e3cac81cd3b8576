// The server HTTP API (PROTOCOL.md §3b) against real gateways: two nodes on one Redis with members
// on every transport, and a single embedded node. Every route and error, messages in the group's
// order everywhere, group removal on every node, key rotation, 404 with API_KEY unset, and the key
// nowhere in logs or metrics.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { type Ev, jsonClient, jsonJoin, tcpJoin, wsTextJoin } from '../helpers/members.js';
import { RedisServer } from '../helpers/redis.js';
import { MENU } from '../helpers/transcript.js';

const KEY1 = 'first-api-key-0123456789abcdef';
const KEY2 = 'second-api-key-fedcba9876543210';
const API_ENV = { API_KEY: `${KEY1}, ${KEY2}`, MAX_TEXT_LENGTH: '100', RATE_LIMIT_PER_SEC: '0' };

interface Answer {
  status: number;
  body: string;
  json: Record<string, unknown> & { error?: string; groupId?: string; seq?: number };
  type: string | null;
}

async function call(gw: Gateway, method: string, path: string, body?: unknown, key: string | null = KEY1, raw?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (key !== null) headers['Authorization'] = `Bearer ${key}`;
  const init: RequestInit = { method, headers };
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(`http://127.0.0.1:${gw.port}${path}`, init);
  const text = await r.text();
  let json = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // 204: no body
  }
  return { status: r.status, body: text, json, type: r.headers.get('content-type') };
}

const create = async (gw: Gateway, password: string, key = KEY1): Promise<string> => {
  const r = await call(gw, 'POST', '/api/v1/groups', { password }, key);
  assert.equal(r.status, 201, r.body);
  assert.match(r.json.groupId as string, /^(0|[1-9][0-9]*)$/);
  return r.json.groupId as string;
};

const isChat = (l: string): boolean => /^(bot|Sam): /.test(l);

describe('server HTTP API: two nodes on one Redis', () => {
  let redis: RedisServer;
  let a: Gateway;
  let b: Gateway;
  before(async () => {
    redis = await RedisServer.start();
    a = await gatewayOn('redis', { redis, env: { ...API_ENV, NODE_ID: 'api-a' } });
    b = await gatewayOn('redis', { redis, env: { ...API_ENV, NODE_ID: 'api-b' } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.close();
  });

  test('POST /api/v1/groups: 201 with the ID; members join it with the password on any node', async () => {
    const groupId = await create(a, 'pw-made-by-api');
    const r = await call(a, 'POST', '/api/v1/groups', { password: 'pw' });
    assert.equal(r.type, 'application/json');
    assert.equal(Number(r.json.groupId), Number(groupId) + 1, 'IDs from the one counter');
    const { c } = await jsonJoin(b, 'Maya', groupId, 'pw-made-by-api');
    c.sendJson({ op: 'send', text: 'in' });
    assert.deepEqual(await c.nextOfType('ack'), { type: 'ack', id: null, seq: 1 });
    c.close();
    for (const bad of [{}, { password: '' }, { password: 7 }, [1]]) {
      const e = await call(a, 'POST', '/api/v1/groups', bad);
      assert.deepEqual([e.status, e.json.error], [400, 'invalid_input'], JSON.stringify(bad));
      assert.equal(typeof e.json['message'], 'string');
    }
    for (const raw of ['not json', '', '\xff']) assert.equal((await call(a, 'POST', '/api/v1/groups', undefined, KEY1, raw)).status, 400);
  });

  test('an API message reaches TCP, WS text and WS JSON members on the other node, in the group’s order, and is stored', async () => {
    const groupId = await create(a, 'pw-order');
    const tcp = await tcpJoin(b, 'Tee', groupId, 'pw-order');
    const wst = await wsTextJoin(b, 'Wes', groupId, 'pw-order');
    const js = (await jsonJoin(b, 'Jo', groupId, 'pw-order')).c;
    const sender = (await jsonJoin(a, 'Sam', groupId, 'pw-order')).c;
    // Everyone is live once they have heard of the last joiner.
    await tcp.until('Sam has joined the chat!');
    await wst.frames.next(5000, 'Sam joined (ws text)', (f) => f === 'Sam has joined the chat!');
    await js.nextOfType('member_joined');

    // A member on node A and the API on node A, interleaved and concurrent.
    const N = 10;
    const posts: Array<Promise<Answer>> = [];
    for (let i = 1; i <= N; i++) {
      sender.sendJson({ op: 'send', text: `s${i}`, id: i });
      posts.push(call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: `a${i}` }));
    }
    const answers = await Promise.all(posts);
    for (const r of answers) {
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(Object.keys(r.json).sort(), ['groupId', 'seq']);
      assert.equal(r.json.groupId, groupId);
    }

    const got: Array<{ seq: number; from: string; text: string; api?: boolean }> = [];
    for (let i = 0; i < 2 * N; i++) got.push(await js.nextOfType('message'));
    assert.deepEqual(got.map((m) => m.seq), Array.from({ length: 2 * N }, (_, i) => i + 1), 'one order, no gap');
    for (const m of got) assert.equal(m.api, m.from === 'bot' ? true : undefined, `api flag of ${m.text}`);
    assert.deepEqual(got.filter((m) => m.from === 'bot').map((m) => m.text), Array.from({ length: N }, (_, i) => `a${i + 1}`));
    assert.deepEqual(answers.map((r) => r.json.seq).sort((x, y) => Number(x) - Number(y)), got.filter((m) => m.api).map((m) => m.seq), 'each answer names its seq');
    const lines = got.map((m) => `${m.from}: ${m.text}`);
    const tcpLines: string[] = [];
    const wsLines: string[] = [];
    for (let i = 0; i < 2 * N; i++) tcpLines.push(await tcp.lines.next(5000, 'a chat line (tcp)', isChat));
    for (let i = 0; i < 2 * N; i++) wsLines.push(await wst.frames.next(5000, 'a chat line (ws text)', isChat));
    assert.deepEqual(tcpLines, lines, 'TCP: the same order, `{from}: {text}`');
    assert.deepEqual(wsLines, lines, 'WebSocket text: the same order');

    // Stored: the history route and the history op show the same messages.
    const h = await call(b, 'GET', `/api/v1/groups/${groupId}/history?limit=100`);
    assert.equal(h.status, 200);
    assert.deepEqual(
      (h.json['messages'] as Array<Record<string, unknown>>).map((m) => [m['seq'], m['from'], m['text'], m['api'], typeof m['ts']]),
      got.map((m) => [m.seq, m.from, m.text, m.api, 'number']),
    );
    assert.equal(h.json['more'], false);
    js.sendJson({ op: 'history', limit: 2 });
    const page = await js.nextOfType<{ messages: Array<{ seq: number; api?: boolean }> }>('history');
    assert.deepEqual(page.messages.map((m) => [m.seq, m.api]), got.slice(-2).map((m) => [m.seq, m.api]));
    for (const c of [tcp, wst, js, sender]) c.close();
  });

  test('messages: the members’ cleaning and limits; unknown or non-canonical groups are 404', async () => {
    const groupId = await create(a, 'pw-clean');
    const { c } = await jsonJoin(b, 'Jo', groupId, 'pw-clean');
    const ok = await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: '\u200bRo\u0007bo ', text: 'hi\u001b[2J\nthere' });
    assert.equal(ok.status, 200, ok.body);
    const m = await c.nextOfType<Record<string, unknown>>('message');
    assert.deepEqual([m['from'], m['text'], m['api']], ['Robo', 'hi there', true]);
    const cases: Array<[unknown, number, string]> = [
      [{ from: 'bot', text: '   ' }, 400, 'invalid_input'],
      [{ from: '\u200b', text: 'x' }, 400, 'invalid_input'],
      [{ from: 'b'.repeat(33), text: 'x' }, 400, 'invalid_input'],
      [{ from: 'bot' }, 400, 'invalid_input'],
      [{ from: 1, text: 'x' }, 400, 'invalid_input'],
      [{ from: 'bot', text: 'x'.repeat(101) }, 413, 'too_large'],
    ];
    for (const [body, status, error] of cases) {
      const r = await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, body);
      assert.deepEqual([r.status, r.json.error], [status, error], JSON.stringify(body));
    }
    const big = await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: 'y'.repeat(20_000) });
    assert.deepEqual([big.status, big.json.error], [413, 'too_large'], 'a body past MAX_FRAME_BYTES');
    for (const id of ['999', '007', '1e3', '-1', 'abc']) {
      for (const [method, path, body] of [
        ['POST', `/api/v1/groups/${id}/messages`, { from: 'bot', text: 'x' }],
        ['GET', `/api/v1/groups/${id}/members`, undefined],
        ['GET', `/api/v1/groups/${id}/history`, undefined],
        ['DELETE', `/api/v1/groups/${id}`, undefined],
      ] as const) {
        const r = await call(a, method, path, body);
        assert.deepEqual([r.status, r.json.error], [404, 'not_found'], `${method} ${path}`);
      }
    }
    for (const [method, path] of [
      ['GET', '/api/v1/groups'],
      ['PUT', `/api/v1/groups/${groupId}`],
      ['GET', `/api/v1/groups/${groupId}/messages`],
      ['POST', `/api/v1/groups/${groupId}/history`],
      ['GET', '/api/v2/groups'],
      ['GET', '/api/'],
    ] as const) {
      const r = await call(a, method, path);
      assert.deepEqual([r.status, r.json.error], [404, 'not_found'], `${method} ${path}`);
    }
    // The only message stored is the clean one.
    const h = await call(a, 'GET', `/api/v1/groups/${groupId}/history`);
    assert.deepEqual((h.json['messages'] as unknown[]).length, 1);
    c.close();
  });

  test('members: cluster-wide; history: pages as the history op, with invalid_input for bad before/limit', async () => {
    const groupId = await create(a, 'pw-who');
    const one = await jsonJoin(a, 'Ann', groupId, 'pw-who');
    const two = await tcpJoin(b, 'Bo', groupId, 'pw-who');
    await one.c.nextOfType('member_joined');
    const r = await call(b, 'GET', `/api/v1/groups/${groupId}/members`);
    assert.equal(r.status, 200);
    assert.deepEqual([r.json.groupId, [...(r.json['members'] as string[])].sort()], [groupId, ['Ann', 'Bo']]);
    for (let i = 1; i <= 7; i++) await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: `h${i}` });
    const seqsOf = (x: Answer): number[] => (x.json['messages'] as Array<{ seq: number }>).map((m) => m.seq);
    const p1 = await call(a, 'GET', `/api/v1/groups/${groupId}/history?limit=3`);
    assert.deepEqual([seqsOf(p1), p1.json['more']], [[5, 6, 7], true]);
    const p2 = await call(a, 'GET', `/api/v1/groups/${groupId}/history?before=5&limit=3`);
    assert.deepEqual([seqsOf(p2), p2.json['more']], [[2, 3, 4], true]);
    const p3 = await call(a, 'GET', `/api/v1/groups/${groupId}/history?before=2&limit=3`);
    assert.deepEqual([seqsOf(p3), p3.json['more']], [[1], false]);
    const all = await call(a, 'GET', `/api/v1/groups/${groupId}/history?before=&limit=`);
    assert.deepEqual(seqsOf(all), [1, 2, 3, 4, 5, 6, 7], 'empty parameters are the defaults');
    for (const q of ['before=0', 'before=-1', 'before=x', 'limit=0', 'limit=1.5', 'limit=3&limit=4', 'before=99999999999999999999']) {
      const e = await call(a, 'GET', `/api/v1/groups/${groupId}/history?${q}`);
      assert.deepEqual([e.status, e.json.error], [400, 'invalid_input'], q);
    }
    one.c.close();
    two.close();
  });

  test('DELETE: 204; members on both nodes get group_closed then the menu; tokens, history and ID go', async () => {
    const groupId = await create(a, 'pw-close');
    const js = await jsonJoin(b, 'Jo', groupId, 'pw-close');
    const tcp = await tcpJoin(b, 'Tee', groupId, 'pw-close');
    const wst = await wsTextJoin(a, 'Wes', groupId, 'pw-close');
    await js.c.frames.next(5000, 'Wes joined', (f) => f.includes('"member_joined"') && f.includes('Wes'));
    await tcp.until('Wes has joined the chat!');
    await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: 'last words' });
    await js.c.nextOfType('message');

    const r = await call(a, 'DELETE', `/api/v1/groups/${groupId}`);
    assert.deepEqual([r.status, r.body], [204, '']);
    assert.deepEqual(await js.c.nextOfType('group_closed'), { type: 'group_closed', groupId });
    assert.equal((await js.c.nextJson<Ev>()).type, 'menu', 'the menu follows');
    await tcp.until(`Chat ${groupId} has been closed.`);
    assert.equal(await tcp.nextLines(4), MENU);
    await wst.frames.next(5000, 'closed line (ws text)', (f) => f === `Chat ${groupId} has been closed.`);
    assert.equal(await wst.next(), MENU);
    assert.equal(tcp.all.filter((l) => l.endsWith('has left the chat.')).length, 0, 'nobody is told the others left');

    // Back at the menu: the text client goes on from there, the JSON client's token is refused.
    js.c.sendJson({ op: 'resume', token: js.token, since: 0 });
    assert.equal((await js.c.nextJson<Ev>())['code'], 'invalid_token');
    js.c.sendJson({ op: 'send', text: 'anyone?' });
    assert.equal((await js.c.nextJson<Ev>())['code'], 'not_joined');
    tcp.send('1');
    assert.equal(await tcp.next(), 'Enter your name: ');
    tcp.send('Tee');
    assert.equal(await tcp.next(), 'Enter group ID: ');
    tcp.send(groupId);
    assert.equal(await tcp.next(), 'Wrong ID, try again! ');
    const jn = await jsonClient(b);
    jn.sendJson({ op: 'join', name: 'Late', groupId, password: 'pw-close' });
    assert.equal((await jn.nextJson<Ev>())['code'], 'unknown_group');

    for (const [method, path] of [
      ['GET', `/api/v1/groups/${groupId}/history`],
      ['GET', `/api/v1/groups/${groupId}/members`],
      ['DELETE', `/api/v1/groups/${groupId}`],
    ] as const)
      assert.equal((await call(b, method, path)).status, 404, `${method} ${path} after the removal`);
    assert.deepEqual(await redis.admin.keys(`chat:{g:${groupId}}*`), [], 'nothing of the group is left in Redis');
    const next = await create(b, 'pw-after');
    assert.ok(Number(next) > Number(groupId), 'its ID is never handed out again');
    for (const c of [js.c, wst, jn]) c.close();
    tcp.close();
  });

  test('a member that missed the close notice (its node was not listening) leaves at its next send', async () => {
    const groupId = await create(a, 'pw-missed');
    const js = await jsonJoin(b, 'Jo', groupId, 'pw-missed');
    // The group goes behind the gateways' backs: no `closed` event on its channel.
    await redis.admin.del(`chat:{g:${groupId}}`, `chat:{g:${groupId}}:history`);
    js.c.sendJson({ op: 'send', text: 'hello?', id: 'h1' });
    const e = await js.c.nextJson<Ev>();
    assert.deepEqual([e.type, e['code'], e['id']], ['error', 'unavailable', 'h1'], 'the send is refused, not lost silently');
    assert.deepEqual(await js.c.nextJson(), { type: 'group_closed', groupId });
    assert.equal((await js.c.nextJson<Ev>()).type, 'menu');
    js.c.close();
  });

  test('401 without the right key; both keys of a rotation work; the keys never reach logs or metrics', async () => {
    const groupId = await create(a, 'pw-keys', KEY2);
    const path = `/api/v1/groups/${groupId}/members`;
    assert.equal((await call(a, 'GET', path, undefined, KEY1)).status, 200);
    assert.equal((await call(b, 'GET', path, undefined, KEY2)).status, 200);
    for (const [key, label] of [
      [null, 'no header'],
      ['wrong-key-0123456789abcdef', 'a wrong key'],
      [KEY1.slice(0, -1), 'a prefix of a key'],
      [`${KEY1}x`, 'a key and more'],
      [`${KEY1},${KEY2}`, 'the whole setting'],
    ] as const) {
      const r = await call(a, 'GET', path, undefined, key);
      assert.deepEqual([r.status, r.json.error], [401, 'unauthorized'], label);
    }
    const basic = await fetch(`http://127.0.0.1:${a.port}${path}`, { headers: { Authorization: `Basic ${KEY1}` } });
    assert.equal(basic.status, 401);
    // 401 comes before anything else: an unknown route or a huge body does not tell a stranger more.
    assert.equal((await call(a, 'GET', '/api/v1/nope', undefined, 'x'.repeat(20))).status, 401);
    assert.equal((await call(a, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'x', text: 'y'.repeat(20_000) }, 'x'.repeat(20))).status, 401);

    for (const gw of [a, b]) {
      const metrics = await (await fetch(`http://127.0.0.1:${gw.metricsPort}/metrics`)).text();
      for (const k of [KEY1, KEY2]) {
        assert.ok(!metrics.includes(k), 'no key in metrics');
        assert.ok(!gw.output.some((l) => l.includes(k)), 'no key in logs');
      }
      const routes = new Set([...metrics.matchAll(/^chat_api_requests_total\{route="([^"]*)"/gm)].map((m) => m[1]));
      for (const r of routes) assert.match(r as string, /^(unknown|(POST|GET|DELETE) \/api\/v1\/groups(\/\{id\}(\/(messages|members|history))?)?)$/, 'route templates only');
    }
    const metrics = await (await fetch(`http://127.0.0.1:${a.metricsPort}/metrics`)).text();
    assert.match(metrics, /chat_api_requests_total\{route="GET \/api\/v1\/groups\/\{id\}\/members",status="401",node="api-a"\} [1-9]/);
    assert.match(metrics, /chat_api_requests_total\{route="POST \/api\/v1\/groups",status="201",node="api-a"\} [1-9]/);
  });
});

describe('server HTTP API: one embedded node', () => {
  let on: Gateway;
  let off: Gateway;
  before(async () => {
    on = await gatewayOn('memory', { env: API_ENV });
    off = await gatewayOn('memory', { noTcp: true });
  });
  after(async () => {
    await on?.stop();
    await off?.stop();
  });

  test('with API_KEY unset every /api/ route is 404, with or without a key', async () => {
    const groupId = (await (async () => {
      const c = await jsonClient(off);
      c.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
      const { groupId: id } = await c.nextOfType<{ groupId: string }>('created');
      c.close();
      return id;
    })()) as string;
    for (const key of [null, KEY1]) {
      for (const [method, path, body] of [
        ['POST', '/api/v1/groups', { password: 'pw' }],
        ['POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: 'x' }],
        ['GET', `/api/v1/groups/${groupId}/members`, undefined],
        ['GET', `/api/v1/groups/${groupId}/history`, undefined],
        ['DELETE', `/api/v1/groups/${groupId}`, undefined],
        ['GET', '/api/v1/whatever', undefined],
      ] as const) {
        const r = await call(off, method, path, body, key);
        assert.equal(r.status, 404, `${method} ${path}`);
      }
    }
    const c = await jsonClient(off);
    c.sendJson({ op: 'join', name: 'Bo', groupId, password: 'pw' });
    assert.equal((await c.nextJson<Ev>()).type, 'joined', 'the group is still there');
    c.close();
  });

  test('DELETE on the embedded engine: members get group_closed and the menu; the token and history go', async () => {
    const groupId = await create(on, 'pw-mem');
    const js = await jsonJoin(on, 'Jo', groupId, 'pw-mem');
    const tcp = await tcpJoin(on, 'Tee', groupId, 'pw-mem');
    await js.c.nextOfType('member_joined');
    const posted = await call(on, 'POST', `/api/v1/groups/${groupId}/messages`, { from: 'bot', text: 'hello' });
    assert.deepEqual(posted.json, { groupId, seq: 1 });
    assert.equal(await tcp.until('bot: hello'), 'bot: hello');
    const m = await js.c.nextOfType<Record<string, unknown>>('message');
    assert.deepEqual({ ...m, ts: 0 }, { type: 'message', groupId, seq: 1, from: 'bot', text: 'hello', ts: 0, api: true });
    assert.equal((await call(on, 'DELETE', `/api/v1/groups/${groupId}`)).status, 204);
    assert.deepEqual(await js.c.nextOfType('group_closed'), { type: 'group_closed', groupId });
    assert.equal((await js.c.nextJson<Ev>()).type, 'menu');
    await tcp.until(`Chat ${groupId} has been closed.`);
    assert.equal(await tcp.nextLines(4), MENU);
    js.c.sendJson({ op: 'resume', token: js.token, since: 0 });
    assert.equal((await js.c.nextJson<Ev>())['code'], 'invalid_token');
    assert.equal((await call(on, 'GET', `/api/v1/groups/${groupId}/history`)).status, 404);
    js.c.close();
    tcp.close();
  });
});
