#!/usr/bin/env node
// Fails (exit 1) when the TypeScript modules under the given folders import each other in a cycle,
// type-only imports included, or (with --layers FILE) when a module imports from a layer above its
// own or from a peer layer: layers point one way (docs/ARCHITECTURE.md). `make lint` runs it.
//   node scripts/check-cycles.mjs [--layers scripts/layers.json] services/gateway/src services/client/src
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const args = process.argv.slice(2);
let layersFile = null;
if (args[0] === '--layers') {
  layersFile = args[1];
  args.splice(0, 2);
}
const roots = args.map((r) => resolve(r));
if (roots.length === 0 || (layersFile !== null && !layersFile)) {
  console.error('usage: check-cycles.mjs [--layers FILE] DIR...');
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
for (const c of cycles) console.error(`import cycle: ${c.map(rel).join(' → ')}`);

// Layers: { "<root folder, from the working directory>": [{ layer, rank, paths }] }.
const problems = [];
let layered = 0;
if (layersFile) {
  const spec = JSON.parse(readFileSync(layersFile, 'utf8'));
  for (const [root, layers] of Object.entries(spec)) {
    if (root.startsWith('//')) continue;
    const dir = resolve(root);
    // The most specific path wins (`engine/model.ts` over `engine/`).
    const entries = layers.flatMap((l) => l.paths.map((p) => ({ ...l, path: p }))).sort((a, b) => b.path.length - a.path.length);
    const layerOf = (f) => {
      const r = relative(dir, f).split(sep).join('/');
      return entries.find((e) => (e.path.endsWith('/') ? r.startsWith(e.path) : r === e.path)) ?? null;
    };
    for (const f of files.filter((x) => x.startsWith(dir + sep))) {
      const mine = layerOf(f);
      if (!mine) {
        problems.push(`${rel(f)}: in no layer of ${layersFile}`);
        continue;
      }
      layered++;
      for (const d of edges.get(f) ?? []) {
        const theirs = layerOf(d);
        if (!theirs || theirs.layer === mine.layer || theirs.rank < mine.rank) continue;
        const how = theirs.rank === mine.rank ? 'a peer layer' : 'a layer above';
        problems.push(`layer violation: ${rel(f)} (${mine.layer}) imports ${rel(d)} (${theirs.layer}, ${how})`);
      }
    }
  }
}
for (const p of problems) console.error(p);
if (cycles.length > 0 || problems.length > 0) process.exit(1);
console.log(`check-cycles: ${files.length} modules, no import cycle${layersFile ? `; ${layered} in layers, none imports upward` : ''}`);
