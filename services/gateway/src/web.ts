// The web client's static files (services/web/), read into memory once at start and served by
// transport/uws.ts at `/`. No file is read per request, no path comes from the request: a fixed
// table maps each route to its bytes, its type and its headers.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the files live: services/web/ in the repository (and in the image, beside dist/).
 * From dist/services/gateway/src/web.js that is four folders up, then services/web.
 */
export const WEB_DIR = fileURLToPath(new URL('../../../../services/web/', import.meta.url));

/** The page's policy: scripts, styles and images from this origin only; WebSockets to any host (ws:/wss:). */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Sent with every static file. */
export const SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['Content-Security-Policy', CONTENT_SECURITY_POLICY],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Frame-Options', 'DENY'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
];

/** Revalidate every time (an upgraded gateway serves its own app.js at once); the ETag makes that a 304. */
export const CACHE_CONTROL = 'no-cache';

export interface WebFile {
  readonly route: string;
  readonly body: Buffer;
  readonly contentType: string;
  /** A strong validator: the first 16 bytes of the SHA-256, quoted. */
  readonly etag: string;
}

/** Route → file in WEB_DIR, and its type. The only files served. */
const FILES: ReadonlyArray<{ routes: string[]; file: string; contentType: string }> = [
  { routes: ['/', '/index.html'], file: 'index.html', contentType: 'text/html; charset=utf-8' },
  { routes: ['/app.js'], file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  { routes: ['/style.css'], file: 'style.css', contentType: 'text/css; charset=utf-8' },
  { routes: ['/favicon.svg'], file: 'favicon.svg', contentType: 'image/svg+xml' },
];

/** Every route's file, read now. Throws (naming the file) when one is missing or unreadable. */
export function loadWebFiles(dir: string = WEB_DIR): WebFile[] {
  const out: WebFile[] = [];
  for (const f of FILES) {
    const body = readFileSync(join(dir, f.file));
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
    for (const route of f.routes) out.push({ route, body, contentType: f.contentType, etag });
  }
  return out;
}

/** True when an If-None-Match header names this ETag (a list, or `*`). */
export function notModified(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch === '') return false;
  return ifNoneMatch
    .split(',')
    .map((s) => s.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
