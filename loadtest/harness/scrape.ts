// A gateway's Prometheus /metrics, summed per metric name over all label sets.

export type Scrape = Map<string, number>;

export async function scrape(metricsPort: number): Promise<Scrape> {
  const out: Scrape = new Map();
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    for (const line of (await res.text()).split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m) out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + Number(m[2]));
    }
  } catch {
    // A gateway that cannot answer /metrics shows up as missing numbers, not a failed run.
  }
  return out;
}

/** after − before for a counter summed over every gateway. */
export function delta(before: Scrape[], after: Scrape[], name: string): number {
  let d = 0;
  after.forEach((a, i) => (d += (a.get(name) ?? 0) - (before[i]?.get(name) ?? 0)));
  return d;
}

/** The largest value of a gauge across gateways. */
export function maxOf(scrapes: Scrape[], name: string): number {
  return Math.max(...scrapes.map((s) => s.get(name) ?? NaN));
}
