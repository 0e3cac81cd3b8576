// Group passwords: salted scrypt (node:crypto, on libuv's thread pool, off the
// event loop; in the gateway, in a password process of its own: scrypt-process.ts),
// stored as `scrypt$N$r$p$salt$hash`, compared in constant time.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { Scrypt } from './scrypt-process.js';

const KEY_LEN = 32;
const SALT_LEN = 16;
// How many run at once, and in what order, is the node's business (password-work.ts): scrypt
// runs on libuv's thread pool, which the journal's writes share, and holds 128·N·r bytes.

/** The form scrypt hashes (and the verified-password cache keys): NFC, so "é" typed either way is one password. */
export const normalizePassword = (password: string): string => password.normalize('NFC');

/** scrypt in this process. */
export const localScrypt: Scrypt = (password, salt, keylen, opts) =>
  new Promise<Buffer>((resolve, reject) => scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));

function derive(run: Scrypt, password: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; allow twice that so OWASP's N=2^17 works.
  const opts: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return run(normalizePassword(password), salt, KEY_LEN, opts);
}

export async function hashPassword(password: string, N: number, run: Scrypt = localScrypt, r = 8, p = 1): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await derive(run, password, salt, N, r, p);
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string, run: Scrypt = localScrypt): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const expected = Buffer.from(parts[5] ?? '', 'base64');
  if (!Number.isInteger(N) || !Number.isInteger(r) || !Number.isInteger(p) || expected.length !== KEY_LEN) return false;
  const key = await derive(run, password, salt, N, r, p);
  return timingSafeEqual(key, expected);
}
