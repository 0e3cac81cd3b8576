// Bad input gets a clear error, is never passed on raw, and the node keeps serving everyone else.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { ENGINES, gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

type Ev = { type: string; code?: string; text?: string; from?: string; seq?: number; name?: string };
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;
const MAX_FRAME = 1024;

for (const engine of ENGINES) {
  describe(`bad input on the ${engine} engine`, () => {
    let gw: Gateway;
    let groupId: string;
    let owner: WsClient; // a well-behaved member who must see only clean text
    let bystander: LineClient; // a TCP member of the same group

    before(async () => {
      gw = await gatewayOn(engine, { env: { MAX_FRAME_BYTES: String(MAX_FRAME), MAX_TEXT_LENGTH: '200' } });
      owner = await WsClient.connect(gw.wsUrl, 'chat.json');
      await owner.nextOfType('menu');
      owner.sendJson({ op: 'create', name: 'Owner', password: 'pw' });
      groupId = (await owner.nextOfType<{ groupId: string }>('created')).groupId;
      await owner.nextOfType('joined');
      bystander = await LineClient.connect(gw.tcpPort);
      await bystander.nextLines(4);
      for (const say of ['1', 'Bys', groupId, 'pw']) bystander.send(say);
      for (let i = 0; i < 4; i++) await bystander.next();
      await owner.nextOfType('member_joined');
    });
    after(async () => {
      // Nothing that reached the well-behaved TCP member carried a control byte.
      for (const line of bystander.all) assert.ok(!CONTROL.test(line), JSON.stringify(line));
      owner.close();
      bystander.close();
      await gw.stop();
    });

    /** The node still serves the group: a message goes round both ways. */
    async function stillServing(tag: string): Promise<void> {
      owner.sendJson({ op: 'send', text: `ping ${tag}` });
      await owner.nextOfType('ack');
      await bystander.until(`Owner: ping ${tag}`);
      bystander.send(`pong ${tag}`);
      await owner.frames.next(5000, `pong ${tag}`, (f) => f.includes(`"text":"pong ${tag}"`));
    }

    test('JSON: garbage, non-objects, unknown op, bad fields, empty name: typed errors, connection kept', async () => {
      const c = await WsClient.connect(gw.wsUrl, 'chat.json');
      await c.nextOfType('menu');
      const cases: Array<[string, string]> = [
        ['{not json', 'invalid_input'],
        ['[1,2,3]', 'invalid_input'],
        ['"just a string"', 'invalid_input'],
        ['{"op":"teleport"}', 'invalid_input'],
        ['{"op":"create","name":42,"password":"x"}', 'invalid_input'],
        ['{"op":"create","name":"   ","password":"x"}', 'invalid_input'],
        ['{"op":"create","name":"\\u001b[2J","password":"x"}', 'invalid_input'],
        ['{"op":"create","name":"ok","password":""}', 'invalid_input'],
        ['{"op":"join","name":"x","groupId":"abc","password":"x"}', 'unknown_group'],
        ['{"op":"join","name":"x","groupId":"0","password":"x","since":-1}', 'invalid_input'],
        ['{"op":"send","text":"hi"}', 'not_joined'],
        ['{"op":"resume","token":"forged.token","since":0}', 'invalid_token'], // issue 8: a refused token gets invalid_token
      ];
      for (const [frame, code] of cases) {
        c.send(frame);
        const e = await c.nextJson<Ev & { message: string }>();
        assert.equal(e.type, 'error', frame);
        assert.equal(e.code, code, frame);
        assert.ok(e.message.length > 0);
      }
      c.send(Buffer.from([1, 2, 3]), true);
      assert.equal((await c.nextJson<Ev>()).code, 'invalid_input');
      c.send('x'.repeat(MAX_FRAME + 1));
      assert.equal((await c.nextJson<Ev>()).code, 'too_large');
      c.sendJson({ op: 'join', name: 'Late', groupId, password: 'pw' });
      await c.nextOfType('joined');
      await owner.nextOfType('member_joined');
      c.sendJson({ op: 'send', text: 'y'.repeat(201) });
      assert.equal((await c.nextOfType<Ev>('error')).code, 'too_large');
      c.sendJson({ op: 'send', text: '   ' });
      assert.equal((await c.nextOfType<Ev>('error')).code, 'invalid_input');
      c.close();
      await stillServing('json');
    });

    test('ANSI escapes and control characters are stripped from names and text before peers see them', async () => {
      const t = await LineClient.connect(gw.tcpPort);
      await t.nextLines(4);
      t.send('1');
      await t.next();
      t.send('\x1b[31mEvil\x07\x00');
      assert.equal(await t.next(), 'Enter group ID: ');
      t.send(groupId);
      await t.next();
      t.send('pw');
      assert.equal(await t.next(), `Hi Evil! welcome to group ${groupId}!`);
      assert.equal((await owner.nextOfType<Ev>('member_joined')).name, 'Evil');
      await bystander.until('Evil has joined the chat!');
      t.send('\x1b]0;pwned\x07hello\x1b[2J\x1b[H \x9b1mworld\x08\x7f');
      const m = await owner.nextOfType<Ev>('message');
      assert.equal(m.from, 'Evil');
      assert.equal(m.text, 'hello world'); // OSC, CSI, 8-bit CSI, BS and DEL all gone
      await bystander.until('Evil: hello world');
      // A WebSocket text frame cannot smuggle a second line onto a terminal.
      const w = await WsClient.connect(gw.wsUrl);
      await w.next();
      for (const say of ['1', 'Web', groupId, 'pw']) w.send(say);
      for (let i = 0; i < 4; i++) await w.next();
      w.send('one\nOwner: fake line\r\n\x1b[1A');
      await bystander.until('Web: one Owner: fake line  ');
      t.close();
      w.close();
      await stillServing('ansi');
    });

    test('TCP: invalid UTF-8 and an over-long line get errors; the next line works', async () => {
      const t = await LineClient.connect(gw.tcpPort);
      await t.nextLines(4);
      t.socket.write(Buffer.from([0xff, 0xfe, 0x41, 0x0a]));
      assert.equal(await t.next(), 'Invalid input (not UTF-8 text), try again! ');
      t.send('z'.repeat(MAX_FRAME * 3)); // arrives in pieces: refused once, the tail discarded
      assert.equal(await t.next(), 'Message too long, try again! ');
      t.send('7');
      assert.equal(await t.next(), 'please try again!');
      t.send('');
      assert.equal(await t.next(), 'please try again!');
      t.send('2');
      assert.equal(await t.next(), 'Enter your name: ');
      t.send('   ');
      assert.equal(await t.next(), 'Names may not be empty, try again! ');
      t.send('Tee');
      assert.equal(await t.next(), 'Enter a new password for your group:');
      t.send('');
      assert.equal(await t.next(), 'Passwords may not be empty, try again! ');
      t.close();
      await stillServing('tcp');
    });

    test('WebSocket: invalid UTF-8 in a text frame fails that connection (RFC 6455 §8.1) and nobody else', async () => {
      const w = await WsClient.connect(gw.wsUrl, 'chat.json');
      await w.next();
      w.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      const closed = await within(w.closed, 5000, 'the server to fail the connection');
      assert.notEqual(closed.code, 1000);
      // Far beyond the frame limit: the connection is dropped, the node is fine.
      const big = await WsClient.connect(gw.wsUrl, 'chat.json');
      await big.next();
      big.send('q'.repeat(MAX_FRAME * 8));
      await within(big.closed, 5000, 'oversized frame close');
      await stillServing('ws');
    });

    test('unsupported subprotocol is refused at the upgrade', async () => {
      await assert.rejects(WsClient.connect(gw.wsUrl, 'chat.xml'), /400/);
      // Names of Object.prototype members are not subprotocols either.
      for (const p of ['toString', 'constructor', 'hasOwnProperty']) await assert.rejects(WsClient.connect(gw.wsUrl, p), /400/);
    });
  });
}
