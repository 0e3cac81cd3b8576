// CPU time and resident memory of a process, read from Linux /proc.
import { readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ: 100 on every Linux we run on). */
const HZ = 100;

/** User + system CPU seconds the process (all its threads) has used so far; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(rest[11]) + Number(rest[12])) / HZ;
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes; NaN once the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU use of a set of processes between two instants, as % of one core (200% = both cores here). */
export class CpuWindow {
  private readonly startCpu: number[];
  private readonly startAt: number;

  constructor(private readonly pids: readonly number[]) {
    this.startCpu = pids.map(cpuSeconds);
    this.startAt = performance.now();
  }

  /** Per process, in the order given. */
  percents(): number[] {
    const secs = (performance.now() - this.startAt) / 1000;
    return this.pids.map((pid, i) => ((cpuSeconds(pid) - (this.startCpu[i] as number)) / secs) * 100);
  }
}

/** Samples RSS every `everyMs` while running, keeping the peak per process. */
export class RssSampler {
  readonly peak: number[];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pids: readonly number[],
    everyMs = 250,
  ) {
    this.peak = pids.map(rssBytes);
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    this.pids.forEach((pid, i) => {
      const r = rssBytes(pid);
      if (r > (this.peak[i] as number)) this.peak[i] = r;
    });
  }

  /** Stop sampling; the current RSS per process. */
  stop(): number[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this.pids.map(rssBytes);
  }
}

/** Whole-host CPU counters from /proc/stat: busy and total jiffies over all cores, and steal. */
function hostTicks(): { busy: number; total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal, steal };
}

/** How busy the whole machine was between two instants: % of all cores (100 = every core busy), and steal. */
export class HostWindow {
  private readonly start = hostTicks();

  read(): { busyPct: number; stealPct: number } {
    const end = hostTicks();
    const total = end.total - this.start.total;
    if (total <= 0) return { busyPct: NaN, stealPct: NaN };
    return { busyPct: ((end.busy - this.start.busy) / total) * 100, stealPct: ((end.steal - this.start.steal) / total) * 100 };
  }
}
