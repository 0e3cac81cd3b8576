// A client worker process: holds a share of the simulated members, and runs
// the phases the parent asks for (connect, join, fan-out, flood, close).
// Several of these run side by side so one client process is not the limit.
import { newMember, benchText, type Endpoint, type Member, type MemberEvents, type Transport } from './clients.js';
import { Histogram } from './hist.js';
import type { CheckResult, FromWorker, MemberSpec, PhaseResult, RunResult, ToWorker, Window } from './plan.js';
import { now, until } from './wait.js';

/** Ring of send times per sender, for ack latency; must exceed any in-flight window. */
const RING = 1024;
/** Catch-up cap per sender per tick: a worker that fell behind does not burst without bound. */
const MAX_CATCH_UP = 20;

let endpoints: Endpoint[] = [];
let specs: MemberSpec[] = [];
let members: Member[] = [];

// Counters the member events feed; reset per run.
let window: Window | null = null;
let received = new Map<Transport, Histogram>();
let receivedOutside = 0;
let acks = new Histogram();
let errors: Record<string, number> = {};
let flood: { inflight: number; pad: string } | null = null;
let sentInWindow = 0;
let sentTotal = 0;
/** bench-compare: the run number messages are tagged with, and what receivers saw; null = no check. */
let checkRun: number | null = null;
let check: CheckResult = { unique: 0, dups: 0, gaps: 0, skipped: 0, stale: 0 };

function reply(m: FromWorker): void {
  process.send?.(m);
}

/** `<run>.<sender>.<count>` at `from` in a chat body: check the count against what this receiver expects from that sender. */
function checkTag(body: string, from: number, receiver: Member): void {
  const d1 = body.indexOf('.', from);
  const d2 = d1 < 0 ? -1 : body.indexOf('.', d1 + 1);
  const end = d2 < 0 ? -1 : body.indexOf(' ', d2 + 1);
  if (end < 0 || Number(body.slice(from, d1)) !== checkRun) {
    check.stale++;
    return;
  }
  const sender = Number(body.slice(d1 + 1, d2));
  const count = Number(body.slice(d2 + 1, end));
  const seen = (receiver.nextFrom ??= new Map());
  const next = seen.get(sender) ?? 0;
  if (count < next) {
    check.dups++;
    return;
  }
  if (count > next) {
    check.gaps++;
    check.skipped += count - next;
  }
  check.unique++;
  seen.set(sender, count + 1);
}

const events: MemberEvents = {
  chat(body, transport, receiver) {
    // body: "<clock> [<tag> ]<padding>"; parseFloat stops at the space.
    const sentAt = parseFloat(body);
    if (checkRun !== null) checkTag(body, body.indexOf(' ') + 1, receiver);
    const w = window;
    if (!w || sentAt < w.measureFrom || sentAt >= w.endAt) {
      receivedOutside++;
      return;
    }
    let h = received.get(transport);
    if (!h) received.set(transport, (h = new Histogram()));
    h.record(now() - sentAt);
  },
  ack(member, id) {
    const w = window;
    const ring = member.sentAt;
    if (!w || !ring) return;
    const sent = ring[id % RING] as number;
    if (sent >= w.measureFrom && sent < w.endAt) acks.record(now() - sent);
    // Closed loop: every ack frees a slot for the next send, until the window ends.
    if (flood && !member.closed && now() < w.endAt) sendOne(member, flood.pad);
  },
  error(code) {
    errors[code] = (errors[code] ?? 0) + 1;
  },
};

function sendOne(m: Member, pad: string, tag?: { sender: number; bytes: number }): void {
  const w = window as Window;
  const t = now();
  const id = m.nextId++;
  const wire = m.wireId++;
  if (m.sentAt) m.sentAt[wire % RING] = t;
  if (m.transport === 'ws_json') m.inflight++;
  m.send(tag ? benchText(t, pad, `${checkRun}.${tag.sender}.${id}`, tag.bytes) : benchText(t, pad), wire);
  sentTotal++;
  if (t >= w.measureFrom && t < w.endAt) sentInWindow++;
}

/** Run `f` over every member, `concurrency` at a time; time each call. */
async function phase(name: 'connect' | 'join', concurrency: number, f: (m: Member, spec: MemberSpec) => Promise<void>): Promise<PhaseResult> {
  const latency = new Histogram();
  const reasons: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let next = 0;
  const t0 = now();
  const lane = async (): Promise<void> => {
    while (next < members.length) {
      const i = next++;
      const m = members[i] as Member;
      const start = now();
      try {
        await f(m, specs[i] as MemberSpec);
        latency.record(now() - start);
        ok++;
      } catch (e) {
        failed++;
        const why = (e instanceof Error ? e.message : String(e)).slice(0, 80);
        reasons[why] = (reasons[why] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, members.length)) }, lane));
  return { type: 'phase', phase: name, ok, failed, reasons, elapsedMs: now() - t0, latency: latency.toData() };
}

