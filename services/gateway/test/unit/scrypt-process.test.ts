// scrypt-process.ts: hashes in a child process that exits when idle (so scrypt's memory leaves
// with it), comes back for the next hash, and fails only the work in hand when it dies.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { hashPassword, verifyPassword } from '../../src/passwords.js';
import { compactHeap } from '../../src/heap.js';
import { ScryptProcess } from '../../src/scrypt-process.js';
import { until } from '../helpers/wait.js';

const pools: ScryptProcess[] = [];
after(() => pools.forEach((p) => p.close()));
const pool = (idleMs: number): ScryptProcess => {
  const p = new ScryptProcess(2, idleMs, createLogger('silent', 't'));
  pools.push(p);
  return p;
};
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('hashes made in the password process verify in this one and back (same salted scrypt)', async () => {
  const p = pool(60_000);
  const h = await hashPassword('café', 1024, p.run);
  assert.equal(await verifyPassword('cafe\u0301', h), true, 'NFC, as in-process');
  assert.equal(await verifyPassword('café', h, p.run), true);
  assert.equal(await verifyPassword('cafe', h, p.run), false);
  assert.notEqual(p.pid(), null);
  assert.notEqual(p.pid(), process.pid);
});

test('the process exits once idle and a new one serves the next hash', async () => {
  const p = pool(200);
  await hashPassword('x', 1024, p.run);
  const first = p.pid() as number;
  await until(() => !alive(first), 5000, 'the idle password process to exit');
  assert.equal(p.pid(), null);
  assert.equal(await verifyPassword('x', await hashPassword('x', 1024, p.run), p.run), true);
  assert.notEqual(p.pid(), first);
});

test('a killed process fails the work in hand, and the next hash gets a new one', async () => {
  const p = pool(60_000);
  await hashPassword('warm', 1024, p.run);
  const slow = hashPassword('y', 1 << 18, p.run); // long enough to be in hand when killed
  process.kill(p.pid() as number, 'SIGKILL');
  await assert.rejects(slow, /password process exited/);
  assert.equal(await verifyPassword('z', await hashPassword('z', 1024, p.run), p.run), true);
});

test('letting the idle process go tells the gateway (which then compacts its heap)', async () => {
  let idle = 0;
  const p = new ScryptProcess(2, 100, createLogger('silent', 't'), () => idle++);
  pools.push(p);
  await hashPassword('x', 1024, p.run);
  await until(() => idle === 1, 5000, 'the idle callback');
  assert.equal(p.pid(), null);
});

test('compactHeap: a heap grown by garbage is collected back', () => {
  let junk: unknown[] | null = [];
  for (let i = 0; i < 1_500_000; i++) junk.push({ i, s: `x${i}` });
  junk = null;
  const { before, after } = compactHeap();
  assert.ok(after < before - 16 * 2 ** 20, `heap total ${before} → ${after}`);
});

test('a hash sent while the idle process is still exiting is served by the new one', async () => {
  const p = pool(50);
  for (let round = 0; round < 5; round++) {
    await hashPassword('x', 1024, p.run);
    await until(() => p.pid() === null, 5000, 'the idle process to be let go');
    // The old child may not have exited yet: its exit must not fail this hash.
    assert.equal(await verifyPassword('x', await hashPassword('x', 1024, p.run), p.run), true);
  }
});

test('bad scrypt parameters fail that request only; the process and its other work carry on', async () => {
  const p = pool(60_000);
  await hashPassword('warm', 1024, p.run);
  const pid = p.pid();
  await assert.rejects(p.run('x', Buffer.from('salt'), 32, { N: 3, r: 8, p: 1 }), /N|power|parameter/i);
  assert.equal(await verifyPassword('y', await hashPassword('y', 1024, p.run), p.run), true);
  assert.equal(p.pid(), pid, 'the same process');
});
