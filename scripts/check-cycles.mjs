#!/usr/bin/env node
// Fails (exit 1) when the TypeScript modules under the given folders import each other in a cycle,
// type-only imports included: layers point one way (docs/ARCHITECTURE.md). `make lint` runs it.
//   node scripts/check-cycles.mjs services/gateway/src services/client/src
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const roots = process.argv.slice(2).map((r) => resolve(r));
if (roots.length === 0) {
  console.error('usage: check-cycles.mjs DIR...');
  process.exit(2);
}

const files = [];
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
  }
};
roots.forEach(walk);

// Relative imports and re-exports: `from './x.js'`, `import('./x.js')`.
const IMPORT = /(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
const edges = new Map();
for (const f of files) {
  const src = readFileSync(f, 'utf8');
  const deps = new Set();
  for (const m of src.matchAll(IMPORT)) deps.add(resolve(dirname(f), m[1].replace(/\.js$/, '.ts')));
  edges.set(f, [...deps].filter((d) => edges.has(d) || files.includes(d)));
}

// Depth-first search for back edges; report each cycle once.
const state = new Map(); // 1 = on the stack, 2 = done
const stack = [];
const cycles = [];
const visit = (f) => {
  state.set(f, 1);
  stack.push(f);
  for (const d of edges.get(f) ?? []) {
    if (state.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d]);
    else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 2);
};
for (const f of files) if (!state.has(f)) visit(f);

const rel = (f) => relative(process.cwd(), f);
if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.map(rel).join(' → ')}`);
  process.exit(1);
}
console.log(`check-cycles: ${files.length} modules, no import cycle`);
