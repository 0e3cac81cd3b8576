// A chaos client worker: holds whole groups of members (each a resume-capable client,
// member.ts), sends at a steady rate, records everything check.ts needs, and checks its
// own groups against the store at the end. Several run side by side: one process holds at
// most a few thousand sockets (the fd limit is 20,000 per process here).
import { Cluster, Redis } from 'ioredis';
import { groupKeys } from '../../src/engine/redis/keys.js';
import { addResults, checkGroup, emptyResult, messageText, type HistoryEntry, type MemberRecord } from './check.js';
import { createMember, type ChatMember, type MemberEvents } from './member.js';
import { newHistogram, record } from './latency.js';
import { emptyWorkerStats, type FromWorker, type ToWorker, type WorkerStats } from './protocol.js';

interface Tracked {
  groupKey: string;
  groupId: string;
  rec: MemberRecord;
  client: ChatMember | null;
  events: MemberEvents;
  nextId: number;
  nextSendAt: number;
  downAt: number | null;
  /** Highest seq this member knows of (received or acked). */
  top: number;
  /** Seqs held (received, or its own acked sends), and the highest seq up to which it holds all. */
  held: Set<number>;
  upto: number;
  /** Send number → when it was handed to the client (for the ack latency). */
  sentAt: Map<number, number>;
}

const members: Tracked[] = [];
const groups = new Map<string, Tracked[]>();
const stats: WorkerStats = emptyWorkerStats();
/** The only texts members send (check.ts messageText); anything else reaching them leaked in. */
const MEMBER_TEXT = /^m\d+#\d+$/;
let ticker: NodeJS.Timeout | null = null;
/** Sends a member leaves unacked at most before it skips its next ones. */
const MAX_UNACKED = 5;

const reply = (m: FromWorker): void => {
  process.send?.(m);
};
const bump = (o: Record<string, number>, k: string): void => {
  o[k] = (o[k] ?? 0) + 1;
};

function hold(t: Tracked, seq: number): void {
  t.top = Math.max(t.top, seq);
  if (seq <= t.upto) return;
  t.held.add(seq);
  while (t.held.delete(t.upto + 1)) t.upto++;
}

function track(groupKey: string, name: string): Tracked {
  let first = true;
  const t: Tracked = {
    groupKey,
    groupId: '',
    rec: { name, joinSeq: 0, received: [], sent: new Map(), acks: new Map(), reacks: 0 },
    client: null,
    nextId: 1,
    nextSendAt: 0,
    downAt: null,
    top: 0,
    held: new Set(),
    upto: 0,
    sentAt: new Map(),
    events: {
      joined(seq, resumed) {
        if (first) {
          t.rec.joinSeq = seq;
          t.upto = Math.max(t.upto, seq);
          while (t.held.delete(t.upto + 1)) t.upto++;
          first = false;
        }
        t.top = Math.max(t.top, seq);
        if (resumed && t.downAt !== null) {
          const now = Date.now();
          stats.resumes++;
          stats.maxRecoveryMs = Math.max(stats.maxRecoveryMs, now - t.downAt);
          stats.lastBackAt = Math.max(stats.lastBackAt, now);
          t.downAt = null;
        }
      },
      message(seq, _from, text) {
        if (!MEMBER_TEXT.test(text)) stats.foreign++;
        t.rec.received.push([seq, text]);
        hold(t, seq);
      },
      ack(id, seq) {
        const at = t.sentAt.get(id);
        if (at !== undefined) {
          record(stats.ackLatency, performance.now() - at);
          t.sentAt.delete(id);
        }
        if (t.rec.acks.has(id)) t.rec.reacks++;
        else t.rec.acks.set(id, seq);
        hold(t, seq);
      },
      error(code) {
        bump(stats.errors, code);
      },
      closed(code) {
        bump(stats.closes, String(code));
        t.downAt ??= Date.now();
      },
      connectFailed(why) {
        bump(stats.connectFailures, why);
      },
      gap() {
        stats.gaps++;
      },
    },
  };
  return t;
}

