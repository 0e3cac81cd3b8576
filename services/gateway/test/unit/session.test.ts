// The menu flow as a pure state machine: every transition, no sockets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newSession, step, type Effect, type Input, type Session } from '../../src/session.js';

const limits = { maxNameLength: 8, maxTextLength: 10 };

/** Drive a session through inputs; return the final session and every effect. */
function run(inputs: Input[], s: Session = newSession()): { s: Session; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const i of inputs) {
    const out = step(s, i, limits);
    s = out.session;
    effects.push(...out.effects);
  }
  return { s, effects };
}
const text = (t: string): Input => ({ kind: 'text', text: t });
const ok = (r: object): Input => ({ kind: 'result', result: { ok: true, ...r } as never });
const fail = (code: string, message = code): Input => ({ kind: 'result', result: { ok: false, code, message } as never });
const sends = (effects: Effect[]): unknown[] => effects.filter((e) => e.kind === 'send').map((e) => (e as { event: unknown }).event);
const kinds = (effects: Effect[]): string[] =>
  effects.map((e) => (e.kind === 'send' ? `send:${e.event.type}` : e.kind === 'call' ? `call:${e.call.call}` : e.kind));

describe('text menu flow', () => {
  test('a refused create goes back to the menu; a refused join waits at the password prompt', () => {
    for (const code of ['rate_limited', 'busy', 'group_limit']) {
      const c = run([text('2'), text('Ann'), text('pw'), fail(code, 'no')]);
      assert.deepEqual(kinds(c.effects), ['send:prompt', 'send:prompt', 'call:create', 'send:error', 'send:menu'], code);
      assert.equal(c.s.state.s, 'menu');
    }
    for (const code of ['rate_limited', 'busy']) {
      const j = run([text('1'), ok({ hasGroups: true }), text('Ann'), text('0'), ok({ exists: true }), text('pw'), fail(code, 'no')]);
      assert.deepEqual(kinds(j.effects).slice(-2), ['call:join', 'send:error'], code);
      assert.deepEqual(j.s.state, { s: 'join_password', name: 'Ann', groupId: '0' }, code);
    }
  });

  test('open sends the menu; anything but 1/2/3 is invalid_option and stays in the menu', () => {
    const { s, effects } = run([{ kind: 'open' }, text('5'), text(''), text('12')]);
    assert.deepEqual(kinds(effects), ['send:menu', 'send:error', 'send:error', 'send:error']);
    assert.deepEqual(
      sends(effects).slice(1).map((e) => (e as { code: string }).code),
      ['invalid_option', 'invalid_option', 'invalid_option'],
    );
    assert.equal(s.state.s, 'menu');
  });

  test('option 3 says bye and closes with 1000', () => {
    const { s, effects } = run([text('3')]);
    assert.deepEqual(effects, [{ kind: 'send', event: { type: 'bye' } }, { kind: 'close', code: 1000 }]);
    assert.equal(s.state.s, 'closed');
  });

  test('option 1 with no groups anywhere: no_groups and close', () => {
    const { s, effects } = run([text('1'), ok({ hasGroups: false })]);
    assert.deepEqual(kinds(effects), ['call:hasGroups', 'send:error', 'close']);
    assert.equal((sends(effects)[0] as { code: string }).code, 'no_groups');
    assert.equal(s.state.s, 'closed');
  });

  test('option 1: name, ID loop, password loop, welcome, then attach with recent history', () => {
    const { s, effects } = run([
      text('1'),
      ok({ hasGroups: true }),
      text('  Maya  '),
      text('x9'), // not an ID at all: no engine call
      text('9'),
      ok({ exists: false }),
      text('0'),
      ok({ exists: true }),
      text(''), // empty password: wrong, without a call
      text('nope'),
      fail('wrong_password'),
      text('1234'),
      ok({ groupId: '0', name: 'Maya', member: 'm1', token: 't', seq: 7 }),
    ]);
    assert.deepEqual(kinds(effects), [
      'call:hasGroups',
      'send:prompt',
      'send:prompt',
      'send:error',
      'call:groupExists',
      'send:error',
      'call:groupExists',
      'send:prompt',
      'send:error',
      'call:join',
      'send:error',
      'call:join',
      'send:joined',
      'attach',
    ]);
    const join = effects.filter((e) => e.kind === 'call' && e.call.call === 'join').pop();
    assert.deepEqual(join, { kind: 'call', call: { call: 'join', name: 'Maya', groupId: '0', password: '1234', history: 'recent' } });
    assert.deepEqual(effects.at(-1), { kind: 'attach', groupId: '0', name: 'Maya', history: 'recent' });
    assert.deepEqual(s.state, { s: 'chat', name: 'Maya', groupId: '0', member: 'm1' });
  });

  test('option 2: empty or over-long names and empty passwords are refused, then the group is created', () => {
    const { s, effects } = run([
      text('2'),
      text(' \x1b[1m '),
      text('waytoolongname'),
      text('Adina'),
      text(''),
      text('1234'),
      ok({ groupId: '0', name: 'Adina', member: 'm1', token: 't', seq: 0 }),
    ]);
    assert.deepEqual(kinds(effects), [
      'send:prompt',
      'send:error',
      'send:error',
      'send:prompt',
      'send:error',
      'call:create',
      'send:created',
      'send:joined',
      'attach',
    ]);
    assert.deepEqual(effects.at(-1), { kind: 'attach', groupId: '0', name: 'Adina', history: { since: 0 } });
    assert.equal(s.state.s, 'chat');
  });

  test('chat: lines become publish effects (sanitised, no wait), /who and /quit, empty lines ignored, long lines refused', () => {
    const chat: Session = { state: { s: 'chat', name: 'A', groupId: '3', member: 'm1' }, pending: null };
    const { effects } = run([text('hi\x1b[31m!'), text('again'), text('   '), text('x'.repeat(11)), text('/who'), ok({ names: ['A'] })], chat);
    assert.deepEqual(kinds(effects), ['publish', 'publish', 'send:error', 'call:who', 'send:members']);
    assert.deepEqual(effects[0], { kind: 'publish', groupId: '3', name: 'A', text: 'hi!', id: null, member: 'm1' });
    const quit = run([text('/quit')], chat);
    assert.deepEqual(kinds(quit.effects), ['detach', 'send:bye', 'close']);
  });

  test('a dropped connection in chat detaches; in the menu it just ends', () => {
    const chat: Session = { state: { s: 'chat', name: 'A', groupId: '3', member: 'm1' }, pending: null };
    assert.deepEqual(run([{ kind: 'closed' }], chat).effects, [{ kind: 'detach' }]);
    assert.deepEqual(run([{ kind: 'closed' }]).effects, []);
  });

  test('input while a call is pending is a node bug and throws', () => {
    const { s } = run([text('1')]);
    assert.throws(() => step(s, text('2'), limits));
  });
});

