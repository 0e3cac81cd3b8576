// scripts/check-cycles.mjs (run by `make lint`): it finds a cycle, type-only imports included, and passes a tree without one;
// with --layers it finds an import from a layer above or from a peer layer, and a module in no layer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/gateway.js';
import { REPO } from '../helpers/haproxy.js';

const SCRIPT = resolve(REPO, 'scripts/check-cycles.mjs');

function tree(files: Record<string, string>): string {
  const dir = tempDir('chat-cycles-');
  for (const [name, src] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), src);
  }
  return dir;
}

const run = (dir: string, ...pre: string[]): { status: number | null; out: string } => {
  const r = spawnSync(process.execPath, [SCRIPT, ...pre, dir], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

test('check-cycles: a type-only cycle through a subfolder fails; one-way imports pass', () => {
  const cyclic = tree({
    'a.ts': "import { b } from './sub/b.js';\nexport const a = b;\n",
    'sub/b.ts': "import type { A } from '../c.js';\nexport const b = 1 as unknown as A;\n",
    'c.ts': "import { a } from './a.js';\nexport type A = typeof a;\n",
  });
  const bad = run(cyclic);
  assert.equal(bad.status, 1, bad.out);
  assert.match(bad.out, /import cycle: .*a\.ts → .*b\.ts → .*c\.ts → .*a\.ts/);
  const oneWay = tree({ 'a.ts': "import { b } from './b.js';\nexport const a = b;\n", 'b.ts': 'export const b = 1;\n' });
  const good = run(oneWay);
  assert.equal(good.status, 0, good.out);
  assert.match(good.out, /2 modules, no import cycle/);
});

test('check-cycles --layers: upward and peer imports fail, downward pass, and every module must be placed', () => {
  const layered = (files: Record<string, string>): { status: number | null; out: string } => {
    const dir = tree(files);
    const spec = join(dir, '..', `${dir.split('/').pop()}-layers.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        [dir]: [
          { layer: 'base', rank: 0, paths: ['base.ts'] },
          { layer: 'node', rank: 1, paths: ['node.ts'] },
          { layer: 'transport', rank: 1, paths: ['transport/'] },
        ],
      }),
    );
    return run(dir, '--layers', spec);
  };
  const good = layered({
    'base.ts': 'export const b = 1;\n',
    'node.ts': "import { b } from './base.js';\nexport const n = b;\n",
    'transport/ws.ts': "import { b } from '../base.js';\nimport { c } from './core.js';\nexport const w = b + c;\n",
    'transport/core.ts': 'export const c = 1;\n',
  });
  assert.equal(good.status, 0, good.out);
  assert.match(good.out, /4 in layers, none imports upward/);
  const bad = layered({
    'base.ts': "import type { N } from './node.js';\nexport const b = 1 as unknown as N;\n",
    'node.ts': 'export type N = number;\n',
    'transport/ws.ts': "import type { N } from '../node.js';\nexport const w = 1 as unknown as N;\n",
    'stray.ts': 'export const s = 1;\n',
  });
  assert.equal(bad.status, 1, bad.out);
  assert.match(bad.out, /layer violation: .*base\.ts \(base\) imports .*node\.ts \(node, a layer above\)/);
  assert.match(bad.out, /layer violation: .*transport\/ws\.ts \(transport\) imports .*node\.ts \(node, a peer layer\)/);
  assert.match(bad.out, /stray\.ts: in no layer/);
});
