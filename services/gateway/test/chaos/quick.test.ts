// The quick chaos subset inside `make test` (CHAOS_QUICK): a rolling SIGTERM restart of all
// three gateways and a kill -9 of one, at small load (20 groups × 5 members, 1 msg/s each),
// through HAProxy with AOF Redis. Each must end with nothing lost, duplicated or out of order
// for any member (checked seq by seq against the stored history), and the rolling restart
// with 1012 closes only. The full suite is `make chaos` (docs/RELIABILITY.md).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { plan } from './plan.js';
import { runScenario } from './scenarios.js';

const haveHaproxy = spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
if (!haveHaproxy && process.env['CI']) throw new Error('haproxy is required in CI (.ci/run installs it)');

for (const p of plan(true)) {
  test(`chaos (quick): ${p.scenario.name}`, { skip: !haveHaproxy && 'haproxy not installed', timeout: 110_000 }, async () => {
    const log: string[] = [];
    const row = await runScenario(p.scenario, p.load, (l) => log.push(l));
    assert.ok(row.result.acked > 0, 'the load was acked');
    assert.ok(row.result.delivered > 0, 'messages were delivered');
    assert.ok(row.stats.resumes > 0, 'the fault made clients resume');
    assert.deepEqual(row.violations, [], log.join('\n'));
  });
}
