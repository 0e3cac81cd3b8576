// Password hashes and resume tokens.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashPassword, verifyPassword } from '../../src/passwords.js';
import { issueToken, verifyToken } from '../../src/tokens.js';

test('scrypt hashes are salted, self-describing and verify only the right password', async () => {
  const a = await hashPassword('hunter2', 1024);
  const b = await hashPassword('hunter2', 1024);
  assert.notEqual(a, b);
  assert.match(a, /^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.ok(!a.includes('hunter2'));
  assert.equal(await verifyPassword('hunter2', a), true);
  assert.equal(await verifyPassword('hunter3', a), false);
  assert.equal(await verifyPassword('hunter2', 'plain'), false);
});

test('the OWASP default cost (N=2^17) works within scrypt memory limits', async () => {
  const h = await hashPassword('x', 131072);
  assert.equal(await verifyPassword('x', h), true);
});

test('resume tokens verify with the right secret only, and expire', () => {
  const t = issueToken('s'.repeat(32), '4', 'Maya', 60_000, 1_000);
  assert.deepEqual(verifyToken('s'.repeat(32), t, 2_000), { groupId: '4', name: 'Maya', exp: 61_000 });
  assert.equal(verifyToken('t'.repeat(32), t, 2_000), null);
  assert.equal(verifyToken('s'.repeat(32), t, 61_001), null);
  const [body, mac] = t.split('.') as [string, string];
  const forged = Buffer.from(JSON.stringify({ g: '5', n: 'Maya', e: 61_000 })).toString('base64url');
  assert.equal(verifyToken('s'.repeat(32), `${forged}.${mac}`, 2_000), null);
  assert.equal(verifyToken('s'.repeat(32), `${body}.`, 2_000), null);
  assert.equal(verifyToken('s'.repeat(32), 'garbage', 2_000), null);
});
