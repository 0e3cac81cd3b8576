// Codecs, the JSON frame parser and text hygiene.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeJson, encodeText } from '../../src/protocol/codecs.js';
import { isFrameError, parseClientFrame } from '../../src/protocol/frames.js';
import { decodeUtf8, sanitize } from '../../src/protocol/hygiene.js';

describe('text codec', () => {
  test('renders the seed strings byte for byte', () => {
    assert.equal(
      encodeText({ type: 'menu' }),
      'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.',
    );
    assert.equal(encodeText({ type: 'prompt', prompt: 'name' }), 'Enter your name: ');
    assert.equal(encodeText({ type: 'prompt', prompt: 'groupId' }), 'Enter group ID: ');
    assert.equal(encodeText({ type: 'prompt', prompt: 'password' }), 'Enter password: ');
    assert.equal(encodeText({ type: 'prompt', prompt: 'newPassword' }), 'Enter a new password for your group:');
    assert.equal(encodeText({ type: 'created', groupId: '0' }), 'Chat 0 has been created.');
    assert.equal(encodeText({ type: 'joined', groupId: '0', name: 'Maya', token: 't', seq: 0, via: 'join' }), 'Hi Maya! welcome to group 0!');
    assert.equal(encodeText({ type: 'joined', groupId: '0', name: 'Maya', token: 't', seq: 0, via: 'create' }), null);
    assert.equal(encodeText({ type: 'member_joined', groupId: '0', name: 'Maya' }), 'Maya has joined the chat!');
    assert.equal(encodeText({ type: 'member_left', groupId: '0', name: 'Maya' }), 'Maya has left the chat.');
    assert.equal(encodeText({ type: 'message', groupId: '0', seq: 1, from: 'Maya', text: 'hi', ts: 1 }), 'Maya: hi');
    assert.equal(encodeText({ type: 'bye' }), 'You have disconnected from the server.');
    assert.equal(encodeText({ type: 'ack', id: null, seq: 1 }), null);
  });
});

describe('JSON codec', () => {
  test('menu options, joined without the internal `via`, message fields', () => {
    assert.deepEqual(JSON.parse(encodeJson({ type: 'menu' }) as string), {
      type: 'menu',
      options: { '1': 'Connect to a group chat', '2': 'Create a group chat.', '3': 'Exit the server.' },
    });
    assert.deepEqual(JSON.parse(encodeJson({ type: 'joined', groupId: '2', name: 'A', token: 'k', seq: 3, via: 'resume' }) as string), {
      type: 'joined',
      groupId: '2',
      name: 'A',
      token: 'k',
      seq: 3,
    });
    assert.equal(encodeJson({ type: 'prompt', prompt: 'name' }), null);
    assert.deepEqual(JSON.parse(encodeJson({ type: 'error', code: 'too_large', message: 'm' }) as string), {
      type: 'error',
      code: 'too_large',
      message: 'm',
    });
  });
});

describe('frame parser', () => {
  test('valid ops', () => {
    assert.deepEqual(parseClientFrame('{"op":"join","name":"a","groupId":3,"password":"p","since":2}'), {
      op: 'join',
      name: 'a',
      groupId: '3',
      password: 'p',
      since: 2,
    });
    assert.deepEqual(parseClientFrame('{"op":"send","text":"t","id":"x"}'), { op: 'send', text: 't', id: 'x' });
    assert.deepEqual(parseClientFrame('{"op":"resume","token":"k","since":0}'), { op: 'resume', token: 'k', since: 0 });
    assert.deepEqual(parseClientFrame('{"op":"resume","token":"k"}'), { op: 'resume', token: 'k' }, 'no since: the recent history');
    assert.deepEqual(parseClientFrame('{"op":"exit"}'), { op: 'exit' });
  });

  test('everything else is a typed invalid_input, never a throw', () => {
    for (const raw of ['', 'nul', '{', '[]', 'null', '1', '{"op":1}', '{"op":"send"}', '{"op":"join","name":"a","password":"p"}',
      '{"op":"join","name":"a","groupId":"1","password":"p","since":1.5}', '{"op":"send","text":"t","id":{}}',
      `{"op":"send","text":"t","id":"${'x'.repeat(65)}"}`, '{"__proto__":{"op":"exit"}}']) {
      const r = parseClientFrame(raw);
      assert.ok(isFrameError(r), raw);
      assert.equal(r.error, 'invalid_input');
    }
    // The metric reason comes from the parser's own code, not from its message text.
    const unknown = parseClientFrame('{"op":"teleport"}');
    assert.ok(isFrameError(unknown) && unknown.reason === 'invalid_op');
    const garbage = parseClientFrame('{');
    assert.ok(isFrameError(garbage) && garbage.reason === 'invalid_json');
  });
});

