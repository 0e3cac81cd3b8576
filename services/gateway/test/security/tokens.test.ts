// Resume tokens are tied to one life of one group: a data reset, a re-encoded signature, the
// maximum age from the password check, and a rotated-out secret all end them with invalid_token.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import type { WsClient } from '../helpers/clients.js';
import { startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { answer, jsonFrom } from '../helpers/forwarded.js';
import { until as until_, until } from '../helpers/wait.js';

const SECRET = 'token-test-secret-0123456789abcdef';
const NEXT_SECRET = 'token-test-secret-rotated-9876543210';

async function create(gw: Gateway): Promise<{ c: WsClient; groupId: string; token: string }> {
  const c = await jsonFrom(gw, '198.51.100.30');
  c.sendJson({ op: 'create', name: 'Ann', password: 'pw' });
  const a = (await answer(c)) as { type: string; groupId: string; token: string };
  assert.equal(a.type, 'joined');
  return { c, groupId: a.groupId, token: a.token };
}

async function resume(gw: Gateway, token: string): Promise<{ type: string; code?: string; token?: string }> {
  const c = await jsonFrom(gw, '198.51.100.31');
  c.sendJson({ op: 'resume', token, since: 0 });
  const a = (await answer(c)) as { type: string; code?: string; token?: string };
  c.close();
  return a;
}

test('a token from before a data reset does not open the new group under the same ID', async () => {
  const env = { CHAT_SECRET: SECRET };
  const before = await startGateway({ env });
  const old = await create(before);
  assert.equal(old.groupId, '0');
  assert.equal((await resume(before, old.token)).type, 'joined', 'valid before the reset');
  old.c.close();
  await before.stop();
  // Same secret, fresh data: a different group 0, with history of its own.
  const after = await startGateway({ env: { ...env, DATA_DIR: tempDir('chat-reset-') } });
  try {
    const fresh = await create(after);
    assert.equal(fresh.groupId, '0');
    fresh.c.sendJson({ op: 'send', text: 'not for the old token', id: 1 });
    await fresh.c.nextOfType('ack');
    const r = await resume(after, old.token);
    assert.deepEqual([r.type, r.code], ['error', 'invalid_token']);
    assert.equal((await resume(after, fresh.token)).type, 'joined');
    fresh.c.close();
  } finally {
    await after.stop();
  }
});

test('a token with a re-encoded signature is refused', async () => {
  const gw = await startGateway({ env: { CHAT_SECRET: SECRET } });
  try {
    const { c, token } = await create(gw);
    const [body, mac] = token.split('.') as [string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = mac.slice(0, -1) + (alphabet[alphabet.indexOf(mac.at(-1) as string) ^ 1] as string);
    for (const variant of [`${token}==`, `${body}.${mac}=`, `${body}..${mac}`, `${body}. ${mac}`, `${body}.${sibling}`]) {
      const r = await resume(gw, variant);
      assert.deepEqual([r.type, r.code], ['error', 'invalid_token'], variant);
    }
    assert.equal((await resume(gw, token)).type, 'joined', 'the token itself still works');
    c.close();
  } finally {
    await gw.stop();
  }
});

test('renewal keeps the time of the password check: past TOKEN_MAX_AGE_SECONDS even a renewed token is refused', async () => {
  const gw = await startGateway({ env: { CHAT_SECRET: SECRET, TOKEN_MAX_AGE_SECONDS: '3' } });
  try {
    const { c, token } = await create(gw);
    const checkedAt = Date.now();
    const renewed = await resume(gw, token);
    assert.equal(renewed.type, 'joined');
    let last = renewed.token as string;
    // Keep renewing; the chain ends at the maximum age from the password check, not from the last renewal.
    let endedAt = 0;
    await until(
      async () => {
        const r = await resume(gw, last);
        if (r.type === 'joined') {
          last = r.token as string;
          return false;
        }
        assert.equal(r.code, 'invalid_token');
        endedAt = Date.now();
        return true;
      },
      15_000,
      'the renewed chain to end',
    );
    const age = endedAt - checkedAt;
    console.log(`# token chain refused ${age} ms after the password check (TOKEN_MAX_AGE_SECONDS=3)`);
    assert.ok(age >= 3000 - 200 && age < 6000, `refused ${age} ms after the password check`);
    c.close();
  } finally {
    await gw.stop();
  }
});

test('CHAT_SECRET rotation: the previous secret verifies until CHAT_SECRET_PREVIOUS_UNTIL, not after; tokens from before epochs still work', async () => {
  const dataDir = tempDir('chat-rotate-');
  const first = await startGateway({ env: { CHAT_SECRET: SECRET, DATA_DIR: dataDir } });
  const { c, groupId, token } = await create(first);
  c.close();
  await first.stop();
  // The window ends at a moment (the same for every node and every restart), here 4 s from now.
  const until = new Date(Date.now() + 4000).toISOString();
  const rotating = await startGateway({ env: { CHAT_SECRET: NEXT_SECRET, CHAT_SECRET_PREVIOUS: SECRET, CHAT_SECRET_PREVIOUS_UNTIL: until, DATA_DIR: dataDir } });
  try {
    const r = await resume(rotating, token);
    assert.equal(r.type, 'joined', 'the previous secret still verifies');
    const renewed = r.token as string;
    // A token from before epochs (no epoch, no auth time), for a group that existed when it was issued.
    const issuedAt = Date.now();
    const body = Buffer.from(JSON.stringify({ g: groupId, n: 'Old', e: issuedAt + 86_400_000 })).toString('base64url');
    const legacy = `${body}.${createHmac('sha256', NEXT_SECRET).update(body).digest('base64url')}`;
    const l = await resume(rotating, legacy);
    assert.equal(l.type, 'joined', 'a pre-epoch token for a group that existed then');
    assert.notEqual(l.token, legacy, 'renewed into a token with the epoch');
    // Past the moment, the old secret's token is refused; the one renewed under the new secret is not.
    await until_(async () => (await resume(rotating, token)).code === 'invalid_token', 10_000, 'the rotation window to end');
    assert.ok(Date.now() >= Date.parse(until) - 50, 'not before the window ended');
    assert.equal((await resume(rotating, renewed)).type, 'joined');
  } finally {
    await rotating.stop();
  }
  // A restart does not open the window again.
  const restarted = await startGateway({ env: { CHAT_SECRET: NEXT_SECRET, CHAT_SECRET_PREVIOUS: SECRET, CHAT_SECRET_PREVIOUS_UNTIL: until, DATA_DIR: dataDir } });
  try {
    assert.equal((await resume(restarted, token)).code, 'invalid_token');
  } finally {
    await restarted.stop();
  }
});
