// The embedded engine keeps groups and history across a restart (journal in DATA_DIR).
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { startGateway, tempDir } from '../helpers/gateway.js';

async function createAndChat(url: string, n: number): Promise<string> {
  const a = await WsClient.connect(url, 'chat.json');
  await a.nextOfType('menu');
  a.sendJson({ op: 'create', name: 'Keeper', password: 'durable' });
  const { groupId } = await a.nextOfType<{ groupId: string }>('created');
  for (let i = 1; i <= n; i++) {
    a.sendJson({ op: 'send', text: `note ${i}` });
    assert.equal((await a.nextOfType<{ seq: number }>('ack')).seq, i);
  }
  a.close();
  return groupId;
}

async function joinByMenu(tcpPort: number, groupId: string, password: string): Promise<{ c: LineClient; welcome: string }> {
  const c = await LineClient.connect(tcpPort);
  await c.nextLines(4);
  c.send('1');
  assert.equal(await c.next(), 'Enter your name: ');
  c.send('Later');
  assert.equal(await c.next(), 'Enter group ID: ');
  c.send(groupId);
  assert.equal(await c.next(), 'Enter password: ');
  c.send(password);
  return { c, welcome: await c.next() };
}

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`groups and history survive a restart after ${signal}`, async () => {
    const dataDir = tempDir('chat-journal-');
    const env = { DATA_DIR: dataDir, HISTORY_LIMIT: '3' };
    const gw1 = await startGateway({ env });
    const groupId = await createAndChat(gw1.wsUrl, 5);
    const stopped = await gw1.stop(signal);
    if (signal === 'SIGTERM') assert.equal(stopped.code, 0);

    const gw2 = await startGateway({ env });
    try {
      const { c, welcome } = await joinByMenu(gw2.tcpPort, groupId, 'durable');
      assert.equal(welcome, `Hi Later! welcome to group ${groupId}!`);
      // HISTORY_LIMIT=3: the newest three, oldest first.
      assert.deepEqual([await c.next(), await c.next(), await c.next()], ['Keeper: note 3', 'Keeper: note 4', 'Keeper: note 5']);
      // seq continues where it stopped, and the next group gets the next ID.
      const w = await WsClient.connect(gw2.wsUrl, 'chat.json');
      w.sendJson({ op: 'join', name: 'W', groupId, password: 'durable' });
      assert.equal((await w.nextOfType<{ seq: number }>('joined')).seq, 5);
      w.sendJson({ op: 'send', text: 'after restart' });
      assert.equal((await w.nextOfType<{ seq: number }>('ack')).seq, 6);
      w.sendJson({ op: 'create', name: 'W', password: 'x' });
      assert.equal((await w.nextOfType<{ groupId: string }>('created')).groupId, String(Number(groupId) + 1));
      c.close();
      w.close();
    } finally {
      await gw2.stop();
    }
    // The journal never holds a password.
    assert.ok(!readFileSync(join(dataDir, 'journal.ndjson'), 'utf8').includes('durable'));
  });
}

test('a torn last journal record is skipped, not fatal', async () => {
  const dataDir = tempDir('chat-torn-');
  const env = { DATA_DIR: dataDir };
  const gw1 = await startGateway({ env });
  const groupId = await createAndChat(gw1.wsUrl, 2);
  assert.equal((await gw1.stop()).code, 0);
  // A crash mid-write leaves half a record without its newline.
  appendFileSync(join(dataDir, 'journal.ndjson'), '{"t":"m","g":"0","s":3,"f":"Keeper","x":"half a rec');

  const gw2 = await startGateway({ env });
  try {
    assert.ok(gw2.output.some((l) => l.includes('journal: dropped a torn tail at start')), 'the operator is told');
    const { c, welcome } = await joinByMenu(gw2.tcpPort, groupId, 'durable');
    assert.equal(welcome, `Hi Later! welcome to group ${groupId}!`);
    assert.deepEqual([await c.next(), await c.next()], ['Keeper: note 1', 'Keeper: note 2']);
    c.send('third');
    const w = await WsClient.connect(gw2.wsUrl, 'chat.json');
    w.sendJson({ op: 'join', name: 'W', groupId, password: 'durable', since: 2 });
    const m = await w.nextOfType<{ seq: number; text: string }>('message');
    assert.deepEqual([m.seq, m.text], [3, 'third']);
    c.close();
    w.close();
  } finally {
    await gw2.stop();
  }
  assert.ok(readFileSync(join(dataDir, 'journal.ndjson'), 'utf8').endsWith('\n'));
});
