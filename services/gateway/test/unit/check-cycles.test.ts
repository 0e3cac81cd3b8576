// scripts/check-cycles.mjs (run by `make lint`): it finds a cycle, type-only imports included, and passes a tree without one.
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

const run = (dir: string): { status: number | null; out: string } => {
  const r = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8', timeout: 10_000 });
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
