// REDIS_WAIT_REPLICAS: a send is acked only once a replica has it. A real master with one real
// replica (two redis-servers on free ports); the replica paused with SIGSTOP stands for a lost
// or lagging replica. With the setting, a send then fails `unavailable` after the WAIT timeout
// and its retry (same dedupe key) is answered with the first seq once the replica is back;
// without the setting the same send is acked at once (the control that shows the refusal is
// the setting's doing).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { EngineUnavailableError } from '../../src/engine/engine.js';
import { groupKeys } from '../../src/engine/redis/keys.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { RedisServer } from '../helpers/redis.js';
import { RedisClusterServer } from '../helpers/redis-cluster-server.js';
import { until } from '../helpers/wait.js';

const WAIT_MS = 1000;

/** A send retried (same dedupe key, as the client library does after `unavailable`) until acked, with a deadline. */
async function acked(e: RedisEngine, g: string, m: ReturnType<typeof msg>): Promise<{ seq: number; duplicate?: boolean }> {
  let out: { seq: number; duplicate?: boolean } | null = null;
  await until(
    async () => {
      out = await e.publish(g, m).catch((err: unknown) => {
        if (err instanceof EngineUnavailableError) return null;
        throw err;
      });
      return out !== null;
    },
    15_000,
    'the send to be acked',
  );
  return out as unknown as { seq: number; duplicate?: boolean };
}
let master: RedisServer;
let replica: RedisServer;
const engines: RedisEngine[] = [];

before(async () => {
  master = await RedisServer.start();
  replica = await RedisServer.start({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  await until(async () => /master_link_status:up/.test(await replica.admin.info('replication')), 15_000, 'the replica to sync');
});
after(async () => {
  if (replica.pid !== undefined) process.kill(replica.pid, 'SIGCONT');
  for (const e of engines.splice(0)) await e.stop();
  await replica.close();
  await master.close();
});

async function engine(env: Record<string, string>): Promise<RedisEngine> {
  const e = new RedisEngine(loadConfig({ REDIS_URL: master.url, CHAT_SECRET: 'wait-test-secret-0123456789abcdef', LOG_LEVEL: 'silent', ...env }));
  engines.push(e);
  await e.start();
  return e;
}

const rec = { passwordHash: 'scrypt$1024$8$1$salt$ann', creator: 'ann', createdAt: 1_700_000_000_000 };
const msg = (text: string, dedupe: string) => ({ from: 'ann', text, ts: Date.now(), origin: 'node/ann', dedupe });

test('REDIS_WAIT_REPLICAS=1: acked once the replica has it; with the replica paused, unavailable after the timeout, and the retry gets the first seq', async () => {
  const waiting = await engine({ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: String(WAIT_MS), NODE_ID: 'wait' });
  const plain = await engine({ NODE_ID: 'plain' });
  const g = (await waiting.createGroup(rec)).id;

  // Replica running: acked, and the replica holds the message when the ack arrives.
  const first = await waiting.publish(g, msg('one', 'k1'));
  assert.equal(first.seq, 1);
  assert.equal(await replica.admin.xlen(groupKeys(g).history), 1, 'the replica has the acked message');

  process.kill(replica.pid as number, 'SIGSTOP');
  try {
    const t = Date.now();
    await assert.rejects(waiting.publish(g, msg('two', 'k2')), (e: unknown) => e instanceof EngineUnavailableError && /NOREPLICAS 0 of 1/.test(e.message));
    const took = Date.now() - t;
    assert.ok(took >= WAIT_MS - 20, `refused after the WAIT timeout (${took} ms)`);
    // The control: without the setting the same paused replica does not hold a send back.
    const t2 = Date.now();
    assert.equal((await plain.publish(g, msg('three', 'k3'))).seq, 3);
    assert.ok(Date.now() - t2 < WAIT_MS, 'REDIS_WAIT_REPLICAS=0 acks without waiting');
  } finally {
    process.kill(replica.pid as number, 'SIGCONT');
  }

  // The refused send was stored (seq 2); its retry with the same key is acked once the replica has it, with that seq.
  const retry = await acked(waiting, g, msg('two', 'k2'));
  assert.deepEqual([retry.seq, retry.duplicate], [2, true]);
  assert.equal(await replica.admin.xlen(groupKeys(g).history), 3);
  assert.equal((await waiting.publish(g, msg('four', 'k4'))).seq, 4);
});

test('REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT_MS are bounded', () => {
  const env = { REDIS_URL: master.url, CHAT_SECRET: 'wait-test-secret-0123456789abcdef' };
  assert.throws(() => loadConfig({ ...env, REDIS_WAIT_REPLICAS: '-1' }), /REDIS_WAIT_REPLICAS/);
  assert.throws(() => loadConfig({ ...env, REDIS_WAIT_TIMEOUT_MS: '5000' }), /REDIS_WAIT_TIMEOUT_MS/);
  const c = loadConfig(env);
  assert.deepEqual([c.redisWaitReplicas, c.redisWaitTimeoutMs], [0, 500]);
});

test('on a Redis Cluster, the WAIT goes to the master of the send\'s group: acked when only that master has a replica, refused while it is paused', async () => {
  const rc = await RedisClusterServer.start(3);
  const local: RedisEngine[] = [];
  try {
    const e = new RedisEngine(
      loadConfig({ REDIS_CLUSTER_NODES: rc.seeds, CHAT_SECRET: 'wait-test-secret-0123456789abcdef', LOG_LEVEL: 'silent', NODE_ID: 'cw', REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: String(WAIT_MS) }),
    );
    local.push(e);
    await e.start();
    const g = (await e.createGroup(rec)).id;
    // Only the group's master gets a replica: a WAIT sent to any other master would count 0.
    const r = rc.servers[await rc.addReplica(await rc.masterOf(groupKeys(g).meta))] as RedisServer;
    // (A first try may meet a MOVED while the new node's gossip settles: retried, as a client does.)
    assert.equal((await acked(e, g, msg('one', 'c1'))).seq, 1);
    // Every further send is acked on its first try (a WAIT on another master would count 0 replicas).
    for (let i = 0; i < 5; i++) assert.equal((await e.publish(g, msg(`more${i}`, `m${i}`))).seq, 2 + i);
    await r.admin.call('READONLY'); // a cluster replica answers reads on this connection instead of MOVED
    assert.equal(await r.admin.xlen(groupKeys(g).history), 6, 'the replica has the acked messages');
    process.kill(r.pid as number, 'SIGSTOP');
    try {
      await assert.rejects(e.publish(g, msg('two', 'c2')), (err: unknown) => err instanceof EngineUnavailableError && /NOREPLICAS/.test(err.message));
    } finally {
      process.kill(r.pid as number, 'SIGCONT');
    }
    assert.deepEqual(await acked(e, g, msg('two', 'c2')).then((p) => [p.seq, p.duplicate]), [7, true]);
  } finally {
    for (const e of local) await e.stop();
    await rc.close();
  }
});
