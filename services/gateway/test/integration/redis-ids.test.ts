// 1,000 concurrent creates spread over three gateways on one Redis get exactly
// the IDs 0..999: one cluster-wide counter, no ID twice, none skipped, none overwritten.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ID_COUNTER, groupKeys } from '../../src/engine/redis/keys.js';
import { JsonChat, range, startCluster, type Cluster } from '../helpers/redis-cluster.js';

const CREATES = 1000;
/** Connections creating at the same time, over all nodes (each does connect, create, close). */
const IN_FLIGHT = 60;

let cl: Cluster;
before(async () => {
  cl = await startCluster(3);
});
after(async () => {
  await cl.stop();
});

test(`${CREATES} concurrent creates over three nodes get exactly the IDs 0..${CREATES - 1}`, async () => {
  const ids: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < CREATES) {
      const i = next++;
      const c = await JsonChat.open(cl.nodes[i % 3]!);
      ids.push(await c.create(`creator${i}`, `pw-${i}`, 20_000));
      c.close();
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  assert.equal(ids.length, CREATES);
  assert.deepEqual(ids.map(Number).sort((a, b) => a - b), range(0, CREATES - 1));
  assert.equal(await cl.redis.admin.get(ID_COUNTER), String(CREATES), 'no ID was taken and thrown away');
  // Every group is stored once, with its own creator.
  const p = cl.redis.admin.pipeline();
  for (let i = 0; i < CREATES; i++) p.hget(groupKeys(String(i)).meta, 'c');
  const creators = ((await p.exec()) ?? []).map(([, v]) => v as string);
  assert.equal(new Set(creators).size, CREATES);
  assert.ok(creators.every((c) => /^creator\d+$/.test(c)));
});
