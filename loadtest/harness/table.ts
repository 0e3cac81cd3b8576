// The results table, as plain aligned text (and as Markdown for the docs).
import type { Row } from './scenarios.js';

const num = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '—');

const HEAD = ['scenario', 'params', 'msgs/s', 'p50 ms', 'p95 ms', 'p99 ms', 'gw CPU %', 'gw RSS MB', 'RSS/conn KB', 'client CPU %', 'limit'];

function cells(r: Row): string[] {
  return [r.scenario, r.params, r.rate, num(r.p50, 2), num(r.p95, 2), num(r.p99, 2), num(r.gatewayCpu, 0), num(r.gatewayRssMb, 0), num(r.rssPerConnKb, 1), num(r.clientCpu, 0), r.limit];
}

export function textTable(rows: Row[]): string {
  const body = rows.map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9]);
  const line = (cs: string[]): string => cs.map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  const out = [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  out.push('', 'notes:');
  rows.forEach((r) => {
    if (r.notes) out.push(`  ${r.scenario}: ${r.notes}`);
  });
  return out.join('\n');
}

export function markdownTable(rows: Row[]): string {
  const out = [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i >= 2 && i <= 9 ? '---:' : '---')).join('|')}|`];
  for (const r of rows) out.push(`| ${cells(r).join(' | ')} |`);
  return out.join('\n');
}
