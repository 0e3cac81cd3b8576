// The password process's own code (started by scrypt-process.ts, never run by hand): scrypt
// requests in over IPC, derived keys out. It lives as long as there is password work and then
// exits, so the memory scrypt takes (128·N·r bytes a hash, kept by malloc once used) leaves with it.
import { scrypt, type ScryptOptions } from 'node:crypto';

interface Request {
  id: number;
  password: string;
  salt: string;
  keylen: number;
  opts: ScryptOptions;
}

const answer = (m: { id: number; key: string } | { id: number; error: string }): void => {
  // The channel may be gone (the gateway stopped or let go): nothing to answer.
  if (process.connected) process.send?.(m);
};

process.on('message', (m: Request) => {
  try {
    scrypt(m.password, Buffer.from(m.salt, 'base64'), m.keylen, m.opts, (err, key) =>
      answer(err ? { id: m.id, error: err.message } : { id: m.id, key: key.toString('base64') }),
    );
  } catch (e) {
    // Bad parameters (e.g. a corrupt stored hash) throw at once: one request fails, not the process.
    answer({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
// The gateway let go (idle, or it exited): nothing more can be answered, so this process ends now.
process.on('disconnect', () => process.exit(0));