describe('hygiene', () => {
  test('strips CSI, OSC, 8-bit CSI, C0/C1 controls and bidi overrides; breaks become spaces', () => {
    assert.equal(sanitize('\x1b[31mred\x1b[0m'), 'red');
    assert.equal(sanitize('\x1b]0;title\x07x'), 'x');
    assert.equal(sanitize('\x1b]8;;http://e\x1b\\link'), 'link');
    assert.equal(sanitize('\x9b2Jx'), 'x');
    assert.equal(sanitize('a\x00b\x07c\x7fd\x85e'), 'abcd e');
    assert.equal(sanitize('x\ud800y\udc00z'), 'xyz'); // lone surrogates (possible via JSON escapes)
    assert.equal(sanitize('a\nb\r\nc\td'), 'a b  c d');
    assert.equal(sanitize('\u202eevil'), 'evil');
    assert.equal(sanitize('שלום 👋'), 'שלום 👋');
  });

  test('strict UTF-8: invalid bytes are refused, not replaced', () => {
    assert.equal(decodeUtf8(Buffer.from('héllo')), 'héllo');
    assert.equal(decodeUtf8(Buffer.from([0xff])), undefined);
    assert.equal(decodeUtf8(Buffer.from([0xc0, 0xaf])), undefined); // overlong
    assert.equal(decodeUtf8(Buffer.from([0xed, 0xa0, 0x80])), undefined); // surrogate
  });
});

describe('history and group_closed', () => {
  test('the history op: before and limit positive integers, both optional', () => {
    assert.deepEqual(parseClientFrame('{"op":"history"}'), { op: 'history' });
    assert.deepEqual(parseClientFrame('{"op":"history","before":12,"limit":3}'), { op: 'history', before: 12, limit: 3 });
    for (const bad of ['{"op":"history","before":0}', '{"op":"history","limit":-1}', '{"op":"history","limit":"5"}', '{"op":"history","before":1.5}'])
      assert.deepEqual(parseClientFrame(bad), { error: 'invalid_input', message: '"before" and "limit" must be positive integers', reason: 'invalid_json' }, bad);
  });

  test('text: a page is one message of `{from}: {text}` lines, or "No older messages."; a closed group is the seed-toned line', () => {
    const m = (seq: number, from: string, text: string) => ({ groupId: '2', seq, from, text, ts: 1 });
    assert.equal(encodeText({ type: 'history', groupId: '2', messages: [m(1, 'Ann', 'hi'), m(2, 'bot', 'yo')], more: false }), 'Ann: hi\nbot: yo');
    assert.equal(encodeText({ type: 'history', groupId: '2', messages: [], more: false }), 'No older messages.');
    assert.equal(encodeText({ type: 'group_closed', groupId: '2' }), 'Chat 2 has been closed.');
  });

  test('JSON: api: true only on API messages, in events and in pages', () => {
    const api = { groupId: '2', seq: 5, from: 'bot', text: 'x', ts: 1, api: true as const };
    assert.deepEqual(JSON.parse(encodeJson({ type: 'message', ...api }) as string), { type: 'message', ...api });
    assert.equal('api' in JSON.parse(encodeJson({ type: 'message', groupId: '2', seq: 6, from: 'Ann', text: 'y', ts: 1 }) as string), false);
    assert.deepEqual(JSON.parse(encodeJson({ type: 'history', groupId: '2', messages: [api], more: true }) as string), {
      type: 'history',
      groupId: '2',
      messages: [{ type: 'message', ...api }],
      more: true,
    });
    assert.deepEqual(JSON.parse(encodeJson({ type: 'group_closed', groupId: '2' }) as string), { type: 'group_closed', groupId: '2' });
  });
});
