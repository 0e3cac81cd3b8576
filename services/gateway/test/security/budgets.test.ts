// Per-address budgets and the password-work bound: past them the answer is immediate and clear,
// in JSON and in the text flow, and another address is unaffected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { answer, jsonFrom, metric, tcpFrom, TRUST_LOOPBACK } from '../helpers/forwarded.js';

const MENU_LINES = 4;

test('5,000 creates from one address are cut off at the create budget; another address still creates', async () => {
  // The connection's rate bucket is off so that the budget alone does the cutting.
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, CREATE_BUDGET: '20', RATE_LIMIT_PER_SEC: '0' } });
  try {
    const c = await jsonFrom(gw, '203.0.113.5');
    const t0 = performance.now();
    const results = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      c.sendJson({ op: 'create', name: `bot${i}`, password: 'x' });
      const a = await answer(c);
      const k = a.code ?? a.type;
      results.set(k, (results.get(k) ?? 0) + 1);
      if (a.code) assert.equal(a.message, 'You have created too many groups for now, try again later! ');
    }
    const ms = performance.now() - t0;
    console.log(`# 5,000 creates from one address: ${JSON.stringify(Object.fromEntries(results))} in ${ms.toFixed(0)} ms`);
    assert.deepEqual(Object.fromEntries(results), { joined: 20, rate_limited: 4980 });
    assert.equal(await metric(gw, 'chat_groups_created_total'), 20);
    assert.equal(await metric(gw, 'chat_admission_refusals_total', 'reason="create_budget"'), 4980);
    const other = await jsonFrom(gw, '203.0.113.6');
    other.sendJson({ op: 'create', name: 'Sam', password: 'x' });
    assert.equal((await answer(other)).type, 'joined', 'another address has its own budget');
    c.close();
    other.close();
  } finally {
    await gw.stop();
  }
});

test('text flow: a refused create says so and shows the menu again; a refused join stays at the password prompt', async () => {
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, CREATE_BUDGET: '1', AUTH_BUDGET: '2' } });
  try {
    const t = await tcpFrom(gw, '203.0.113.7');
    await t.nextLines(MENU_LINES);
    t.send('2');
    assert.equal(await t.next(), 'Enter your name: ');
    t.send('Ann');
    assert.equal(await t.next(), 'Enter a new password for your group:');
    t.send('pw');
    assert.equal(await t.next(), 'Chat 0 has been created.');
    t.send('/quit');
    await t.closed;

    const u = await tcpFrom(gw, '203.0.113.7');
    await u.nextLines(MENU_LINES);
    u.send('2');
    await u.next();
    u.send('Ann');
    await u.next();
    u.send('pw2');
    assert.equal(await u.next(), 'You have created too many groups for now, try again later! ');
    assert.match(await u.nextLines(MENU_LINES), /^Hello client, please choose an option:\n1\. /, 'the menu again');
    // Join: two checks fit the budget (a wrong one, then the right one would), the third is refused.
    u.send('1');
    assert.equal(await u.next(), 'Enter your name: ');
    u.send('Ann');
    assert.equal(await u.next(), 'Enter group ID: ');
    u.send('0');
    assert.equal(await u.next(), 'Enter password: ');
    u.send('nope');
    assert.equal(await u.next(), 'Wrong password. Please try again! ');
    u.send('nope again');
    assert.equal(await u.next(), 'Wrong password. Please try again! ');
    u.send('pw');
    assert.equal(await u.next(), 'Too many password attempts from your address, try again later! ');
    // Still at the password prompt: from another address (own budget) the right password gets in.
    const v = await tcpFrom(gw, '203.0.113.8');
    await v.nextLines(MENU_LINES);
    for (const [send, want] of [
      ['1', 'Enter your name: '],
      ['Bo', 'Enter group ID: '],
      ['0', 'Enter password: '],
      ['pw', 'Hi Bo! welcome to group 0!'],
    ] as const) {
      v.send(send);
      assert.equal(await v.next(), want);
    }
    u.close();
    v.close();
  } finally {
    await gw.stop();
  }
});

test('the password-work bound: past the per-address queue the answer is busy at once; a JSON client in a group stays in it', async () => {
  // A slow hash and a queue of one per address: the third create from one address is refused.
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, SCRYPT_N: '65536', PASSWORD_QUEUE_PER_ADDRESS: '1', SCRYPT_CONCURRENCY: '1' } });
  try {
    const member = await jsonFrom(gw, '203.0.113.20');
    member.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
    const joined = await answer(member);
    assert.equal(joined.type, 'joined');
    const others = await Promise.all([1, 2, 3].map(() => jsonFrom(gw, '203.0.113.20')));
    const t0 = performance.now();
    for (const c of others) c.sendJson({ op: 'create', name: 'Bot', password: 'pw' });
    member.sendJson({ op: 'create', name: 'Ann', password: 'pw2' });
    const answers = await Promise.all([...others, member].map((c) => answer(c)));
    const busy = answers.filter((a) => a.code === 'busy');
    assert.ok(busy.length >= 2, `one running, one queued, the rest busy: ${JSON.stringify(answers.map((a) => a.code ?? a.type))}`);
    assert.equal(busy[0]?.message, 'The server is busy checking passwords, try again in a moment! ');
    assert.ok(performance.now() - t0 < 10_000);
    // If the member's own create was the refused one, it is still in its group and chats there.
    const mine = answers[3];
    if (mine?.code === 'busy') {
      member.sendJson({ op: 'send', text: 'still here', id: 1 });
      assert.deepEqual(JSON.parse(await member.frames.next(5000, 'ack', (f) => f.includes('"ack"'))), { type: 'ack', id: 1, seq: 1 });
    }
    assert.ok((await metric(gw, 'chat_admission_refusals_total', 'reason="busy"')) >= 2);
    for (const c of [...others, member]) c.close();
  } finally {
    await gw.stop();
  }
});
