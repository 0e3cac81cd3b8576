// The password queue's scheduling, with jobs that finish when the test says so (no scrypt, no clock).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AGING_MS, MAX_SUSPECTS_PER_GROUP, PasswordWork, type JobOptions, type WorkResult } from '../../src/password-work.js';

/** A queue whose jobs log when they start and finish only when `finish(name)` is called. */
function harness(limits = { concurrency: 2, maxQueued: 100, maxPerAddress: 100 }) {
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const work = new PasswordWork(limits);
  const results = new Map<string, WorkResult<string>>();
  let now = 0;
  const submit = (name: string, opts: Partial<JobOptions> & { key: string }): Promise<WorkResult<string>> => {
    const { key, ...rest } = opts;
    const p = work.submit<string>(
      { address: { key, exempt: false }, kind: 'check', gone: () => false, ...rest },
      () =>
        new Promise<string>((resolve) => {
          started.push(name);
          finishers.set(name, () => resolve(name));
        }),
      now,
    );
    void p.then((r) => results.set(name, r));
    return p;
  };
  const finish = async (name: string): Promise<void> => {
    const f = finishers.get(name);
    assert.ok(f, `${name} is running`);
    f();
    await new Promise((r) => setImmediate(r));
  };
  return { work, started, submit, finish, results, setNow: (t: number) => (now = t) };
}

describe('password work', () => {
  test('one address holds at most all slots but one: a newcomer starts at once', async () => {
    const h = harness();
    for (let i = 0; i < 4; i++) void h.submit(`a${i}`, { key: 'A' });
    assert.deepEqual(h.started, ['a0'], 'A alone still leaves a slot free');
    void h.submit('b0', { key: 'B' });
    assert.deepEqual(h.started, ['a0', 'b0']);
    await h.finish('a0');
    assert.deepEqual(h.started, ['a0', 'b0', 'a1']);
  });

  test('checks before creates; the address served least recently first', async () => {
    const h = harness({ concurrency: 1, maxQueued: 100, maxPerAddress: 100 });
    void h.submit('a0', { key: 'A', kind: 'create' });
    void h.submit('a1', { key: 'A', kind: 'create' });
    void h.submit('c0', { key: 'C', kind: 'create' });
    void h.submit('b0', { key: 'B', kind: 'check' });
    await h.finish('a0');
    assert.equal(h.started.at(-1), 'b0', 'a check goes before creates');
    await h.finish('b0');
    assert.equal(h.started.at(-1), 'c0', 'C was never served, A was');
    await h.finish('c0');
    assert.equal(h.started.at(-1), 'a1');
  });

  test('suspects run one at a time per group, after everyone else, and a blocked one does not block its address', async () => {
    const h = harness({ concurrency: 3, maxQueued: 100, maxPerAddress: 100 });
    void h.submit('s1', { key: 'S1', suspectGroup: '7' });
    void h.submit('s2', { key: 'S2', suspectGroup: '7' });
    void h.submit('s3', { key: 'S3', suspectGroup: '8' });
    assert.deepEqual(h.started, ['s1', 's3'], 'one per group');
    void h.submit('s2b', { key: 'S2' });
    assert.deepEqual(h.started, ['s1', 's3', 's2b'], "S2's own check passes its blocked suspect");
    await h.finish('s1');
    assert.equal(h.started.at(-1), 's2');
  });

  test('precedence ages: a create waiting behind a steady stream of checks runs after AGING_MS', async () => {
    const h = harness({ concurrency: 1, maxQueued: 100, maxPerAddress: 100 });
    void h.submit('x0', { key: 'X' });
    void h.submit('create', { key: 'C', kind: 'create' });
    let t = 0;
    for (let i = 1; i <= 6; i++) {
      h.setNow((t += AGING_MS / 3));
      void h.submit(`x${i}`, { key: i % 2 ? 'Y' : 'Z' });
      await h.finish(h.started.at(-1) as string);
    }
    assert.ok(h.started.includes('create'), `the create ran: ${h.started.join(' ')}`);
    assert.ok(h.started.indexOf('create') <= 4, 'within about AGING_MS of checks');
  });

  test('bounds: per address and in all, busy past them; suspects have a pool of their own', async () => {
    const h = harness({ concurrency: 1, maxQueued: 3, maxPerAddress: 2 });
    void h.submit('a0', { key: 'A' });
    void h.submit('a1', { key: 'A' });
    void h.submit('a2', { key: 'A' });
    assert.deepEqual(await h.submit('a3', { key: 'A' }), { ok: false, reason: 'busy' }, 'per address');
    void h.submit('b0', { key: 'B' });
    assert.deepEqual(await h.submit('c0', { key: 'C' }), { ok: false, reason: 'busy' }, 'in all');
    const suspects = Array.from({ length: 4 }, (_, i) => h.submit(`s${i}`, { key: `S${i}`, suspectGroup: '9' }));
    assert.deepEqual(await suspects[3], { ok: false, reason: 'busy' }, "the suspects' pool is bounded in all");
    assert.equal(h.work.length, 3 + 3, 'suspects do not take the places of other work');
    const g = harness({ concurrency: 1, maxQueued: 100, maxPerAddress: 100 });
    void g.submit('x', { key: 'X' });
    const perGroup = Array.from({ length: MAX_SUSPECTS_PER_GROUP + 1 }, (_, i) => g.submit(`t${i}`, { key: `T${i}`, suspectGroup: '9' }));
    assert.deepEqual(await perGroup[MAX_SUSPECTS_PER_GROUP], { ok: false, reason: 'busy' }, 'and per group');
  });

  test("gone clients' jobs are dropped before they run, and free their places", async () => {
    const h = harness({ concurrency: 1, maxQueued: 2, maxPerAddress: 5 });
    let goneB = false;
    void h.submit('a0', { key: 'A' });
    const b = h.submit('b0', { key: 'B', gone: () => goneB });
    void h.submit('c0', { key: 'C' });
    goneB = true;
    // The queue is full (b0, c0): a new job makes room by dropping the gone client's.
    void h.submit('d0', { key: 'D' });
    assert.deepEqual(await b, { ok: false, reason: 'gone' });
    assert.equal(h.work.length, 2);
    await h.finish('a0');
    assert.deepEqual(h.started, ['a0', 'c0'], 'b0 never ran');
  });

  test('exempt addresses are queued, not bounded', async () => {
    const work = new PasswordWork({ concurrency: 1, maxQueued: 1, maxPerAddress: 1 });
    const jobs = Array.from({ length: 5 }, () => work.submit({ address: { key: '127.0.0.1', exempt: true }, kind: 'create', gone: () => false }, async () => 'done'));
    assert.deepEqual(await Promise.all(jobs), Array.from({ length: 5 }, () => ({ ok: true, value: 'done' })));
  });
});
