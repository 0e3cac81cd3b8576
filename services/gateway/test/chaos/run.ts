// make chaos: every scenario in turn, the table, and exit 1 on anything the stated
// guarantees forbid (docs/RELIABILITY.md). CHAOS_QUICK=1 (or --quick): the small subset
// that `make test` runs too (a gateway kill and a rolling restart at small load).
//   node dist/services/gateway/test/chaos/run.js [--quick] [--only kill,rolling,...] [--out FILE]
import { writeFileSync } from 'node:fs';
import { plan, type Planned } from './plan.js';
import { runScenario, type Row } from './scenarios.js';
import { notes, table } from './table.js';

/** The whole suite's bound (the issue: ≤ 10 minutes in all). */
const DEADLINE_MS = 10 * 60 * 1000;

function args(): { quick: boolean; only: string[] | null; out: string | null } {
  const a = process.argv.slice(2);
  const val = (k: string): string | null => {
    const i = a.indexOf(k);
    return i >= 0 ? (a[i + 1] ?? null) : null;
  };
  return {
    quick: a.includes('--quick') || process.env['CHAOS_QUICK'] === '1',
    only: val('--only')?.split(',') ?? null,
    out: val('--out'),
  };
}

export async function runAll(list: Planned[], log: (l: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  for (const p of list) {
    try {
      rows.push(await runScenario(p.scenario, p.load, log));
    } catch (e) {
      log(`[${p.scenario.name}] ERROR: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      rows.push({
        scenario: p.scenario.name,
        load: p.load,
        fault: p.scenario.fault,
        result: { sent: 0, acked: 0, stored: 0, delivered: 0, owed: 0, missing: 0, ackedLost: 0, dupStored: 0, dupDelivered: 0, outOfOrder: 0, mismatched: 0, phantom: 0, unacked: 0, samples: [] },
        stats: { members: 0, connected: 0, pending: 0, closes: {}, errors: {}, connectFailures: {}, resumes: 0, maxRecoveryMs: 0, lastBackAt: 0, down: 0, sent: 0, acked: 0, gaps: 0, dupDropped: 0, resends: 0, foreign: 0, ackLatency: [] },
        maxRecoveryMs: 0,
        steadyAck: { p50: NaN, p99: NaN },
        redisCpuSeconds: 0,
        peakRssBytes: [],
        unackedAtEnd: 0,
        behindAtEnd: 0,
        notes: [],
        violations: [`did not complete: ${e instanceof Error ? e.message : String(e)}`],
        seconds: 0,
      });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const { quick, only, out } = args();
  const list = plan(quick).filter((p) => only === null || only.includes(p.key));
  const deadline = setTimeout(() => {
    process.stderr.write(`chaos: the ${DEADLINE_MS / 60000}-minute bound passed: stopping\n`);
    process.exit(2); // the exit handlers kill every process the run started, by PID
  }, DEADLINE_MS);
  deadline.unref();
  const t0 = Date.now();
  const rows = await runAll(list, (l) => process.stdout.write(`${l}\n`));
  const md = `${table(rows)}\n\n${notes(rows)}\n`;
  process.stdout.write(`\n${md}\nchaos: ${rows.length} scenario(s) in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  if (out) writeFileSync(out, md);
  const failed = rows.filter((r) => r.violations.length > 0);
  if (failed.length > 0) {
    process.stdout.write(`chaos: FAILED: ${failed.map((r) => r.scenario).join(', ')}\n`);
    process.exit(1);
  }
  process.exit(0);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  void main().catch((e: unknown) => {
    process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
