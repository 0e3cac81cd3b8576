// One embedded node per DATA_DIR: two nodes appending to one journal would interleave and each
// compact the other's records away. Node has no flock, so the lock is a file that holds the
// owner's PID, created atomically with its content (written beside it, then hard-linked into
// place: link() fails if the lock exists, and nobody ever sees it empty). A lock whose PID is gone (a node killed with -9, a crashed
// container) is stale and is taken over; one whose PID is this very process (PID 1 again in a
// restarted container) is stale too. The lock is removed on exit.
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StartupError } from './startup.js';

export const LOCK_FILE = 'gateway.lock';

export interface DataDirLock {
  readonly path: string;
  /** Remove the lock if it is still ours. Idempotent. */
  release(): void;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // our own PID in an old lock: a previous life of this container
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: exists, owned by someone else
  }
  // After a reboot the PID may belong to an unrelated process: only a Node process can hold the lock.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').some((arg) => /(^|\/)node(js)?$|\.js$/.test(arg));
  } catch {
    return true; // no /proc (or not readable): trust the PID
  }
}

const readLock = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
};

const holderPid = (content: string): number => Number(content.split('\n')[0]);

/**
 * Move a stale lock aside, atomically. If another node took it over between our read and the
 * rename (what we moved is not the stale content), put theirs back and report failure.
 */
function takeOver(path: string, stale: string): boolean {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true; // gone already: try again
    throw e;
  }
  const moved = readLock(aside);
  if (moved === stale) {
    unlinkSync(aside);
    return true;
  }
  try {
    linkSync(aside, path);
  } catch {
    // Someone created a new lock meanwhile: theirs stands.
  }
  unlinkSync(aside);
  return false;
}

/** Take the lock on `dir` (created if missing), or throw a StartupError naming the holder. */
export function lockDataDir(dir: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const mine = `${process.pid}\n`;
  const fresh = `${path}.${process.pid}.new`;
  writeFileSync(fresh, mine);
  try {
    return take(dir, path, fresh, mine);
  } finally {
    unlinkSync(fresh);
  }
}

function take(dir: string, path: string, fresh: string, mine: string): DataDirLock {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      linkSync(fresh, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const held = readLock(path);
      if (held === null) continue; // released between our open and read
      const pid = holderPid(held);
      if (alive(pid))
        throw new StartupError(`DATA_DIR ${dir} is in use by another gateway (pid ${pid}); one embedded node per journal`, { dataDir: dir, pid, lock: path });
      if (!takeOver(path, held))
        throw new StartupError(`DATA_DIR ${dir} was just taken by another gateway; one embedded node per journal`, { dataDir: dir, lock: path });
      continue;
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      try {
        if (readLock(path) === mine) unlinkSync(path);
      } catch {
        // best effort: a lock left behind is stale once we are gone
      }
    };
    process.once('exit', release);
    return { path, release };
  }
  throw new StartupError(`DATA_DIR ${dir}: could not take ${LOCK_FILE}`, { dataDir: dir, lock: path });
}
