// Per-address budgets and the password-work bound: past them the answer is immediate and clear,
// in JSON and in the text flow, and another address is unaffected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { answer, jsonFrom, metric, tcpFrom, TRUST_LOOPBACK } from '../helpers/forwarded.js';
import { until } from '../helpers/wait.js';

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
    // Still at the password prompt (anywhere else this line would get another answer: the menu says
    // "please try again!", the name and group prompts move on), and the refusals counted no wrong password.
    u.send('pw');
    assert.equal(await u.next(), 'Too many password attempts from your address, try again later! ');
    assert.equal(await metric(gw, 'chat_joins_total', 'result="wrong_password"'), 2);
    assert.equal(await metric(gw, 'chat_admission_refusals_total', 'reason="auth_budget"'), 2);
    assert.equal(await metric(gw, 'chat_admission_refusals_total', 'reason="lockout"'), 0);
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

test('text flow: a join refused busy waits at the password prompt, and the same connection gets in once the queue drains', async () => {
  // One hash at a time (N=2^16, ~0.35 s) and one waiting in all.
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, SCRYPT_N: '65536', SCRYPT_CONCURRENCY: '1', PASSWORD_QUEUE_MAX: '1', AUTH_BUDGET: '0' } });
  try {
    const owner = await jsonFrom(gw, '203.0.113.50');
    owner.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
    const groupId = (await answer(owner)).groupId as string;
    const u = await tcpFrom(gw, '203.0.113.51');
    await u.nextLines(MENU_LINES);
    for (const [send, want] of [
      ['1', 'Enter your name: '],
      ['Bo', 'Enter group ID: '],
      [groupId, 'Enter password: '],
    ] as const) {
      u.send(send);
      assert.equal(await u.next(), want);
    }
    // Two checks from other addresses: one running, one waiting; the queue is full.
    const fillers = await Promise.all(['203.0.113.52', '203.0.113.53'].map((ip) => jsonFrom(gw, ip)));
    fillers.forEach((c, i) => c.sendJson({ op: 'join', name: `F${i}`, groupId, password: `guess ${i}` }));
    await until(async () => (await metric(gw, 'chat_password_queue')) === 1, 5000, 'one check running and one waiting');
    u.send('pw');
    assert.equal(await u.next(), 'The server is busy checking passwords, try again in a moment! ');
    for (const c of fillers) assert.equal((await answer(c)).code, 'wrong_password');
    // The queue has drained: the right password, on the same connection, at the same prompt.
    u.send('pw');
    assert.equal(await u.next(), `Hi Bo! welcome to group ${groupId}!`);
    for (const c of [owner, ...fillers]) c.close();
    u.close();
  } finally {
    await gw.stop();
  }
});

test('the password-work bound: past the per-address queue the answer is busy at once; a JSON client in a group stays in it', async () => {
  // One hash at a time (~0.8 s) and one waiting per address: a third create from one address is refused.
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, SCRYPT_N: '131072', PASSWORD_QUEUE_PER_ADDRESS: '1', SCRYPT_CONCURRENCY: '1' } });
  try {
    const member = await jsonFrom(gw, '203.0.113.20');
    member.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
    assert.equal((await answer(member)).type, 'joined');
    const [running, waiting] = await Promise.all([1, 2].map(() => jsonFrom(gw, '203.0.113.20')));
    running!.sendJson({ op: 'create', name: 'Bot', password: 'pw' });
    waiting!.sendJson({ op: 'create', name: 'Bot', password: 'pw' });
    // The queue is full for this address once a third is refused; the member's own create now is refused too.
    const third = await jsonFrom(gw, '203.0.113.20');
    const t0 = performance.now();
    third.sendJson({ op: 'create', name: 'Bot', password: 'pw' });
    const refused = await answer(third);
    assert.deepEqual([refused.code, refused.message], ['busy', 'The server is busy checking passwords, try again in a moment! ']);
    member.sendJson({ op: 'create', name: 'Ann', password: 'pw2' });
    assert.equal((await answer(member)).code, 'busy');
    assert.ok(performance.now() - t0 < 500, 'refused at once, not after a hash');
    member.sendJson({ op: 'send', text: 'still here', id: 1 });
    assert.deepEqual(JSON.parse(await member.frames.next(5000, 'ack', (f) => f.includes('"ack"'))), { type: 'ack', id: 1, seq: 1 }, 'still in its group');
    assert.equal((await answer(running!)).type, 'joined');
    assert.equal((await answer(waiting!)).type, 'joined');
    assert.ok((await metric(gw, 'chat_admission_refusals_total', 'reason="busy"')) >= 2);
    for (const c of [running!, waiting!, third, member]) c.close();
  } finally {
    await gw.stop();
  }
});

test('busy is not a wrong password: a member refused busy again and again still gets in', async () => {
  // One hash at a time and one waiting in all: two other addresses keep the queue full.
  const gw = await startGateway({ env: { ...TRUST_LOOPBACK, SCRYPT_N: '65536', SCRYPT_CONCURRENCY: '1', PASSWORD_QUEUE_MAX: '1', AUTH_BUDGET: '0' } });
  let stop = false;
  try {
    const owner = await jsonFrom(gw, '203.0.113.30');
    owner.sendJson({ op: 'create', name: 'Owner', password: 'right' });
    const groupId = (await answer(owner)).groupId as string;
    const fillers = ['203.0.113.31', '203.0.113.32'].map(async (ip, i) => {
      const c = await jsonFrom(gw, ip);
      while (!stop) {
        c.sendJson({ op: 'create', name: `F${i}`, password: 'x' });
        await answer(c, 30_000);
      }
      c.close();
    });
    const member = await jsonFrom(gw, '203.0.113.40');
    let busy = 0;
    for (let i = 0; i < 200 && busy < 6; i++) {
      member.sendJson({ op: 'join', name: 'Maya', groupId, password: 'right' });
      const a = await answer(member);
      if (a.code === 'busy') busy++;
      else if (a.type === 'joined') {
        // The queue had room this time: leave and try again, until enough refusals were seen.
        member.sendJson({ op: 'exit' });
        break;
      }
    }
    stop = true;
    await Promise.all(fillers);
    assert.ok(busy > 3, `more busy refusals (${busy}) than AUTH_BACKOFF_AFTER (3) allows wrong passwords`);
    const again = await jsonFrom(gw, '203.0.113.40');
    again.sendJson({ op: 'join', name: 'Maya', groupId, password: 'right' });
    const a = await answer(again);
    assert.equal(a.type, 'joined', `refusals counted as wrong passwords: ${JSON.stringify(a)}`);
    for (const c of [owner, member, again]) c.close();
  } finally {
    stop = true;
    await gw.stop();
  }
});
