// make bench-compare's results: what one step, one memory run and one node-count
// run measured, the issue-11 goals as ratios of the gateway to the bare peer
// (and to Socket.IO), and the tables (printed, and written into docs/BENCHMARKS.md
// between its marker comments).
import { readFileSync, writeFileSync } from 'node:fs';

export type TargetName = 'bare' | 'socket.io' | 'gateway';
export const TARGETS: readonly TargetName[] = ['bare', 'gateway', 'socket.io'];

export interface Step {
  target: TargetName;
  nodes: number;
  /** Messages per second each member sends. */
  rate: number;
  /** What the schedule asks for: members × rate × (room size − 1). */
  nominal: number;
  /** Deliveries of messages sent inside the measured window, per second of it. */
  deliveries: number;
  /** Messages sent per second inside the window (= PUBLISHes for the peers). */
  published: number;
  p50: number;
  p99: number;
  /** % of one core over the window: the target's node processes summed, its redis-server, the client workers. */
  serverCpu: number;
  redisCpu: number;
  clientCpu: number;
  /** The whole host, % of all cores, and the share of it no process of this run used (other people's work). */
  hostBusy: number;
  otherPct: number;
  sendLagP99: number;
  /** Over the whole run (warm-up included): expected − received once, and the receivers' count checks. */
  lost: number;
  dups: number;
  gaps: number;
  closed: number;
  errors: number;
  pass: boolean;
  why: string[];
}

export interface Memory {
  target: TargetName;
  connections: number;
  baselineMb: number;
  /** RSS right after the last join. */
  joinedMb: number;
  /** RSS after `idleSeconds` idle (what the goal counts). */
  afterMb: number;
  idleSeconds: number;
  peakMb: number;
  perConnKb: number;
  joinSeconds: number;
  note: string;
}

export interface Results {
  quick: boolean;
  startedAt: Date;
  command: string;
  machine: string;
  params: string;
  steps: Step[];
  /** The same first step on one node (bare, gateway), for the cost of more nodes. */
  oneNode: Step[];
  memory: Memory[];
  /** Targets or phases that could not run, and why. */
  broken: string[];
}

/** CPU % of one core per 1,000 deliveries/s. */
export const perK = (cpu: number, deliveries: number): number => (deliveries > 0 ? cpu / (deliveries / 1000) : NaN);
const f = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '—');
const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const k = (n: number): string => (!Number.isFinite(n) ? '—' : n < 10_000 ? `${(n / 1000).toFixed(1)}k` : `${Math.round(n / 1000)}k`);

/** The highest passing step's nominal deliveries/s (0 when the first fails), and whether the schedule's top passed. */
export function knee(steps: Step[], target: TargetName, topRate: number): { value: number; top: boolean; measured: boolean } {
  const mine = steps.filter((s) => s.target === target);
  let value = 0;
  for (const s of mine) {
    if (!s.pass) break;
    value = s.nominal;
  }
  return { value, top: mine.some((s) => s.pass && s.rate === topRate), measured: mine.length > 0 };
}

interface Goal {
  goal: string;
  gateway: string;
  bare: string;
  sio: string;
  ratio: number;
  bound: string;
  met: boolean | null;
}

