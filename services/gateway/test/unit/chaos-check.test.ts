// The chaos suite's checker (test/chaos/check.ts): it must see every kind of fault it is there
// to catch, or a green `make chaos` would prove nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkGroup, duplicated, lost, messageText, type HistoryEntry, type MemberRecord } from '../chaos/check.js';

const member = (name: string, sent: number[], acks: Array<[number, number]>, received: Array<[number, string]>, joinSeq = 0): MemberRecord => ({
  name,
  joinSeq,
  received,
  sent: new Map(sent.map((id) => [id, messageText(name, id)])),
  acks: new Map(acks),
  reacks: 0,
});
const h = (...texts: string[]): HistoryEntry[] => texts.map((text, i) => ({ seq: i + 1, text }));

test('a clean run: everything owed delivered once, in order', () => {
  const hist = h('a#1', 'b#1', 'a#2');
  const r = checkGroup('0', hist, [
    member('a', [1, 2], [[1, 1], [2, 3]], [[2, 'b#1']]),
    member('b', [1], [[1, 2]], [[1, 'a#1'], [3, 'a#2']]),
  ]);
  assert.equal(lost(r), 0);
  assert.equal(duplicated(r), 0);
  assert.deepEqual([r.sent, r.acked, r.stored, r.delivered, r.owed, r.outOfOrder, r.unacked], [3, 3, 3, 3, 3, 0, 0]);
  assert.deepEqual(r.samples, []);
});

test('loss, duplicates, disorder, reuse of a seq and unacked sends are each caught', () => {
  // b's second send was acked as seq 4, which the store no longer holds; a's first send was stored twice.
  const hist = h('a#1', 'b#1', 'a#1');
  const r = checkGroup('7', hist, [
    member('a', [1, 2], [[1, 1]], [[2, 'b#1'], [2, 'b#1']]),
    member('b', [1, 2], [[1, 2], [2, 4]], [[3, 'a#1'], [1, 'x#9']]),
  ]);
  assert.equal(r.ackedLost, 1, 'acked then lost');
  assert.equal(r.dupStored, 1, 'stored twice');
  assert.equal(r.dupDelivered, 1, 'delivered twice');
  assert.equal(r.outOfOrder, 1, 'seq 1 after seq 3');
  assert.equal(r.mismatched, 1, 'seq 1 received with another text than stored');
  assert.equal(r.unacked, 1, "a's second send never acked");
  assert.equal(r.missing, 0);
  assert.ok(r.samples.some((s) => s.includes('group 7')));
});

test('a member is owed only what came after its join, and not its own sends', () => {
  const hist = h('a#1', 'a#2', 'c#1', 'b#1');
  const r = checkGroup('1', hist, [member('b', [1], [[1, 4]], [[3, 'c#1']], 2), member('c', [1], [[1, 3]], [[1, 'a#1']])]);
  // b joined at 2: owed seq 3 only. c joined at 0: owed 1, 2, 4; it got only 1.
  assert.equal(r.owed, 4);
  assert.equal(r.missing, 2);
  assert.equal(lost(r), 2);
});
