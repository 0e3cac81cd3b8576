// The bare-machine path of `make test` (scripts/check-deps.sh), with a PATH that
// lacks every program the tests drive: as root with apt-get it installs (here a
// stub apt-get that records its arguments), without root or apt it stops at
// once with the exact command. Each run has a deadline: it must never hang.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/gateway.js';
import { REPO } from '../helpers/haproxy.js';

const SCRIPT = resolve(REPO, 'scripts/check-deps.sh');
const PROGRAMS = ['redis-server', 'redis-cli', 'haproxy', 'promtool', 'prometheus', 'openssl', 'ip', 'chromium'];
const PACKAGES = 'redis-server redis-tools haproxy prometheus openssl iproute2 chromium';

function stub(dir: string, name: string, body: string): void {
  const f = join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
}

/** A PATH of one folder holding only the stubs we put there; `id -u` answers `uid`. */
function bin(uid: number): string {
  const dir = tempDir('chat-deps-');
  stub(dir, 'id', `echo ${uid}`);
  return dir;
}

function check(dir: string): { status: number | null; out: string; ms: number } {
  const t0 = Date.now();
  // POLICY_RC_D: the script's "do not start services" file goes in the test's folder, not the host's /usr/sbin.
  const r = spawnSync('/bin/bash', [SCRIPT], { env: { PATH: dir, POLICY_RC_D: join(dir, 'policy-rc.d') }, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.error, undefined, `check-deps did not finish: ${String(r.error)}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

test('every program present: silent success', () => {
  const dir = bin(1000);
  for (const p of PROGRAMS) stub(dir, p, 'exit 0');
  const r = check(dir);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.out, '');
});

test('not root: stops at once with the exact sudo apt-get command, installs nothing', () => {
  const dir = bin(1000);
  stub(dir, 'apt-get', `echo "$@" >> ${dir}/apt.log; exit 0`);
  stub(dir, 'haproxy', 'exit 0');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /missing: redis-server redis-cli promtool prometheus openssl ip chromium\n/);
  assert.ok(r.out.includes('sudo apt-get update && sudo apt-get install -y --no-install-recommends redis-server redis-tools prometheus openssl iproute2 chromium'), r.out);
  assert.ok(!existsSync(join(dir, 'apt.log')), 'apt-get was not run');
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
});

test('no apt-get (another distribution): stops with the package names and the Debian command', () => {
  const r = check(bin(0));
  assert.equal(r.status, 1, r.out);
  assert.ok(r.out.includes(`Debian/Ubuntu names: ${PACKAGES}`), r.out);
  assert.ok(r.out.includes(`apt-get install -y --no-install-recommends ${PACKAGES}`), r.out);
});

test('root with apt-get: says what it installs, installs it non-interactively, then succeeds', () => {
  const dir = bin(0);
  // The stub "installs" by creating every program, as the real packages would.
  const create = PROGRAMS.map((p) => `printf '#!/bin/sh\\n' > ${dir}/${p}; /bin/chmod +x ${dir}/${p}`).join('; ');
  // It also notes whether the packages' services were told not to start (policy-rc.d answering 101).
  const policy = `[ -x "$POLICY_RC_D" ] && { "$POLICY_RC_D"; echo "policy $?" >> ${dir}/apt.log; }`;
  stub(dir, 'apt-get', `echo "$DEBIAN_FRONTEND $@" >> ${dir}/apt.log\ncase "$1" in install) ${policy}; ${create};; esac`);
  const r = check(dir);
  assert.equal(r.status, 0, r.out);
  assert.ok(r.out.includes(`installing ${PACKAGES} with apt-get`), r.out);
  assert.ok(r.out.includes(`installed ${PACKAGES}`), r.out);
  const log = readFileSync(join(dir, 'apt.log'), 'utf8').trim().split('\n');
  assert.deepEqual(log, ['noninteractive update -qq', `noninteractive install -y -qq --no-install-recommends ${PACKAGES}`, 'policy 101']);
  assert.ok(!existsSync(join(dir, 'policy-rc.d')), 'the policy is removed afterwards');
});

test('root, apt-get fails (offline): stops with the command to run, not a test timeout', () => {
  const dir = bin(0);
  stub(dir, 'apt-get', 'echo "E: could not resolve deb.debian.org" >&2; exit 100');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.ok(r.out.includes(`apt-get update && apt-get install -y --no-install-recommends ${PACKAGES}`), r.out);
});

test('the Makefile runs the check before `make test` builds or tests anything', () => {
  const mk = readFileSync(resolve(REPO, 'Makefile'), 'utf8');
  assert.match(mk, /^test: deps build$/m);
  assert.match(mk, /^deps:\n\tbash scripts\/check-deps\.sh$/m);
});
