// The embedded engine's journal: group commit, torn tails, compaction.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Journal } from '../../src/engine/journal.js';
import { MemoryEngine } from '../../src/engine/memory.js';
import { tempDir } from '../helpers/gateway.js';

type R = { n: number };
const parse = (v: unknown): R | null => (typeof v === 'object' && v !== null && typeof (v as R).n === 'number' ? (v as R) : null);

test('appends resolve once written, in order; replay reads them back', async () => {
  const dir = tempDir();
  const j = new Journal<R>(dir);
  await j.replay(parse);
  await Promise.all(Array.from({ length: 500 }, (_, i) => j.append({ n: i })));
  await j.close();
  const again = new Journal<R>(dir);
  const { records, droppedBytes } = await again.replay(parse);
  assert.equal(droppedBytes, 0);
  assert.deepEqual(
    records.map((r) => r.n),
    Array.from({ length: 500 }, (_, i) => i),
  );
  await again.close();
});

test('a torn or garbled tail is dropped and truncated away; what came before is kept', async () => {
  const dir = tempDir();
  const file = join(dir, 'journal.ndjson');
  writeFileSync(file, '{"n":1}\n{"n":2}\n{"n":3');
  const j = new Journal<R>(dir);
  const r1 = await j.replay(parse);
  assert.deepEqual(r1.records, [{ n: 1 }, { n: 2 }]);
  assert.equal(r1.droppedBytes, 6);
  await j.append({ n: 4 });
  await j.close();
  assert.equal(readFileSync(file, 'utf8'), '{"n":1}\n{"n":2}\n{"n":4}\n');
  appendFileSync(file, 'garbage\n{"n":5}\n');
  const j2 = new Journal<R>(dir);
  assert.deepEqual((await j2.replay(parse)).records, [{ n: 1 }, { n: 2 }, { n: 4 }]);
  await j2.close();
});

test('compaction swaps in a snapshot and later appends follow it', async () => {
  const dir = tempDir();
  const j = new Journal<R>(dir);
  await j.replay(parse);
  for (let i = 0; i < 10; i++) await j.append({ n: i });
  j.compact(() => [{ n: 100 }]);
  await j.append({ n: 101 });
  await j.close();
  assert.equal(readFileSync(join(dir, 'journal.ndjson'), 'utf8'), '{"n":100}\n{"n":101}\n');
});

test('the memory engine rebuilds groups, seq and capped history from its journal', async () => {
  const dir = tempDir();
  const e1 = new MemoryEngine({ dataDir: dir, historyLimit: 2 });
  await e1.start();
  const g = await e1.createGroup({ passwordHash: 'scrypt$x', creator: 'A', createdAt: 1 });
  assert.equal(g.id, '0');
  for (let i = 1; i <= 4; i++) await e1.publish('0', { from: 'A', text: `t${i}`, ts: i, origin: 'n/1' });
  await e1.stop();
  const e2 = new MemoryEngine({ dataDir: dir, historyLimit: 2 });
  await e2.start();
  assert.equal((await e2.history('0', { limit: 0 })).top, 4);
  assert.deepEqual(
    (await e2.history('0', { limit: 10 })).messages.map((m) => m.text),
    ['t3', 't4'],
  );
  assert.equal((await e2.createGroup({ passwordHash: 'scrypt$y', creator: 'B', createdAt: 2 })).id, '1');
  await e2.stop();
});

test('a compaction never loses an acknowledged message, with one writer or several', async () => {
  for (const writers of [1, 4]) {
    const dir = tempDir();
    const e1 = new MemoryEngine({ dataDir: dir, historyLimit: 5 });
    await e1.start();
    await e1.createGroup({ passwordHash: 'scrypt$x', creator: 'A', createdAt: 1 });
    // The first compaction after start comes at 10,000 appends; go past it.
    const total = 10_008;
    let acked = 0;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = w; i < total; i += writers) {
          await e1.publish('0', { from: 'A', text: `t${i}`, ts: i, origin: 'n/1' });
          acked++;
        }
      }),
    );
    await e1.stop();
    const e2 = new MemoryEngine({ dataDir: dir, historyLimit: 5 });
    await e2.start();
    assert.equal(acked, total);
    assert.equal((await e2.history('0', { limit: 0 })).top, total, `${writers} writer(s): the last acked seq survives`);
    assert.deepEqual(
      (await e2.history('0', { limit: 5 })).messages.map((m) => m.seq),
      [total - 4, total - 3, total - 2, total - 1, total],
    );
    await e2.stop();
  }
});
