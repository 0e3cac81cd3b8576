// heap.ts AfterBurst: the gateway compacts its heap once a storm of connections is over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AfterBurst } from '../../src/heap.js';
import { within } from '../helpers/wait.js';

test('AfterBurst: runs once the notes stop, only after at least `min` of them, and again after the next burst', async () => {
  let runs = 0;
  let ran: () => void = () => undefined;
  const next = (): Promise<void> => new Promise<void>((res) => (ran = res));
  const b = new AfterBurst(30, 5, () => {
    runs++;
    ran();
  });
  try {
    // Fewer than `min`: nothing is armed (so nothing can run, however long it stays quiet).
    for (let i = 0; i < 4; i++) b.note();
    assert.equal((b as unknown as { timer: unknown }).timer, null, 'no timer below min');
    // The fifth arms it; notes keep pushing it back while they come.
    let first = next();
    b.note();
    for (let i = 0; i < 5; i++) b.note();
    assert.equal(runs, 0, 'not while the burst goes on');
    await within(first, 5_000, 'the run after the burst');
    assert.equal(runs, 1);
    // The count starts again: four notes are not a burst.
    for (let i = 0; i < 4; i++) b.note();
    assert.equal((b as unknown as { timer: unknown }).timer, null, 'counted from zero after a run');
    first = next();
    b.note();
    await within(first, 5_000, 'the run after the second burst');
    assert.equal(runs, 2);
  } finally {
    b.stop();
  }
});
