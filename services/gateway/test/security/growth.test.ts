// Bounded growth against real gateway processes (issue 8, item 4), on the
// embedded engine and on Redis: a group idle past a short retention period is
// gone (its ID answers "Wrong ID", its token opens nothing), the ceiling on
// groups answers `group_limit`, and history stays within HISTORY_MAX_BYTES per
// group however much is sent (journal, Redis memory and RSS measured).
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LineClient } from '../helpers/clients.js';
import { ENGINES, gatewayOn, type EngineStartOptions } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { JsonChat, type Ev } from '../helpers/redis-cluster.js';
import { RedisServer } from '../helpers/redis.js';

/** Budgets off: these tests are about growth, and every client here comes from one address. */
const NO_BUDGETS = { CREATE_BUDGET: '0', AUTH_BUDGET: '0', RATE_LIMIT_PER_SEC: '0', MAX_QUEUED_INPUT_BYTES: '0' };

async function metric(gw: Gateway, name: string): Promise<number> {
  const { body } = await gw.http('/metrics', gw.metricsPort);
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(body);
  return m ? Number(m[1]) : NaN;
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

for (const engine of ENGINES) {
  describe(`bounded growth (${engine})`, () => {
    test('a group idle past GROUP_RETENTION_SECONDS is removed: its ID answers "Wrong ID", its token opens nothing; a group with a member online stays', async () => {
      let redis: RedisServer | null = null;
      const opts: EngineStartOptions = { env: { ...NO_BUDGETS, GROUP_RETENTION_SECONDS: '2' } };
      if (engine === 'redis') opts.redis = redis = await RedisServer.start();
      const gw = await gatewayOn(engine, opts);
      try {
        const keeper = await JsonChat.open(gw);
        const kept = await keeper.create('Keeper', 'pw-keep');
        const leaver = await JsonChat.open(gw);
        const gone = await leaver.create('Leaver', 'pw-gone');
        const token = leaver.token;
        const t0 = Date.now(); // its last activity is after this
        await leaver.sayOk('words that must never reach a log');
        leaver.ws.sendJson({ op: 'exit' });
        await leaver.closed;

        const line = await gw.waitLog('[CHAT REMOVED]', 15_000, (l) => l['groupId'] === gone);
        const tookMs = Date.now() - t0;
        assert.ok(tookMs >= 1990, `not removed before the period (${tookMs} ms)`);
        assert.equal(await metric(gw, 'chat_groups_removed_total'), 1);
        assert.ok(!JSON.stringify(line).includes('pw-gone') && !gw.output.some((l) => l.includes('words that must never')), 'no password or text in logs');

        // The text flow: the removed ID is unknown; the kept one asks for its password.
        const c = await LineClient.connect(gw.tcpPort);
        await c.nextLines(4);
        c.send('1');
        await c.until('Enter your name: ');
        c.send('Maya');
        await c.until('Enter group ID: ');
        c.send(gone);
        assert.equal(await c.next(), 'Wrong ID, try again! ');
        c.send(kept);
        assert.equal(await c.next(), 'Enter password: ');
        c.close();

        // Its resume token opens nothing.
        const late = await JsonChat.open(gw);
        late.ws.sendJson({ op: 'resume', token, since: 0 });
        const answer = await late.events.take((e: Ev) => e.type === 'joined' || e.type === 'error', 5000, 'the resume answer');
        assert.equal(answer.type, 'error', 'a removed group’s token is refused');
        // The member online kept hers through several periods.
        assert.equal(await keeper.sayOk('still here'), 1);
      } finally {
        await gw.stop();
        await redis?.close();
      }
    });

    test('MAX_GROUPS: the create past the ceiling gets group_limit and stores nothing', async () => {
      let redis: RedisServer | null = null;
      const opts: EngineStartOptions = { env: { ...NO_BUDGETS, MAX_GROUPS: '3' } };
      if (engine === 'redis') opts.redis = redis = await RedisServer.start();
      const gw = await gatewayOn(engine, opts);
      try {
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) ids.push(await (await JsonChat.open(gw)).create(`u${i}`, 'pw'));
        assert.deepEqual(ids, ['0', '1', '2']);
        const fourth = await JsonChat.open(gw);
        fourth.ws.sendJson({ op: 'create', name: 'u3', password: 'pw' });
        const answer = await fourth.events.take((e: Ev) => e.type === 'created' || e.type === 'error', 10_000, 'the fourth create answer');
        assert.deepEqual([answer.type, answer['code']], ['error', 'group_limit']);
        if (redis) assert.equal(await redis.admin.exists('chat:{g:3}'), 0, 'nothing stored');
      } finally {
        await gw.stop();
        await redis?.close();
      }
    });

    test('history stays within HISTORY_MAX_BYTES per group: 50 groups × 100 messages of 2,000 emoji', async (t) => {
      const GROUPS = 50;
      const MESSAGES = 100;
      const MAX_BYTES = 64 * 1024;
      const text = '😀'.repeat(2000); // 8,000 bytes of UTF-8
      const TEXT_BYTES = Buffer.byteLength(text);
      let redis: RedisServer | null = null;
      const opts: EngineStartOptions = { noTcp: true, env: { ...NO_BUDGETS, HISTORY_MAX_BYTES: String(MAX_BYTES), HISTORY_LIMIT: '1000' } };
      if (engine === 'redis') opts.redis = redis = await RedisServer.start();
      const gw = await gatewayOn(engine, opts);
      try {
        const journal = join(gw.env['DATA_DIR'] as string, 'journal.ndjson');
        const stored = async (): Promise<number> => (redis ? Number(/used_memory:(\d+)/.exec(await redis.admin.info('memory'))?.[1]) : statSync(journal).size);
        const storedBefore = await stored();
        const rssBefore = await metric(gw, 'process_resident_memory_bytes');
        const heapBefore = await metric(gw, 'nodejs_heap_size_used_bytes');

        // Ten members at a time, each creating a group and sending its messages four in flight.
        const groups: string[] = [];
        for (let batch = 0; batch < GROUPS; batch += 10) {
          await Promise.all(
            Array.from({ length: 10 }, async (_, k) => {
              const c = await JsonChat.open(gw);
              groups.push(await c.create(`g${batch + k}`, 'pw'));
              const pending = new Set<Promise<number>>();
              for (let i = 0; i < MESSAGES; i++) {
                const p: Promise<number> = c.sayOk(text, 20_000).finally(() => pending.delete(p));
                pending.add(p);
                if (pending.size >= 4) await Promise.race(pending);
              }
              await Promise.all(pending);
              c.ws.close();
              await c.closed;
            }),
          );
        }
        const storedAfter = await stored();
        const rssAfter = await metric(gw, 'process_resident_memory_bytes');
        const heapAfter = await metric(gw, 'nodejs_heap_size_used_bytes');

        // Every group keeps exactly what fits: the newest 8 messages (64,000 bytes), seqs unchanged.
        const reader = await JsonChat.open(gw);
        const keep = Math.floor(MAX_BYTES / TEXT_BYTES);
        for (const g of [groups[0], groups[GROUPS - 1]] as string[]) {
          // A join with since=0 replays everything the history still holds.
          await reader.join('reader', g, 'pw', 0);
          await reader.untilMessages((ms) => ms.some((m) => m.groupId === g && m.seq === MESSAGES), 10_000, `group ${g}'s history`);
          const msgs = reader.messages.filter((m) => m.groupId === g);
          const bytes = msgs.reduce((a, m) => a + Buffer.byteLength(m.text), 0);
          assert.ok(bytes <= MAX_BYTES, `group ${g} keeps ${bytes} bytes`);
          assert.deepEqual(
            msgs.map((m) => m.seq),
            Array.from({ length: keep }, (_, i) => MESSAGES - keep + 1 + i),
          );
        }

        const sent = GROUPS * MESSAGES * TEXT_BYTES;
        const bound = GROUPS * MAX_BYTES;
        const grew = storedAfter - storedBefore;
        t.diagnostic(
          `${engine}: sent ${mib(sent)} of text; bound ${mib(bound)}; ${redis ? 'Redis used_memory' : 'journal'} +${mib(grew)} (${mib(storedAfter)}); RSS ${mib(rssBefore)} → ${mib(rssAfter)} (+${mib(rssAfter - rssBefore)}); heap used ${mib(heapBefore)} → ${mib(heapAfter)} (RSS and heap include the traffic's garbage not yet collected)`,
        );
        // The journal is rewritten once it doubles (≥ 1 MiB): at most about twice what is kept, plus 1 MiB.
        // Redis keeps the text once, in the streams, plus per-entry overhead.
        assert.ok(grew < 3 * bound + 2 * MiB, `${redis ? 'Redis memory' : 'journal'} grew ${mib(grew)}, bound ${mib(bound)} (unbounded: ${mib(sent)})`);
      } finally {
        await gw.stop();
        await redis?.close();
      }
    });
  });
}
