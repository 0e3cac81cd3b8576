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

process.on('message', (m: Request) => {
  scrypt(m.password, Buffer.from(m.salt, 'base64'), m.keylen, m.opts, (err, key) => {
    // The channel may be gone (the gateway stopped): nothing to answer.
    if (!process.connected) return;
    process.send?.(err ? { id: m.id, error: err.message } : { id: m.id, key: key.toString('base64') });
  });
});
// The gateway let go (idle, or it exited): so does this process, after the hashes in hand.
process.on('disconnect', () => process.exit(0));
