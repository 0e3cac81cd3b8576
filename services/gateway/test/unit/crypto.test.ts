// Password hashes and resume tokens.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { hashPassword, verifyPassword } from '../../src/passwords.js';
import { issueToken, newJoinId, verifyToken } from '../../src/tokens.js';

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

test('resume tokens verify with the right secret only, carry the epoch and auth time, and expire', () => {
  const S = 's'.repeat(32);
  const claims = { groupId: '4', name: 'Maya', epoch: 'ep0', authAt: 500, joinId: 'J'.repeat(16) };
  const t = issueToken(S, claims, 60_000, 1_000);
  assert.deepEqual(verifyToken([S], t, 2_000), { ...claims, exp: 61_000 });
  assert.equal(verifyToken(['t'.repeat(32)], t, 2_000), null);
  assert.deepEqual(verifyToken(['t'.repeat(32), S], t, 2_000), { ...claims, exp: 61_000 }, 'a previous secret still verifies');
  assert.equal(verifyToken([S], t, 61_001), null);
  const [body, mac] = t.split('.') as [string, string];
  const forged = Buffer.from(JSON.stringify({ g: '5', n: 'Maya', p: 'ep0', a: 500, e: 61_000 })).toString('base64url');
  assert.equal(verifyToken([S], `${forged}.${mac}`, 2_000), null);
  assert.equal(verifyToken([S], `${body}.`, 2_000), null);
  assert.equal(verifyToken([S], 'garbage', 2_000), null);
});

test('resume tokens have one canonical encoding: padded, spaced or re-encoded signatures are refused', () => {
  const S = 's'.repeat(32);
  const t = issueToken(S, { groupId: '4', name: 'Maya', epoch: 'ep0', authAt: 500, joinId: 'J'.repeat(16) }, 60_000, 1_000);
  const [body, mac] = t.split('.') as [string, string];
  // The last base64url character of a 32-byte MAC carries 2 spare bits: flipping them decodes to the same bytes.
  const last = mac.at(-1) as string;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = alphabet[alphabet.indexOf(last) ^ 1] as string;
  const variant = mac.slice(0, -1) + sibling;
  assert.deepEqual(Buffer.from(variant, 'base64url'), Buffer.from(mac, 'base64url'), 'the variant decodes to the same MAC');
  for (const bad of [`${t}==`, `${body}.${mac}=`, `${body}..${mac}`, `${body}. ${mac}`, ` ${t}`, `${body}.${variant}`, `${body}=.${mac}`])
    assert.equal(verifyToken([S], bad, 2_000), null, JSON.stringify(bad));
  assert.notEqual(verifyToken([S], t, 2_000), null);
});

test('a token from before epochs still verifies (epoch and auth time null); half of them is refused', () => {
  const S = 's'.repeat(32);
  const sign = (claims: object): string => {
    const b = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${b}.${createHmac('sha256', S).update(b).digest('base64url')}`;
  };
  assert.deepEqual(verifyToken([S], sign({ g: '1', n: 'Old', e: 9_000 }), 2_000), { groupId: '1', name: 'Old', epoch: null, authAt: null, exp: 9_000, joinId: null });
  assert.equal(verifyToken([S], sign({ g: '1', n: 'Old', p: 'x', e: 9_000 }), 2_000), null);
});

test('a token carries the join id; one from before join ids has none (null); a malformed one is refused', () => {
  const S = 's'.repeat(32);
  const sign = (claims: object): string => {
    const b = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${b}.${createHmac('sha256', S).update(b).digest('base64url')}`;
  };
  const j = newJoinId();
  assert.match(j, /^[A-Za-z0-9_-]{16}$/);
  assert.notEqual(newJoinId(), j, 'random per join');
  assert.equal(verifyToken([S], sign({ g: '1', n: 'A', p: 'x', a: 1, e: 9_000, j }), 2_000)?.joinId, j);
  assert.equal(verifyToken([S], sign({ g: '1', n: 'A', p: 'x', a: 1, e: 9_000 }), 2_000)?.joinId, null);
  for (const bad of [5, '', 'short', 'x'.repeat(17), 'bad chars!!!!!!!'])
    assert.equal(verifyToken([S], sign({ g: '1', n: 'A', p: 'x', a: 1, e: 9_000, j: bad }), 2_000), null, JSON.stringify(bad));
});