/** Run `f` over `items` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await f(items[next++] as T);
    }),
  );
}

async function setup(m: Extract<ToWorker, { t: 'setup' }>): Promise<void> {
  const out: Array<{ key: string; groupId: string }> = [];
  // Creators first (one per group), then everyone else joins.
  const plan = m.groups.map((g) => ({ g, ms: Array.from({ length: g.members }, (_, i) => track(g.key, `m${i}`)) }));
  await pool(plan, m.concurrency, async ({ g, ms }) => {
    const creator = ms[0] as Tracked;
    creator.client = createMember({ urls: m.urls, name: creator.rec.name, password: m.password, groupId: null }, creator.events);
    const groupId = await creator.client.start();
    for (const t of ms) t.groupId = groupId;
    groups.set(g.key, ms);
    members.push(...ms);
    out.push({ key: g.key, groupId });
  });
  const joiners = plan.flatMap(({ ms }) => ms.slice(1));
  await pool(joiners, m.concurrency, async (t) => {
    t.client = createMember({ urls: m.urls, name: t.rec.name, password: m.password, groupId: t.groupId }, t.events);
    await t.client.start();
  });
  stats.members = members.length;
  reply({ t: 'ready', groups: out, members: members.length });
}

function start(rate: number): void {
  const period = 1000 / rate;
  const now = Date.now();
  for (const t of members) t.nextSendAt = now + Math.random() * period;
  ticker = setInterval(() => {
    const at = Date.now();
    for (const t of members) {
      // At most one catch-up send per tick: a worker that fell behind does not burst.
      if (t.nextSendAt > at || !t.client) continue;
      // A person does not type on into a client that has been offline for a while: at most
      // MAX_UNACKED sends wait per member (the rest of its schedule is skipped, not queued).
      if (t.client.pending() >= MAX_UNACKED) {
        t.nextSendAt += period;
        continue;
      }
      const id = t.nextId++;
      const text = messageText(t.rec.name, id);
      t.rec.sent.set(id, text);
      stats.sent++;
      t.sentAt.set(id, performance.now());
      t.client.send(id, text);
      t.nextSendAt += period;
      if (t.nextSendAt < at) t.nextSendAt = at + period * Math.random();
    }
  }, 20);
}

const pendingNow = (): number => members.reduce((n, t) => n + (t.client?.pending() ?? 0), 0);

/** Poll `cond` every 200 ms until true or the deadline (a condition over thousands of members has no single event). */
function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const check = (): void => {
      if (cond()) return resolve(true);
      if (Date.now() > end) return resolve(false);
      setTimeout(check, 200);
    };
    check();
  });
}

/** Members that still lack a message of their group up to the group's top (own acked sends count as held). */
function behind(): number {
  let n = 0;
  for (const ms of groups.values()) {
    let top = 0;
    for (const t of ms) top = Math.max(top, t.top);
    for (const t of ms) if (t.upto < top) n++;
  }
  return n;
}

async function readHistory(redis: Redis | Cluster, groupId: string): Promise<HistoryEntry[]> {
  const out: HistoryEntry[] = [];
  let from = '-';
  for (;;) {
    const page = (await redis.xrange(groupKeys(groupId).history, from, '+', 'COUNT', 5000)) as Array<[string, string[]]>;
    for (const [id, fields] of page) {
      const i = fields.indexOf('m');
      let text = '';
      try {
        text = String((JSON.parse(fields[i + 1] ?? '{}') as { text?: unknown }).text ?? '');
      } catch {
        text = '<unparsable>';
      }
      out.push({ seq: Number(id.split('-')[0]), text });
    }
    if (page.length < 5000) return out;
    from = `(${(page[page.length - 1] as [string, string[]])[0]}`;
  }
}

/** `redis://…` (one server) or `cluster:host:port,…` (a Redis Cluster's seeds, scenario 8). */
async function check(redisUrl: string): Promise<void> {
  const redis = redisUrl.startsWith('cluster:')
    ? new Cluster(
        redisUrl
          .slice('cluster:'.length)
          .split(',')
          .map((s) => ({ host: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) })),
        { redisOptions: { maxRetriesPerRequest: 2 } },
      )
    : new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  try {
    let result = emptyResult();
    for (const ms of groups.values()) {
      const groupId = (ms[0] as Tracked).groupId;
      result = addResults(result, checkGroup(groupId, await readHistory(redis, groupId), ms.map((t) => t.rec)));
    }
    reply({ t: 'checked', result });
  } finally {
    redis.disconnect();
  }
}

function currentStats(): WorkerStats {
  let connected = 0;
  let down = 0;
  let acked = 0;
  let dupDropped = 0;
  let resends = 0;
  for (const t of members) {
    dupDropped += t.client?.duplicatesDropped() ?? 0;
    resends += t.client?.resends() ?? 0;
    if (t.client?.connected()) connected++;
    if (t.downAt !== null) down++;
    acked += t.rec.acks.size;
  }
  return { ...stats, connected, down, pending: pendingNow(), acked, dupDropped, resends };
}

process.on('message', (raw) => {
  const m = raw as ToWorker;
  const run = async (): Promise<void> => {
    switch (m.t) {
      case 'setup':
        return setup(m);
      case 'start':
        return start(m.rate);
      case 'stop': {
        if (ticker) clearInterval(ticker);
        ticker = null;
        await waitFor(() => pendingNow() === 0, m.ms);
        return reply({ t: 'stopped', pending: pendingNow() });
      }
      case 'settle': {
        const ok = await waitFor(() => behind() === 0, m.ms);
        return reply({ t: 'settled', ok, behind: ok ? 0 : behind() });
      }
      case 'check':
        return check(m.redisUrl);
      case 'stats':
        return reply({ t: 'stats', stats: currentStats() });
      case 'latency':
        stats.ackLatency = newHistogram();
        return;
      case 'exit':
        for (const t of members) t.client?.close();
        process.exit(0);
    }
  };
  run().catch((e: unknown) => reply({ t: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
});
// The runner going away (crash, kill) ends the worker too.
process.on('disconnect', () => process.exit(0));