function resetRun(w: Window, run: number | null = null): void {
  window = w;
  checkRun = run;
  check = { unique: 0, dups: 0, gaps: 0, skipped: 0, stale: 0 };
  // A checked run numbers each sender's messages from 0 and starts every receiver afresh.
  if (run !== null) for (const m of members) (m.nextId = 0), (m.nextFrom = null);
  received = new Map();
  receivedOutside = 0;
  acks = new Histogram();
  errors = {};
  sentInWindow = 0;
  sentTotal = 0;
  for (const m of members) m.sentAt ??= new Float64Array(RING);
}

async function finishRun(w: Window, sendLag: Histogram): Promise<RunResult> {
  await until(w.endAt + w.drainMs);
  const out: RunResult = {
    type: 'run',
    sentInWindow,
    sentTotal,
    received: Object.fromEntries([...received].map(([t, h]) => [t, h.toData()])),
    receivedOutside,
    acks: acks.toData(),
    sendLag: sendLag.toData(),
    errors,
    closed: members.filter((m) => m.closed).length,
    unacked: members.reduce((n, m) => n + (m.transport === 'ws_json' && m.inflight > 0 ? m.inflight : 0), 0),
    ...(checkRun !== null ? { check } : {}),
  };
  checkRun = null;
  window = null;
  flood = null;
  return out;
}

/** Open loop: each sender's k-th message is due at its phase + k / rate. */
async function fanout(w: Window, rate: number, textBytes: number, run?: number): Promise<RunResult> {
  resetRun(w, run ?? null);
  const pad = run === undefined ? padding(textBytes) : 'x'.repeat(textBytes);
  const picked = members.flatMap((m, i) => (specs[i]?.sender && !m.closed ? [i] : []));
  const senders = picked.map((i) => members[i] as Member);
  const tags = picked.map((i) => (run === undefined ? undefined : { sender: specs[i]?.id ?? i, bytes: textBytes }));
  const interval = 1000 / rate;
  const due = senders.map(() => w.startAt + Math.random() * interval);
  const sendLag = new Histogram();
  await until(w.startAt);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const t = now();
      if (t >= w.endAt) {
        clearInterval(timer);
        return resolve();
      }
      for (let i = 0; i < senders.length; i++) {
        const m = senders[i] as Member;
        for (let k = 0; k < MAX_CATCH_UP && (due[i] as number) <= t && !m.closed; k++) {
          sendLag.record(now() - (due[i] as number));
          sendOne(m, pad, tags[i]);
          due[i] = (due[i] as number) + interval;
        }
      }
    }, 2);
  });
  return finishRun(w, sendLag);
}

/** Closed loop: fill every sender's window at the start; each ack sends the next (events.ack). */
async function floodRun(w: Window, inflight: number, textBytes: number): Promise<RunResult> {
  resetRun(w);
  const pad = padding(textBytes);
  flood = { inflight, pad };
  await until(w.startAt);
  for (let i = 0; i < members.length; i++) {
    const m = members[i] as Member;
    if (!specs[i]?.sender || m.closed || m.transport !== 'ws_json') continue;
    for (let k = 0; k < Math.min(inflight, RING); k++) sendOne(m, pad);
  }
  return finishRun(w, new Histogram());
}

function padding(textBytes: number): string {
  // "bench " + 17-char clock + " " ≈ 24 bytes before the padding.
  return 'x'.repeat(Math.max(1, textBytes - 24));
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'setup':
      endpoints = msg.endpoints;
      specs = msg.members;
      members = specs.map((s) => newMember(s.transport, s.name, endpoints[s.endpoint] as Endpoint, events));
      return reply({ type: 'ready' });
    case 'connect':
      return reply(await phase('connect', msg.concurrency, (m) => m.connect(msg.timeoutMs)));
    case 'join':
      return reply(await phase('join', msg.concurrency, (m, s) => (m.closed ? Promise.reject(new Error('closed before join')) : m.join(s.groupId, msg.password, msg.timeoutMs))));
    case 'fanout':
      return reply(await fanout(msg.window, msg.ratePerSender, msg.textBytes, msg.check));
    case 'flood':
      return reply(await floodRun(msg.window, msg.inflight, msg.textBytes));
    case 'close':
      for (const m of members) m.terminate();
      process.send?.({ type: 'closed' } satisfies FromWorker, () => process.exit(0));
      return;
  }
}

process.on('message', (msg: ToWorker) => {
  handle(msg).catch((e: unknown) => reply({ type: 'failed', error: e instanceof Error ? e.stack ?? e.message : String(e) }));
});
// The parent went away: stop rather than linger with thousands of sockets.
process.on('disconnect', () => process.exit(0));