describe('JSON ops', () => {
  const op = (o: object): Input => ({ kind: 'op', op: o as never });

  test('create → created, joined, attach; join with since → attach since', () => {
    const c = run([op({ op: 'create', name: 'A', password: 'p' }), ok({ groupId: '4', name: 'A', member: 'm1', token: 'tk', seq: 0 })]);
    assert.deepEqual(kinds(c.effects), ['call:create', 'send:created', 'send:joined', 'attach']);
    const j = run([op({ op: 'join', name: 'B', groupId: '4', password: 'p', since: 2 }), ok({ groupId: '4', name: 'B', member: 'm1', token: 'tk', seq: 5 })]);
    assert.deepEqual(j.effects.at(-1), { kind: 'attach', groupId: '4', name: 'B', history: { since: 2 } });
  });

  test('send/who before joining: not_joined; exit: bye and close', () => {
    const { effects } = run([op({ op: 'send', text: 'x' }), op({ op: 'who' }), op({ op: 'exit' })]);
    assert.deepEqual(
      sends(effects).map((e) => (e as { type: string; code?: string }).code ?? (e as { type: string }).type),
      ['not_joined', 'not_joined', 'bye'],
    );
    assert.equal(effects.at(-1)?.kind, 'close');
  });

  // PROTOCOL.md §3 (issue 8): a refused create or join changes nothing else; a JSON client in a group stays in it.
  test('a join while in a group leaves the old group only once the new one let it in; a refused one stays', () => {
    const chat: Session = { state: { s: 'chat', name: 'A', groupId: '3', member: 'm1' }, pending: null };
    for (const code of ['wrong_password', 'busy', 'rate_limited', 'unavailable']) {
      const { s, effects } = run([op({ op: 'join', name: 'A', groupId: '5', password: 'p' }), fail(code)], chat);
      assert.deepEqual(kinds(effects), ['call:join', 'send:error'], code);
      assert.deepEqual(s.state, { s: 'chat', name: 'A', groupId: '3', member: 'm1' }, code);
    }
    const joined = run([op({ op: 'join', name: 'A', groupId: '5', password: 'p' }), ok({ groupId: '5', name: 'A', member: 'm1', token: 't', seq: 0 })], chat);
    assert.deepEqual(kinds(joined.effects), ['call:join', 'detach', 'send:joined', 'attach']);
    const created = run([op({ op: 'create', name: 'A', password: 'p' }), fail('group_limit')], chat);
    assert.deepEqual(kinds(created.effects), ['call:create', 'send:error']);
    assert.equal(created.s.state.s, 'chat');
  });

  test('JSON names: format characters are stripped; empty and over-long names get their own messages', () => {
    const zw = run([op({ op: 'create', name: '\u200b\u200c\u200d\u200e\u200f\u061c\ufeff\u2060', password: 'p' })]);
    assert.equal((sends(zw.effects)[0] as { message: string }).message, 'Names may not be empty, try again! ');
    const long = run([op({ op: 'create', name: 'abcdefghi', password: 'p' })]);
    assert.equal((sends(long.effects)[0] as { message: string }).message, 'Names may be at most 8 characters, try again! ');
    const mixed = run([op({ op: 'create', name: 'a\u200bb\ufeff', password: 'p' })]);
    assert.deepEqual(kinds(mixed.effects), ['call:create']);
    assert.equal((mixed.effects[0] as { call: { name: string } }).call.name, 'ab');
  });

  test('send carries the client id to the publish effect; engine trouble on a call is an error, not silence', () => {
    const chat: Session = { state: { s: 'chat', name: 'A', groupId: '3', member: 'm1' }, pending: null };
    const a = run([op({ op: 'send', text: 'hey', id: 'c1' })], chat);
    assert.deepEqual(a.effects, [{ kind: 'publish', groupId: '3', name: 'A', text: 'hey', id: 'c1', member: 'm1' }]);
    const b = run([op({ op: 'who' }), fail('unavailable', 'down')], chat);
    assert.deepEqual(sends(b.effects), [{ type: 'error', code: 'unavailable', message: 'down' }]);
  });
});