function goals(r: Results, rates: number[]): Goal[] {
  const step = (t: TargetName, rate: number | undefined): Step | undefined => r.steps.find((s) => s.target === t && s.rate === rate);
  const out: Goal[] = [];
  const top = rates[rates.length - 1] ?? 0;
  const kg = knee(r.steps, 'gateway', top);
  const kb = knee(r.steps, 'bare', top);
  const ks = knee(r.steps, 'socket.io', top);
  const kneeText = (x: ReturnType<typeof knee>): string => (!x.measured ? '—' : x.value === 0 ? 'none' : `${k(x.value)}${x.top ? ' (top step)' : ''}`);
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : a > 0 ? Infinity : a === 0 && b === 0 ? 0 : NaN);
  const le = (x: number, bound: number): boolean | null => (Number.isFinite(x) ? x <= bound : null);
  // A knee ratio with a gateway knee of 0 is 0 (not met), whatever the peer's.
  const ge = (x: number, bound: number): boolean | null => (kg.measured && kg.value === 0 ? false : Number.isNaN(x) ? null : x >= bound);
  const measured = kg.measured && kb.measured;
  out.push({ goal: 'knee vs bare', gateway: kneeText(kg), bare: kneeText(kb), sio: kneeText(ks), ratio: ratio(kg.value, kb.value), bound: '≥ 0.8', met: measured ? ge(ratio(kg.value, kb.value), 0.8) : null });
  out.push({ goal: 'knee vs Socket.IO', gateway: kneeText(kg), bare: kneeText(kb), sio: kneeText(ks), ratio: ratio(kg.value, ks.value), bound: '≥ 3', met: kg.measured && ks.measured ? ge(ratio(kg.value, ks.value), 3) : null });
  for (const rate of rates.slice(0, 2)) {
    const g = step('gateway', rate);
    const b = step('bare', rate);
    const s = step('socket.io', rate);
    const cpk = (x: Step | undefined): number => (x ? perK(x.serverCpu + x.redisCpu, x.deliveries) : NaN);
    const x = ratio(cpk(g), cpk(b));
    out.push({ goal: `servers + Redis CPU per 1k deliveries/s at ${k(g?.nominal ?? b?.nominal ?? NaN)}`, gateway: f(cpk(g), 2), bare: f(cpk(b), 2), sio: f(cpk(s), 2), ratio: x, bound: '≤ 1.25', met: le(x, 1.25) });
  }
  {
    // Redis CPU per published message, at the second step (36k deliveries/s in the full run).
    const rate = rates[1] ?? rates[0];
    const us = (x: Step | undefined): number => (x && x.published > 0 ? (x.redisCpu / 100 / x.published) * 1e6 : NaN);
    const g = step('gateway', rate);
    const b = step('bare', rate);
    const x = ratio(us(g), us(b));
    out.push({ goal: `Redis CPU per published message (µs) at ${k(g?.nominal ?? b?.nominal ?? NaN)}`, gateway: f(us(g), 2), bare: f(us(b), 2), sio: f(us(step('socket.io', rate)), 2), ratio: x, bound: '≤ 1.5', met: le(x, 1.5) });
    const p = (t: TargetName): number => step(t, rate)?.p99 ?? NaN;
    const y = ratio(p('gateway'), p('bare'));
    out.push({ goal: `p99 latency (ms) at ${k(g?.nominal ?? b?.nominal ?? NaN)}`, gateway: f(p('gateway'), 2), bare: f(p('bare'), 2), sio: f(p('socket.io'), 2), ratio: y, bound: '≤ 1.25', met: le(y, 1.25) });
  }
  {
    const m = (t: TargetName): Memory | undefined => r.memory.find((x) => x.target === t);
    const g = m('gateway');
    const conns = g?.connections ?? m('bare')?.connections ?? NaN;
    out.push({
      goal: `RSS per idle joined connection (KB), ${int(conns)} on one node`,
      gateway: f(g?.perConnKb ?? NaN, 2),
      bare: f(m('bare')?.perConnKb ?? NaN, 2),
      sio: f(m('socket.io')?.perConnKb ?? NaN, 2),
      ratio: ratio(g?.perConnKb ?? NaN, m('bare')?.perConnKb ?? NaN),
      bound: 'gateway ≤ 3 KB',
      met: g ? le(g.perConnKb, 3) : null,
    });
  }
  {
    const rate = rates[0];
    const growth = (t: TargetName): { one: number; three: number; g: number } => {
      const one = r.oneNode.find((s) => s.target === t);
      const three = step(t, rate);
      const a = one ? perK(one.serverCpu, one.deliveries) : NaN;
      const b = three ? perK(three.serverCpu, three.deliveries) : NaN;
      return { one: a, three: b, g: b / a };
    };
    const g = growth('gateway');
    const b = growth('bare');
    const nodes = r.steps.find((s) => s.target === 'gateway')?.nodes ?? 3;
    out.push({
      goal: `servers' CPU per 1k deliveries/s, 1 → ${nodes} nodes at ${k(step('gateway', rate)?.nominal ?? NaN)}: growth`,
      gateway: `${f(g.one, 2)} → ${f(g.three, 2)} (×${f(g.g, 2)})`,
      bare: `${f(b.one, 2)} → ${f(b.three, 2)} (×${f(b.g, 2)})`,
      sio: '—',
      ratio: g.g / b.g,
      bound: '≤ 1 (no faster than bare)',
      met: le(g.g / b.g, 1),
    });
  }
  return out;
}

