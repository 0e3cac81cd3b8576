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
import { until } from '../helpers/wait.js';

const WAIT_MS = 300;
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
  const retry = await waiting.publish(g, msg('two', 'k2'));
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
