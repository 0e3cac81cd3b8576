// Text hygiene: what other users typed never reaches a peer's terminal as
// control sequences. Applied by the session to names and chat text.

// ANSI/VT escapes: CSI (ESC [ … final), OSC (ESC ] … BEL | ESC \), DCS/SOS/PM/APC
// strings, 8-bit CSI (0x9b), and two-byte ESC sequences.
const ESCAPES =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?/g;
// Line breaks and tabs become a space so a message can never fake a second line.
const BREAKS = /[\t\n\r\v\f\u0085\u2028\u2029]/g;
// Remaining C0, DEL, C1 controls, and bidi overrides that can reorder a line on screen.
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// Lone surrogates (JSON's "\ud800" escapes) are not text and cannot be encoded as UTF-8.
const LONE_SURROGATES = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function sanitize(s: string): string {
  return s.replace(ESCAPES, '').replace(BREAKS, ' ').replace(CONTROLS, '').replace(LONE_SURROGATES, '');
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decode: undefined for invalid input (never U+FFFD substitution). */
export function decodeUtf8(bytes: Uint8Array | ArrayBuffer): string | undefined {
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Length in user-visible code points, not UTF-16 units. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
