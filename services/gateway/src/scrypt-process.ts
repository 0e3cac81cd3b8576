// scrypt out of the gateway's process. A hash takes 128·N·r bytes (16 MiB at
// N=2^14, 128 MiB at the default 2^17); glibc keeps that memory in each libuv
// thread's malloc arena once used, so after a join storm the gateway would hold
// it for good (measured: ~65 MB after 80 hashes at 2^14, with 4 pool threads).
// Returning it after every hash (a lower mmap threshold) makes each hash 2-2.5x
// slower here (page faults). So hashes run in a child process that keeps its
// memory while there is work and exits after SCRYPT_IDLE_SECONDS without any:
// fast during a storm, nothing left after it. Passwords cross a private IPC pipe
// and are never logged.
import { fork, type ChildProcess } from 'node:child_process';
import type { ScryptOptions } from 'node:crypto';
import { errText, type Logger } from './log.js';

/** Derive a key: node:crypto's scrypt, in this process or another. */
export type Scrypt = (password: string, salt: Buffer, keylen: number, opts: ScryptOptions) => Promise<Buffer>;

interface Pending {
  resolve: (key: Buffer) => void;
  reject: (e: Error) => void;
  /** The child it was sent to: a child's exit fails only its own work. */
  child: ChildProcess;
}

type Reply = { id: number; key: string } | { id: number; error: string };

const channel = (c: ChildProcess): { ref(): void; unref(): void } | undefined => c.channel as { ref(): void; unref(): void } | undefined;

export class ScryptProcess {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    /** scrypt runs at once in the child (its libuv pool size): SCRYPT_CONCURRENCY. */
    private readonly threads: number,
    private readonly idleMs: number,
    private readonly log: Logger,
    /** Called when the idle child is let go: the password work of a burst is over. */
    private readonly onIdle: () => void = () => undefined,
  ) {}

  /** The child's PID while it runs (tests, logs). */
  pid(): number | null {
    return this.child?.pid ?? null;
  }

  readonly run: Scrypt = (password, salt, keylen, opts) =>
    new Promise<Buffer>((resolve, reject) => {
      if (this.closed) return reject(new Error('password process closed'));
      const child = this.ensure();
      const id = ++this.nextId;
      this.pending.set(id, { resolve, reject, child });
      // Work in hand keeps this process alive until it is answered (or the child's exit fails it).
      child.ref();
      channel(child)?.ref();
      if (this.idleTimer) {
        clearTimeout(this.idleTimer);
        this.idleTimer = null;
      }
      try {
        child.send({ id, password, salt: salt.toString('base64'), keylen, opts }, (e) => {
          if (e) this.lost(child, e);
        });
      } catch (e) {
        this.lost(child, e); // no channel: the fork failed
      }
    });

  /** Stop the child now; work in flight fails. */
  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    // A child whose fork failed has no pid: there is nothing to kill (and kill(0) would be our group).
    if (this.child?.pid !== undefined) this.child.kill('SIGKILL');
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(new URL('./scrypt-child.js', import.meta.url), [], {
      env: { PATH: process.env['PATH'] ?? '', UV_THREADPOOL_SIZE: String(this.threads) },
      execArgv: [], // not the gateway's own flags (e.g. --cpu-prof)
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    child.on('message', (m: Reply) => this.reply(m));
    // A failed fork (EMFILE, EAGAIN) emits only 'error', never 'exit': handled as a lost child.
    child.on('error', (e) => {
      this.log.warn({ err: errText(e) }, 'password process error');
      if (child.pid === undefined) this.lost(child, e);
    });
    child.on('exit', (code, signal) => this.lost(child, new Error(`password process exited (${signal ?? code})`)));
    // An idle child (and its channel) does not keep the gateway alive.
    child.unref();
    channel(child)?.unref();
    return child;
  }

  /** The child is gone (or never came): its work fails; the next hash starts a new process. */
  private lost(child: ChildProcess, why: unknown): void {
    if (this.child === child) this.child = null;
    let n = 0;
    for (const [id, p] of this.pending)
      if (p.child === child) {
        this.pending.delete(id);
        p.reject(new Error('password process exited'));
        n++;
      }
    // Killed, out of memory, or a failed fork, with work in hand.
    if (n > 0) this.log.warn({ err: errText(why), lost: n }, 'password process exited with work in hand');
  }

  private reply(m: Reply): void {
    const p = this.pending.get(m.id);
    if (p) {
      this.pending.delete(m.id);
      if ('key' in m) p.resolve(Buffer.from(m.key, 'base64'));
      else p.reject(new Error(m.error));
    }
    if (this.pending.size === 0) {
      if (this.child) {
        this.child.unref();
        channel(this.child)?.unref();
      }
      this.armIdle();
    }
  }

  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const child = this.child;
      if (!child || this.pending.size > 0) return;
      // The child exits on disconnect; a new one starts with the next hash.
      this.child = null;
      child.disconnect();
      this.onIdle();
    }, this.idleMs);
    this.idleTimer.unref();
  }
}