describe('history and group removal', () => {
  const inChat = (): Session => run([text('2'), text('Ann'), text('pw'), ok({ groupId: '4', name: 'Ann', token: 't', seq: 0 })]).s;

  test('/history asks for the page before what the connection has seen; the answer is one history event', () => {
    const { s, effects } = run([text(' /history ')], inChat());
    assert.deepEqual(effects, [{ kind: 'call', call: { call: 'history', groupId: '4', before: 'seen', limit: null } }]);
    const page = { messages: [{ groupId: '4', seq: 3, from: 'Bo', text: 'hi', ts: 1 }], more: true };
    const out = step(s, ok(page), limits);
    assert.deepEqual(sends(out.effects), [{ type: 'history', groupId: '4', ...page }]);
    assert.equal(out.session.state.s, 'chat');
  });

  test('the history op: before and limit passed on; not_joined outside a group', () => {
    assert.deepEqual(run([{ kind: 'op', op: { op: 'history', before: 9, limit: 5 } }], inChat()).effects, [
      { kind: 'call', call: { call: 'history', groupId: '4', before: 9, limit: 5 } },
    ]);
    assert.deepEqual(run([{ kind: 'op', op: { op: 'history' } }], inChat()).effects, [
      { kind: 'call', call: { call: 'history', groupId: '4', before: null, limit: null } },
    ]);
    const out = run([{ kind: 'op', op: { op: 'history' } }]);
    assert.deepEqual(sends(out.effects).map((e) => (e as { code: string }).code), ['not_joined']);
  });

  test('group_closed: detach without notices, group_closed, the menu; another group is not affected', () => {
    const { s, effects } = run([{ kind: 'group_closed', groupId: '4' }], inChat());
    assert.deepEqual(effects, [{ kind: 'detach', closed: true }, { kind: 'send', event: { type: 'group_closed', groupId: '4' } }, { kind: 'send', event: { type: 'menu' } }]);
    assert.deepEqual(s.state, { s: 'menu' });
    const other = run([{ kind: 'group_closed', groupId: '5' }], inChat());
    assert.deepEqual(other.effects, []);
    assert.equal(other.s.state.s, 'chat');
    assert.deepEqual(run([{ kind: 'group_closed', groupId: '4' }]).effects, [], 'at the menu: nothing');
  });
});
