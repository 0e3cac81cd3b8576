// Resume tokens: `base64url(JSON claims).base64url(HMAC-SHA256)`, keyed by the
// cluster secret, so any node can check a token another node issued.
// - Claims tie a token to one life of one group: its ID and its random epoch
//   (a group removed, or an ID reused after a data reset, has another epoch).
// - `a` is when the password was checked. Renewal (every resume) keeps it, so
//   a token chain ends TOKEN_MAX_AGE_SECONDS after the password.
// - One canonical encoding only: base64url without padding, the MAC exactly 43
//   characters; anything else (padding, stray characters, non-canonical last
//   bits) is refused before the MAC is compared, in constant time.
// - Verification accepts the current secret and, during a rotation, the previous one.
// - `j` is the join id: random per create or join, kept by every renewal (resume). Names are not
//   unique, so it is what identifies one member across resumes and nodes (idempotent sends key on
//   it). A token from before join ids has none; its resume is given a fresh one.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface TokenClaims {
  groupId: string;
  name: string;
  /** The group's epoch; null in a token from before epochs. */
  epoch: string | null;
  /** When the password was checked (ms); null in a token from before epochs. */
  authAt: number | null;
  /** Expiry (ms). */
  exp: number;
  /** The join id (see above); null in a token from before join ids. */
  joinId: string | null;
}

/** A new join id: 96 random bits, base64url (16 characters). */
export const newJoinId = (): string => randomBytes(12).toString('base64url');
const JOIN_ID_RE = /^[A-Za-z0-9_-]{16}$/;

// The longest claims (a 256-character name of 4-byte characters) fit well within the body bound.
const TOKEN_RE = /^([A-Za-z0-9_-]{1,4096})\.([A-Za-z0-9_-]{43})$/;

const sign = (secret: string, body: string): Buffer => createHmac('sha256', secret).update(body).digest();

export function issueToken(
  secret: string,
  c: { groupId: string; name: string; epoch: string; authAt: number; joinId: string },
  ttlMs: number,
  now = Date.now(),
): string {
  const body = Buffer.from(JSON.stringify({ g: c.groupId, n: c.name, p: c.epoch, a: c.authAt, e: now + ttlMs, j: c.joinId })).toString('base64url');
  return `${body}.${sign(secret, body).toString('base64url')}`;
}

/** The claims of a well-formed token signed by one of `secrets` and not expired, else null. */
export function verifyToken(secrets: readonly string[], token: string, now = Date.now()): TokenClaims | null {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const body = m[1] as string;
  const macText = m[2] as string;
  const mac = Buffer.from(macText, 'base64url');
  // Canonical only: the same bytes re-encode to the same text (no variant spellings of one MAC or body).
  if (mac.length !== 32 || mac.toString('base64url') !== macText) return null;
  const raw = Buffer.from(body, 'base64url');
  if (raw.toString('base64url') !== body) return null;
  let good = false;
  for (const s of secrets) if (timingSafeEqual(mac, sign(s, body))) good = true; // every secret tried: no early exit
  if (!good) return null;
  try {
    const c = JSON.parse(raw.toString('utf8')) as { g?: unknown; n?: unknown; p?: unknown; a?: unknown; e?: unknown; j?: unknown };
    if (typeof c.g !== 'string' || typeof c.n !== 'string' || typeof c.e !== 'number' || c.e < now) return null;
    const epoch = typeof c.p === 'string' ? c.p : null;
    const authAt = typeof c.a === 'number' ? c.a : null;
    if ((epoch === null) !== (authAt === null)) return null;
    // Signed by us, so well-formed unless from an older version (none): anything else is refused.
    if (c.j !== undefined && (typeof c.j !== 'string' || !JOIN_ID_RE.test(c.j))) return null;
    return { groupId: c.g, name: c.n, epoch, authAt, exp: c.e, joinId: typeof c.j === 'string' ? c.j : null };
  } catch {
    return null;
  }
}
