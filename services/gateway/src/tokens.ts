// Resume tokens: `base64url(JSON claims).base64url(HMAC-SHA256)`, keyed by the
// cluster secret, so any node can check a token another node issued.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface ResumeClaims {
  groupId: string;
  name: string;
  /** Expiry, ms since epoch. */
  exp: number;
}

const sign = (secret: string, body: string): Buffer => createHmac('sha256', secret).update(body).digest();

export function issueToken(secret: string, groupId: string, name: string, ttlMs: number, now = Date.now()): string {
  const body = Buffer.from(JSON.stringify({ g: groupId, n: name, e: now + ttlMs })).toString('base64url');
  return `${body}.${sign(secret, body).toString('base64url')}`;
}

export function verifyToken(secret: string, token: string, now = Date.now()): ResumeClaims | null {
  const dot = token.indexOf('.');
  if (dot <= 0 || token.length > 1024) return null;
  const body = token.slice(0, dot);
  const mac = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = sign(secret, body);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return null;
  try {
    const c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { g?: unknown; n?: unknown; e?: unknown };
    if (typeof c.g !== 'string' || typeof c.n !== 'string' || typeof c.e !== 'number' || c.e < now) return null;
    return { groupId: c.g, name: c.n, exp: c.e };
  } catch {
    return null;
  }
}