function stepsTable(steps: Step[]): string[] {
  const out = [
    '| target | nodes | msgs/s per member | deliveries/s asked | deliveries/s | p50 ms | p99 ms | servers CPU % | Redis CPU % | CPU % per 1k deliveries/s (servers + Redis) | clients CPU % | result |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|',
  ];
  for (const s of steps) {
    const sp = perK(s.serverCpu, s.deliveries);
    const rp = perK(s.redisCpu, s.deliveries);
    out.push(
      `| ${s.target} | ${s.nodes} | ${s.rate} | ${int(s.nominal)} | ${int(s.deliveries)} | ${f(s.p50, 2)} | ${f(s.p99, 2)} | ${f(s.serverCpu, 1)} | ${f(s.redisCpu, 1)} | ${f(sp + rp, 2)} (${f(sp, 2)} + ${f(rp, 2)}) | ${f(s.clientCpu, 0)} | ${s.pass ? 'pass' : `**fail**: ${s.why.join(', ')}`} |`,
    );
  }
  return out;
}

export function report(r: Results, rates: number[]): { markdown: string; allMet: boolean; anyGoal: boolean } {
  const gs = goals(r, rates);
  const top = rates[rates.length - 1] ?? 0;
  const lines: string[] = [];
  lines.push(`Run ${r.startedAt.toISOString().replace(/\.\d+Z$/, 'Z')}, \`${r.command}\`${r.quick ? ' (quick mode: scaled down, not comparable with the full run)' : ''}.`);
  lines.push(`Machine: ${r.machine}.`);
  lines.push(`Load: ${r.params}.`);
  lines.push('');
  lines.push(...stepsTable(r.steps));
  if (r.oneNode.length > 0) lines.push(...stepsTable(r.oneNode).slice(2).map((l) => l));
  lines.push('');
  const kn = (t: TargetName): string => {
    const x = knee(r.steps, t, top);
    return !x.measured ? 'not measured' : x.value === 0 ? 'none (its first step failed)' : `${int(x.value)} deliveries/s${x.top ? ' (the schedule\'s top step: at least this)' : ''}`;
  };
  lines.push(`Knee (highest step with p99 ≤ 50 ms and nothing lost, duplicated or out of order): bare ${kn('bare')}; gateway ${kn('gateway')}; Socket.IO ${kn('socket.io')}.`);
  lines.push('');
  if (r.memory.length > 0) {
    lines.push('| memory: target, one node | joined idle connections | RSS at start (after idling) MB | right after the joins MB | after idling MB | peak MB | RSS per connection KB (after idling) | connect + join s |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const m of r.memory)
      lines.push(
        `| ${m.target}${m.note ? ` (${m.note})` : ''} | ${int(m.connections)} | ${f(m.baselineMb)} | ${f(m.joinedMb)} | ${f(m.afterMb)} (${m.idleSeconds} s) | ${f(m.peakMb)} | ${f(m.perConnKb, 2)} | ${f(m.joinSeconds, 1)} |`,
      );
    lines.push('');
  }
  lines.push('| goal (issue 11) | gateway | bare | Socket.IO | ratio gateway / bare (knee: / the peer) | bound | met |');
  lines.push('|---|---:|---:|---:|---:|---|---|');
  for (const g of gs) lines.push(`| ${g.goal} | ${g.gateway} | ${g.bare} | ${g.sio} | ${g.ratio === Infinity ? '∞' : f(g.ratio, 2)} | ${g.bound} | ${g.met === null ? 'not measured' : g.met ? 'met' : '**not met**'} |`);
  if (r.broken.length > 0) {
    lines.push('');
    for (const b of r.broken) lines.push(`- NOT MEASURED: ${b}`);
  }
  const notes = r.steps.concat(r.oneNode).filter((s) => s.otherPct >= 30);
  if (notes.length > 0) {
    lines.push('');
    lines.push(`Other load on the host during: ${notes.map((s) => `${s.target} ×${s.nodes} at ${s.rate}/s (${f(s.otherPct, 0)}% of a core)`).join(', ')}: those rows are disturbed.`);
  }
  return { markdown: lines.join('\n'), allMet: gs.every((g) => g.met === true), anyGoal: gs.some((g) => g.met !== null) };
}

export const BEGIN = '<!-- bench-compare:begin -->';
export const END = '<!-- bench-compare:end -->';

/** Replace what lies between the markers in `file` (the previous run) with `markdown`. */
export function writeDocs(file: string, markdown: string): void {
  const doc = readFileSync(file, 'utf8');
  const b = doc.indexOf(BEGIN);
  const e = doc.indexOf(END);
  if (b < 0 || e < b) throw new Error(`${file} has no ${BEGIN} … ${END} section to write into`);
  writeFileSync(file, `${doc.slice(0, b + BEGIN.length)}\n${markdown}\n${doc.slice(e)}`);
}
