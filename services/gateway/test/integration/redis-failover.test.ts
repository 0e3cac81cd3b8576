// kill -9 one of three gateways while its group chats: its clients resume on
// another node with their token and `since`, and counting by seq nothing is
// lost or duplicated; the dead node's members leave /who within the presence
// TTL and the others get `member_left` for them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JsonChat, range, startCluster, summarize, type Cluster } from '../helpers/redis-cluster.js';
import { until, within } from '../helpers/wait.js';

const PRESENCE_TTL_SECONDS = 2;
let cl: Cluster;
const clients: JsonChat[] = [];
before(async () => {
  // History holds everything this test sends, so a resume can always be complete.
  cl = await startCluster(3, { env: { PRESENCE_TTL_SECONDS: String(PRESENCE_TTL_SECONDS), HISTORY_LIMIT: '10000' } });
});
after(async () => {
  for (const c of clients) c.close();
  await cl.stop();
});

const open = async (node: number): Promise<JsonChat> => {
  const c = await JsonChat.open(cl.nodes[node]!);
  clients.push(c);
  return c;
};

test('kill -9 a gateway mid-chat: its members resume on another node, no seq lost or twice', async (t) => {
  const sender = await open(0);
  const groupId = await sender.create('Sender', 'pw-kill');
  const watcher = await open(2);
  await watcher.join('Watcher', groupId, 'pw-kill');
  const victims: JsonChat[] = [];
  for (const name of ['V1', 'V2']) {
    const v = await open(1);
    await v.join(name, groupId, 'pw-kill');
    victims.push(v);
  }
  const ghost = await open(1); // a member of the killed node that never comes back
  await ghost.join('Ghost', groupId, 'pw-kill');
  await sender.events.take((e) => e.type === 'member_joined' && e['name'] === 'Ghost', 5000, 'Ghost joined');
  assert.deepEqual(await watcher.who(), ['Ghost', 'Sender', 'V1', 'V2', 'Watcher']);

  // The chat goes on before the kill, while the victims are away, and after they are back.
  const KILL_AFTER = 100;
  const AFTER_RESUME = 50;
  const MAX = 5000;
  let back = 0;
  let total = 0;
  let killed: Promise<unknown> = Promise.resolve();
  const sending = (async () => {
    let i = 0;
    while (i < KILL_AFTER || (back < 2 && i < MAX)) {
      assert.equal(await sender.sayOk(`m${++i}`), i);
      if (i === KILL_AFTER) killed = cl.nodes[1]!.stop('SIGKILL');
    }
    for (let k = 0; k < AFTER_RESUME; k++) assert.equal(await sender.sayOk(`m${++i}`), i);
    total = i;
  })();

  // The victims see their socket drop (no close frame from a killed process) and resume on node 2.
  const resumed = victims.map(async (v, k) => {
    await within(v.closed, 10_000, `victim ${k} to see its connection drop`);
    const again = await open(2);
    const since = v.lastSeq;
    // Counting by seq is only meaningful if nothing before `since` was missed either.
    assert.deepEqual(v.seqs(), range(1, since), `victim ${k} before the kill`);
    const joined = await again.resume(v.token, since);
    assert.equal(joined['groupId'], groupId);
    assert.equal(joined['name'], `V${k + 1}`);
    back++;
    return { before: v.seqs(), after: again };
  });
  await sending;
  await killed;
  const TOTAL = total;
  assert.ok(TOTAL > KILL_AFTER + AFTER_RESUME, 'messages were sent while the victims were away');
  t.diagnostic(`${TOTAL} messages, ${TOTAL - KILL_AFTER - AFTER_RESUME} of them between the kill and both resumes`);
  assert.equal((await cl.nodes[1]!.exited).signal, 'SIGKILL');
  for (const [k, r] of (await Promise.all(resumed)).entries()) {
    await r.after.untilSeq(TOTAL);
    const all = [...r.before, ...r.after.seqs()];
    assert.equal(new Set(all).size, all.length, `victim ${k}: no duplicates (${summarize(all)})`);
    assert.deepEqual(all, range(1, TOTAL), `victim ${k}: every seq once, in order`);
  }
  await watcher.untilSeq(TOTAL);
  assert.deepEqual(watcher.seqs(), range(1, TOTAL));

  // The killed node's Ghost leaves presence within the TTL (plus a heartbeat), with a notice on every live node.
  const t0 = Date.now();
  await watcher.events.take((e) => e.type === 'member_left' && e['name'] === 'Ghost', (PRESENCE_TTL_SECONDS + 5) * 1000, 'Ghost to be swept');
  await sender.events.take((e) => e.type === 'member_left' && e['name'] === 'Ghost', 5000, 'Ghost left, seen on node 0');
  assert.ok(Date.now() - t0 < (PRESENCE_TTL_SECONDS + 3) * 1000);
  await until(async () => !(await watcher.who()).includes('Ghost'), 2000, 'Ghost gone from /who');
  assert.deepEqual(await sender.who(), ['Sender', 'V1', 'V2', 'Watcher']);
});
