// The backup and restore procedures of docs/RELIABILITY.md, done as written: a backup taken
// from a running node, restored into a fresh one (a new redis-server / a new DATA_DIR and a
// new gateway). Groups, passwords, history and resume tokens still behave after the restore.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TEST_CHAT_SECRET } from '../helpers/engines.js';
import { startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis.js';
import { JsonChat } from '../helpers/redis-cluster.js';
import { until } from '../helpers/wait.js';

/** Chat on `gw`: a group with three messages, and a member's token and last seq. */
async function chat(gw: Gateway): Promise<{ groupId: string; token: string; seen: number }> {
  const a = await JsonChat.open(gw);
  const b = await JsonChat.open(gw);
  try {
    const groupId = await a.create('Ann', 'pw-backup');
    await b.join('Ben', groupId, 'pw-backup');
    for (const t of ['one', 'two', 'three']) await a.sayOk(t);
    await b.untilSeq(3);
    return { groupId, token: b.token, seen: 1 };
  } finally {
    a.close();
    b.close();
  }
}

/** After a restore: the token resumes (with what followed `seen`), the password joins, a wrong one does not, seq goes on. */
async function behaves(gw: Gateway, before: { groupId: string; token: string; seen: number }): Promise<void> {
  const back = await JsonChat.open(gw);
  const fresh = await JsonChat.open(gw);
  try {
    const j = await back.resume(before.token, before.seen);
    assert.equal(j['groupId'], before.groupId);
    await back.untilSeq(3);
    assert.deepEqual(
      back.messages.map((m) => [m.seq, m.text]),
      [
        [2, 'two'],
        [3, 'three'],
      ],
      'the resume replays the history after `since`',
    );
    await assert.rejects(fresh.join('Cy', before.groupId, 'not-the-password'), /wrong_password/);
    await fresh.join('Cy', before.groupId, 'pw-backup');
    assert.equal(await fresh.sayOk('after the restore'), 4, 'seq continues from the restored history');
    await back.untilSeq(4);
  } finally {
    back.close();
    fresh.close();
  }
}

test('Redis: BGSAVE, copy dump.rdb, restore into a fresh redis-server (AOF re-enabled from it) and a fresh gateway', async () => {
  const redis = await RedisServer.start({ appendonly: true });
  let restored: RedisServer | null = null;
  const gws: Gateway[] = [];
  try {
    const gw = await startGateway({ env: { REDIS_URL: redis.url, CHAT_SECRET: TEST_CHAT_SECRET } });
    gws.push(gw);
    const before = await chat(gw);

    // Backup: a point-in-time RDB snapshot, taken while the node runs.
    const backupDir = tempDir('chat-backup-');
    const lastSave = await redis.admin.lastsave();
    await redis.admin.bgsave();
    await until(async () => (await redis.admin.lastsave()) > lastSave || /rdb_bgsave_in_progress:0[\s\S]*rdb_last_bgsave_status:ok/.test(await redis.admin.info('persistence')), 10_000, 'BGSAVE to finish');
    await until(async () => /rdb_bgsave_in_progress:0/.test(await redis.admin.info('persistence')), 10_000, 'BGSAVE done');
    copyFileSync(join(redis.dir, 'dump.rdb'), join(backupDir, 'dump.rdb'));
    await gw.stop();
    await redis.close(); // the original is gone

    // Restore: a fresh server loads the RDB (AOF off at start, or Redis 7 would start from an
    // empty AOF and ignore the RDB), then turns AOF on, which writes the AOF from the data.
    restored = await RedisServer.start({ args: ['--appendonly', 'no'] });
    await restored.stop();
    copyFileSync(join(backupDir, 'dump.rdb'), join(restored.dir, 'dump.rdb'));
    await restored.restart();
    await restored.admin.config('SET', 'appendonly', 'yes');
    await until(async () => /aof_rewrite_in_progress:0[\s\S]*aof_last_bgrewrite_status:ok/.test(await restored!.admin.info('persistence')), 10_000, 'AOF written from the restored data');
    assert.ok(existsSync(join(restored.dir, 'appendonlydir')) && readdirSync(join(restored.dir, 'appendonlydir')).length > 0, 'AOF files exist');

    const gw2 = await startGateway({ env: { REDIS_URL: restored.url, CHAT_SECRET: TEST_CHAT_SECRET } });
    gws.push(gw2);
    await behaves(gw2, before);
  } finally {
    for (const g of gws) await g.stop();
    await restored?.close();
    await redis.close();
  }
});

test('embedded engine: copy DATA_DIR/journal.ndjson from a running node, restore into a fresh DATA_DIR and node', async () => {
  const gws: Gateway[] = [];
  try {
    const dataDir = tempDir('chat-data-');
    // CHAT_SECRET set: resume tokens outlive the process (a single node's default is random per process).
    const gw = await startGateway({ env: { DATA_DIR: dataDir, CHAT_SECRET: TEST_CHAT_SECRET } });
    gws.push(gw);
    const before = await chat(gw);

    // Backup while it runs: the journal is append-only; a copy caught mid-append ends in a torn
    // line, which the restore drops (only that last, unacknowledged record).
    const backupDir = tempDir('chat-backup-');
    copyFileSync(join(dataDir, 'journal.ndjson'), join(backupDir, 'journal.ndjson'));
    await gw.stop('SIGKILL'); // the original is gone, uncleanly

    const restoredDir = join(tempDir('chat-restore-'), 'data');
    mkdirSync(restoredDir);
    copyFileSync(join(backupDir, 'journal.ndjson'), join(restoredDir, 'journal.ndjson'));
    const gw2 = await startGateway({ env: { DATA_DIR: restoredDir, CHAT_SECRET: TEST_CHAT_SECRET } });
    gws.push(gw2);
    await behaves(gw2, before);
  } finally {
    for (const g of gws) await g.stop();
  }
});
