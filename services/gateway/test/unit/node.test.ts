// node.ts in-process, through its ports only: a ChatNode on the embedded engine, and fake
// connections (Conn) and fan-out (Fanout) standing in for a transport. No sockets: what the
// node does with input, in order, is read from what each connection was written.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { MemoryEngine } from '../../src/engine/memory.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { ChatNode } from '../../src/node.js';
import type { Conn, Fanout, Inbound } from '../../src/ports.js';
import type { Codec, Encoded } from '../../src/protocol/codecs.js';
import * as T from '../../src/protocol/text.js';
import { GroupMembers } from '../../src/transport/core.js';
import { tempDir } from '../helpers/gateway.js';
import { Inbox } from '../helpers/wait.js';

/** A connection that records what the node writes, and how it was ended. */
class FakeConn implements Conn {
  readonly transport;
  readonly address = { ip: '192.0.2.9', key: '192.0.2.9', exempt: false };
  readonly out = new Inbox<string>();
  ended: { code: number; reason: string } | null = null;
  inbound: Inbound | null = null;

  constructor(
    readonly codec: Codec,
    private readonly members: GroupMembers<FakeConn>,
  ) {
    this.transport = codec === 'json' ? ('ws_json' as const) : ('ws_text' as const);
  }
  write(msg: string): void {
    this.out.push(msg);
  }
  end(code: number, reason: string): void {
    this.ended ??= { code, reason };
  }
  subscribe(groupId: string): void {
    this.members.join(this, groupId);
  }
  unsubscribe(): void {
    this.members.leave(this);
  }
  /** Type one line (text) or send one op (JSON). */
  say(line: string | object): void {
    const s = typeof line === 'string' ? line : JSON.stringify(line);
    const input = this.codec === 'text' ? { kind: 'text' as const, text: s } : { kind: 'op' as const, op: JSON.parse(s) };
    this.inbound?.input(input, Buffer.byteLength(s));
  }
  /** The next line written that satisfies `pred` (earlier ones are skipped). */
  next(what: string, pred: (s: string) => boolean = () => true): Promise<string> {
    return this.out.next(5000, what, pred);
  }
  /** The next JSON event of type `type`. */
  async event(type: string): Promise<Record<string, unknown>> {
    return JSON.parse(await this.next(`a ${type} event`, (s) => (JSON.parse(s) as { type: string }).type === type)) as Record<string, unknown>;
  }
}

/** A transport's fan-out over the fake connections: encoded once per codec, sender left out. */
class FakeFanout implements Fanout {
  constructor(private readonly members: GroupMembers<FakeConn>) {}
  publish(groupId: string, out: Encoded, exclude: Conn | null): void {
    for (const c of this.members.of(groupId)) if (c !== exclude) c.write((c.codec === 'text' ? out.text : out.json) as string);
  }
}

const engines: MemoryEngine[] = [];
after(async () => {
  for (const e of engines) await e.stop();
});

async function node(env: Record<string, string> = {}): Promise<{ node: ChatNode; open: (codec: Codec) => FakeConn }> {
  const config = loadConfig({ SCRYPT_N: '1024', CHAT_SECRET: 'node-test-secret-0123456789abcdef', DATA_DIR: tempDir('chat-node-'), NODE_ID: 'n', ...env });
  const engine = new MemoryEngine({ dataDir: config.dataDir, historyLimit: config.historyLimit });
  engines.push(engine);
  await engine.start();
  const n = new ChatNode(engine, config, createLogger('silent', 'n'), new Metrics('n'));
  const members = new GroupMembers<FakeConn>();
  n.addFanout(new FakeFanout(members));
  return {
    node: n,
    open: (codec) => {
      const c = new FakeConn(codec, members);
      c.inbound = n.connect(c);
      return c;
    },
  };
}

describe('node', () => {
  test('the seed flow on the text codec: create, join, chat both ways, nobody echoed their own line, leave', async () => {
    const { open } = await node();
    const ann = open('text');
    assert.equal(await ann.next('menu'), T.MENU);
    for (const line of ['2', 'ann', 'pw']) ann.say(line);
    assert.equal(await ann.next('created', (s) => s.startsWith('Chat')), T.chatCreated('0'));
    const bob = open('text');
    for (const line of ['1', 'bob', '0', 'pw']) bob.say(line);
    assert.equal(await bob.next('welcome', (s) => s.startsWith('Hi')), T.welcome('bob', '0'));
    assert.equal(await ann.next('joined notice', (s) => s.includes('joined')), T.memberJoined('bob'));
    ann.say('hello bob');
    bob.say('hi ann');
    assert.equal(await bob.next('ann’s line', (s) => s.includes(':')), T.chatLine('ann', 'hello bob'));
    assert.equal(await ann.next('bob’s line', (s) => s.includes(':')), T.chatLine('bob', 'hi ann'));
    bob.say('/quit');
    assert.equal(await ann.next('left notice', (s) => s.includes('left')), T.memberLeft('bob'));
    assert.equal(ann.out.peek().filter((s) => s === T.chatLine('ann', 'hello bob')).length, 0, 'ann was not echoed her own line');
  });

  test('JSON sends pipeline and are acked in order with consecutive seqs; a refused op names its code', async () => {
    const { open } = await node();
    const ann = open('json');
    await ann.event('menu');
    ann.say({ op: 'create', name: 'ann', password: 'pw' });
    await ann.event('joined');
    for (let i = 1; i <= 20; i++) ann.say({ op: 'send', text: `m${i}`, id: i });
    const acks: [unknown, unknown][] = [];
    for (let i = 1; i <= 20; i++) {
      const a = await ann.event('ack');
      acks.push([a['id'], a['seq']]);
    }
    assert.deepEqual(acks, Array.from({ length: 20 }, (_, i) => [i + 1, i + 1]));
    ann.say({ op: 'send', text: '' });
    assert.equal((await ann.event('error'))['code'], 'invalid_input');
  });

  test('a member joining later gets the history, then live messages, with nothing between lost or doubled', async () => {
    const { open } = await node();
    const ann = open('json');
    ann.say({ op: 'create', name: 'ann', password: 'pw' });
    const { groupId } = (await ann.event('joined')) as { groupId: string };
    for (let i = 1; i <= 5; i++) ann.say({ op: 'send', text: `m${i}`, id: i });
    const bob = open('json');
    bob.say({ op: 'join', name: 'bob', groupId, password: 'pw' });
    for (let i = 6; i <= 10; i++) ann.say({ op: 'send', text: `m${i}`, id: i });
    const seqs: unknown[] = [];
    while (seqs.length < 10) seqs.push((await bob.event('message'))['seq']);
    assert.deepEqual(seqs, Array.from({ length: 10 }, (_, i) => i + 1));
  });

  test('SIGTERM drain: every client gets 1012 (text clients the restart line first), and the node reports draining to its transports', async () => {
    const { node: n, open } = await node();
    const a = open('json');
    const b = open('text');
    await a.event('menu');
    assert.equal(n.isReady(), true);
    await n.drain(0.05);
    assert.deepEqual([a.ended?.code, b.ended?.code], [1012, 1012]);
    assert.equal(await b.next('the restart line', (s) => s === T.SERVER_RESTARTING), T.SERVER_RESTARTING);
    assert.deepEqual([n.isReady(), n.isDraining()], [false, true]);
  });
});
