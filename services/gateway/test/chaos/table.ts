// The chaos table (docs/RELIABILITY.md): one row per scenario.
import { duplicated, lost } from './check.js';
import { fmtCodes, mb, type Row } from './scenarios.js';

const HEADER = [
  'scenario',
  'load',
  'fault',
  'sent',
  'acked',
  'delivered',
  'lost',
  'duplicated',
  'max recovery',
  'client-visible errors',
  'peak RSS (MB)',
  'result',
];

export function loadText(r: Row): string {
  const n = r.load.groups * r.load.members;
  return `${r.load.groups}×${r.load.members} = ${n} clients, ${r.load.rate} msg/s each (${Math.round(n * r.load.rate)} msg/s)`;
}

function errorsText(r: Row): string {
  const parts: string[] = [];
  const closes = fmtCodes(r.stats.closes);
  if (closes) parts.push(`closes ${closes}`);
  const errors = fmtCodes(r.stats.errors);
  if (errors) parts.push(`errors ${errors}`);
  const failed = fmtCodes(r.stats.connectFailures);
  if (failed) parts.push(`failed reconnects ${failed}`);
  if (r.stats.gaps > 0) parts.push(`gaps ${r.stats.gaps}`);
  if (r.stats.dupDropped > 0) parts.push(`${r.stats.dupDropped} replayed twice (dropped by the client)`);
  if (r.stats.foreign > 0) parts.push(`${r.stats.foreign} foreign texts received`);
  if (r.stats.resends > 0) parts.push(`${r.stats.resends} resends`);
  return parts.join('; ') || 'none';
}

function lostText(r: Row): string {
  const x = r.result;
  const n = lost(x);
  if (n === 0 && x.mismatched === 0 && x.phantom === 0) return '0';
  const parts = [`${x.ackedLost} acked`, `${x.missing} deliveries`];
  if (x.mismatched > 0) parts.push(`${x.mismatched} seq reused`);
  if (x.phantom > 0) parts.push(`${x.phantom} delivered then gone`);
  return parts.join(', ');
}

export function table(rows: Row[]): string {
  const lines = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const x = r.result;
    lines.push(
      `| ${[
        r.scenario,
        loadText(r),
        r.fault,
        x.sent,
        x.acked,
        x.delivered,
        lostText(r),
        duplicated(x),
        `${(r.maxRecoveryMs / 1000).toFixed(2)} s`,
        errorsText(r),
        r.peakRssBytes.map(mb).join(' / '),
        r.violations.length === 0 ? 'pass' : `FAIL: ${r.violations.join('; ')}`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

export function notes(rows: Row[]): string {
  return rows
    .map(
      (r) =>
        `- ${r.scenario} (${r.seconds.toFixed(0)} s): steady before the fault: ack p50 ${r.steadyAck.p50.toFixed(1)} ms, p99 ${r.steadyAck.p99.toFixed(1)} ms, ` +
        `redis-server ${r.redisCpuSeconds.toFixed(2)} CPU s over the 5 s window; ${r.notes.join('; ') || '-'}`,
    )
    .join('\n');
}
