// A helper process of a scenario (flood.ts, fuzzer.ts, the client workers of fleet.ts): forked with an IPC channel, asked
// one question at a time with a deadline, stopped by its PID (and killed by PID if the
// runner exits with it still running).
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from '../helpers/wait.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

export interface Answer {
  t: string;
  error?: string;
}

export class Child<To extends { t: string }, A extends Answer> {
  private waiters: Array<{ t: string; resolve: (m: A) => void; reject: (e: Error) => void }> = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;

  /** `script`: a compiled module next to this one (e.g. 'flood.js'). */
  constructor(script: string) {
    this.proc = fork(join(HERE, script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running.add(this.proc);
    this.exited = new Promise((res) =>
      this.proc.once('exit', (code, signal) => {
        running.delete(this.proc);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${script} ${this.proc.pid} exited (${code ?? signal})`));
        res();
      }),
    );
    this.proc.on('message', (raw) => {
      const m = raw as A;
      if (m.t === 'failed') {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${script} ${this.proc.pid}: ${m.error ?? '?'}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.t === m.t);
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(m);
    });
  }

  ask<T extends A['t']>(msg: To, answer: T, ms: number): Promise<Extract<A, { t: T }>> {
    const p = new Promise<A>((resolve, reject) => this.waiters.push({ t: answer, resolve, reject }));
    this.proc.send(msg);
    return within(p, ms, `${this.proc.pid}: ${msg.t}`) as Promise<Extract<A, { t: T }>>;
  }

  /** Ask it to exit; SIGKILL by PID if it has not within 5 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.send({ t: 'exit' });
    try {
      await within(this.exited, 5000, 'helper process exit');
    } catch {
      this.proc.kill('SIGKILL');
      await within(this.exited, 5000, 'helper process exit after SIGKILL');
    }
  }
}
