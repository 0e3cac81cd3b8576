#!/usr/bin/env node
// Render deploy/grafana/chat-gateway.json from a live Prometheus as an SVG
// picture (no Grafana needed): the same panels, layout and queries, with the
// variables filled in (every node; $__rate_interval = 4 × the step).
//   node scripts/render-dashboard.mjs [--prometheus http://127.0.0.1:9090] [--minutes 10] [--out docs/dashboard.svg]
//   rsvg-convert -w 1440 docs/dashboard.svg -o docs/dashboard.png     (librsvg2-bin)
// Used for the picture in docs/OPERATIONS.md (from `make cluster` under k6 load); not part of any test.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const prom = arg('prometheus', 'http://127.0.0.1:9090');
const minutes = Number(arg('minutes', '10'));
const out = resolve(arg('out', resolve(root, 'docs/dashboard.svg')));
const dash = JSON.parse(readFileSync(resolve(root, 'deploy/grafana/chat-gateway.json'), 'utf8'));

const end = Math.floor(Date.now() / 1000);
const start = end - minutes * 60;
const step = Math.max(5, Math.round((minutes * 60) / 120));
const fill = (expr) => expr.replaceAll('$__rate_interval', `${4 * step}s`).replaceAll('$node', '.*');

async function range(expr) {
  const u = `${prom}/api/v1/query_range?query=${encodeURIComponent(fill(expr))}&start=${start}&end=${end}&step=${step}`;
  const body = await (await fetch(u)).json();
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

const W = 1440;
const COL = W / 24;
const ROWH = 34;
const PAL = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a', '#c4162a', '#1f60c4'];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const legend = (fmt, metric) => (fmt || '{{__name__}}').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? '');

function human(v, unit) {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (unit === 'bytes') {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    let x = v;
    while (Math.abs(x) >= 1024 && i < u.length - 1) (x /= 1024), i++;
    return `${x.toFixed(x < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
  }
  if (unit === 's') {
    if (a === 0) return '0 s';
    if (a < 1e-3) return `${(v * 1e6).toFixed(0)} µs`;
    if (a < 1) return `${(v * 1e3).toFixed(a < 0.01 ? 2 : 1)} ms`;
    return `${v.toFixed(2)} s`;
  }
  const s = a >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : a >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : a >= 10 || a === 0 ? v.toFixed(0) : v.toFixed(2);
  return unit === 'ops' ? `${s}/s` : s;
}

const parts = [];
let height = 0;
for (const p of dash.panels) {
  const g = p.gridPos;
  const x = g.x * COL + 4;
  const y = g.y * ROWH + 4;
  const w = g.w * COL - 8;
  const h = g.h * ROWH - 8;
  height = Math.max(height, y + h + 8);
  if (p.type === 'row') {
    parts.push(`<text x="${x + 4}" y="${y + 22}" class="row">${esc(p.title)}</text>`);
    continue;
  }
  parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="3" class="panel"/>`);
  parts.push(`<text x="${x + 10}" y="${y + 20}" class="title">${esc(p.title)}</text>`);
  const unit = p.fieldConfig?.defaults?.unit ?? 'short';
  const series = [];
  for (const t of p.targets) for (const r of await range(t.expr)) series.push({ name: legend(t.legendFormat, r.metric), pts: r.values.map(([ts, v]) => [ts, Number(v)]).filter(([, v]) => Number.isFinite(v)) });
  if (p.type === 'stat') {
    series.forEach((s, i) => {
      const last = s.pts.at(-1)?.[1];
      const cy = y + 40 + i * ((h - 40) / Math.max(1, series.length));
      parts.push(`<text x="${x + 12}" y="${cy + 18}" class="statname">${esc(s.name)}</text>`);
      parts.push(`<text x="${x + w - 12}" y="${cy + 44}" class="stat" text-anchor="end" fill="${i === 0 ? '#73bf69' : '#f2cc0c'}">${esc(human(last, unit))}</text>`);
    });
    continue;
  }
  // Plot area, y from 0 (or the minimum, if below 0) to the maximum.
  const px = x + 56;
  const py = y + 30;
  const pw = w - 66;
  const legendRows = Math.min(3, Math.ceil(series.length / 3));
  const ph = h - 30 - 22 - legendRows * 15;
  const all = series.flatMap((s) => s.pts.map(([, v]) => v));
  const top = Math.max(p.fieldConfig?.defaults?.max ?? 0, ...all);
  const ymax = top > 0 ? top : 1; // all zero: a 0…1 axis
  const ymin = Math.min(0, ...all);
  for (let k = 0; k <= 3; k++) {
    const yy = py + ph - (k / 3) * ph;
    parts.push(`<line x1="${px}" y1="${yy}" x2="${px + pw}" y2="${yy}" class="grid"/>`);
    parts.push(`<text x="${px - 6}" y="${yy + 4}" class="axis" text-anchor="end">${esc(human(ymin + (k / 3) * (ymax - ymin), unit))}</text>`);
  }
  for (let k = 0; k <= 4; k++) {
    const ts = start + (k / 4) * (end - start);
    const t = new Date(ts * 1000).toISOString().slice(11, 16);
    parts.push(`<text x="${px + (k / 4) * pw}" y="${py + ph + 14}" class="axis" text-anchor="middle">${t}</text>`);
  }
  if (series.length === 0) parts.push(`<text x="${x + w / 2}" y="${py + ph / 2}" class="nodata" text-anchor="middle">No data</text>`);
  series.forEach((s, i) => {
    const col = PAL[i % PAL.length];
    const d = s.pts
      .map(([ts, v], j) => `${j === 0 ? 'M' : 'L'}${(px + ((ts - start) / (end - start)) * pw).toFixed(1)},${(py + ph - ((v - ymin) / (ymax - ymin)) * ph).toFixed(1)}`)
      .join('');
    parts.push(`<path d="${d}" stroke="${col}" class="line"/>`);
    if (i < 9) {
      const lx = x + 10 + (i % 3) * ((w - 20) / 3);
      const ly = py + ph + 30 + Math.floor(i / 3) * 15;
      parts.push(`<rect x="${lx}" y="${ly - 8}" width="10" height="3" fill="${col}"/><text x="${lx + 14}" y="${ly - 3}" class="legend">${esc(s.name.slice(0, 34))}</text>`);
    }
  });
}

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height + 36}" viewBox="0 0 ${W} ${height + 36}">
<style>
  .bg{fill:#111217} .panel{fill:#181b1f;stroke:#2c3235} .title{fill:#d8d9da;font:600 13px sans-serif}
  .row{fill:#d8d9da;font:600 15px sans-serif} .axis{fill:#8e8e8e;font:10px sans-serif} .legend{fill:#ccccdc;font:11px sans-serif}
  .grid{stroke:#2c3235;stroke-width:1} .line{fill:none;stroke-width:1.5} .nodata{fill:#8e8e8e;font:13px sans-serif}
  .stat{font:600 30px sans-serif} .statname{fill:#ccccdc;font:12px sans-serif} .head{fill:#d8d9da;font:600 16px sans-serif}
</style>
<rect width="100%" height="100%" class="bg"/>
<text x="10" y="24" class="head">${esc(dash.title)} — ${new Date(start * 1000).toISOString().slice(0, 16).replace('T', ' ')} to ${new Date(end * 1000).toISOString().slice(11, 16)} UTC, from a live Prometheus</text>
<g transform="translate(0,36)">
${parts.join('\n')}
</g>
</svg>
`;
writeFileSync(out, svg);
console.log(`render-dashboard: ${dash.panels.filter((p) => p.type !== 'row').length} panels → ${out}`);
