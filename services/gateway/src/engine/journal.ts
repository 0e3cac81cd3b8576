// Append-only journal for the embedded engine: one JSON record per line.
// Writes are group-committed (everything queued while a write is in flight
// goes out in the next single write) and acknowledged only once written, so a
// caller never acks what is not on disk (page cache: survives kill -9, not a
// power cut). On open, a torn last record is dropped and the file truncated
// back to the last whole record. The owner can ask for a compaction: the next
// flush writes a snapshot instead of the queue and swaps it in by rename.
import { mkdir, open, readFile, rename, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export interface ReplayResult<R> {
  records: R[];
  /** Bytes of an unreadable tail that were dropped. */
  droppedBytes: number;
}

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

export class Journal<R> {
  private fh: FileHandle | null = null;
  private queue: string[] = [];
  private waiters: Waiter[] = [];
  private writing = false;
  /** Bytes of whole records in the file: a failed write is cut back to this, never left half-written mid-file. */
  private size = 0;
  /** The latest flush loop, for close() to wait on. */
  private flushing: Promise<void> = Promise.resolve();
  private snapshot: (() => R[]) | null = null;
  /** Callers waiting for the pending snapshot to be written. */
  private snapshotWaiters: Waiter[] = [];
  /** The file's size right after the last compaction (0 before any). */
  private compactedSize = 0;
  readonly path: string;

  constructor(
    readonly dir: string,
    file = 'journal.ndjson',
  ) {
    this.path = join(dir, file);
  }

  /** Read every whole record; drop (and truncate away) a torn or garbled tail. */
  async replay(parse: (v: unknown) => R | null): Promise<ReplayResult<R>> {
    await mkdir(this.dir, { recursive: true });
    let buf: Buffer;
    try {
      buf = await readFile(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') buf = Buffer.alloc(0);
      else throw e;
    }
    const records: R[] = [];
    let good = 0;
    let pos = 0;
    while (pos < buf.length) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) break; // no newline: a torn last record
      const rec = parseLine(buf.subarray(pos, nl), parse);
      if (rec === undefined) break; // garbled: stop here, keep what came before
      if (rec !== null) records.push(rec);
      pos = nl + 1;
      good = pos;
    }
    const droppedBytes = buf.length - good;
    if (droppedBytes > 0) await truncate(this.path, good);
    this.size = good;
    this.fh = await open(this.path, 'a');
    return { records, droppedBytes };
  }

  append(record: R): Promise<void> {
    this.queue.push(JSON.stringify(record) + '\n');
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * Replace the file with `snapshot()` at the next flush (it must include everything queued so far).
   * Resolves once that snapshot is on disk; a caller need not wait (a failure is then only dropped).
   */
  compact(snapshot: () => R[]): Promise<void> {
    this.snapshot = snapshot;
    const done = new Promise<void>((resolve, reject) => this.snapshotWaiters.push({ resolve, reject }));
    done.catch(() => undefined);
    this.kick();
    return done;
  }

  /** Bytes of whole records in the file now. */
  get bytes(): number {
    return this.size;
  }

  /** The file's size right after the last compaction: with `bytes`, how much it grew since. */
  get bytesAtCompaction(): number {
    return this.compactedSize;
  }

  private kick(): void {
    if (!this.writing) this.flushing = this.flush();
  }

  private async flush(): Promise<void> {
    this.writing = true;
    // `writing` is cleared right after the last look at the queue, with no await in between.
    try {
      while (this.queue.length > 0 || this.snapshot) {
        const snap = this.snapshot;
        // Before a snapshot, let callers whose writes were just acknowledged apply them
        // to their state (their continuations are microtasks), or the snapshot would miss them.
        if (snap) await new Promise<void>((r) => setImmediate(r));
        const chunk = this.queue.join('');
        const waiters = snap ? [...this.waiters, ...this.snapshotWaiters] : this.waiters;
        this.queue = [];
        this.waiters = [];
        if (snap) this.snapshotWaiters = [];
        this.snapshot = null;
        try {
          // Records still queued are not in the caller's state yet: they follow the snapshot.
          if (snap) await this.swap(snap().map((r) => JSON.stringify(r) + '\n').join('') + chunk);
          else await this.append_(chunk);
          for (const w of waiters) w.resolve();
        } catch (e) {
          for (const w of waiters) w.reject(e);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async append_(chunk: string): Promise<void> {
    const fh = this.handle();
    const bytes = Buffer.from(chunk, 'utf8');
    try {
      await fh.write(bytes);
      this.size += bytes.length;
    } catch (e) {
      await fh.truncate(this.size).catch(() => undefined);
      throw e;
    }
  }

  private async swap(content: string): Promise<void> {
    const tmp = this.path + '.tmp';
    const fh = await open(tmp, 'w');
    try {
      await fh.write(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    this.size = this.compactedSize = Buffer.byteLength(content);
    const old = this.fh;
    this.fh = await open(this.path, 'a');
    await old?.close();
  }

  private handle(): FileHandle {
    if (!this.fh) throw new Error('journal is not open');
    return this.fh;
  }

  /** Wait for queued writes, then close. */
  async close(): Promise<void> {
    while (this.writing) await this.flushing;
    await this.fh?.sync().catch(() => undefined);
    await this.fh?.close();
    this.fh = null;
  }
}

/** undefined = unreadable (stop), null = readable but not a record we know (skip). */
function parseLine<R>(line: Buffer, parse: (v: unknown) => R | null): R | null | undefined {
  try {
    return parse(JSON.parse(line.toString('utf8')));
  } catch {
    return undefined;
  }
}
