// What every transport shares, written once: the group roster of its
// connections, the decode-and-reject path from bytes to session input, and the
// slow-consumer policy. uws.ts and tcp.ts keep only their wire.
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Inbound, TransportLabel } from '../ports.js';
import type { Codec } from '../protocol/codecs.js';
import { isFrameError, parseClientFrame } from '../protocol/frames.js';
import { decodeUtf8 } from '../protocol/hygiene.js';
import * as T from '../protocol/text.js';

interface Roster<C> {
  list: C[];
  cursor: number;
}

/** A transport's connections by group; a connection is in at most one group. O(1) join and leave. */
export class GroupMembers<C> {
  private readonly groups = new Map<string, Roster<C>>();
  /** Each member's group and its index in that group's list. */
  private readonly where = new Map<C, { groupId: string; at: number }>();

  join(conn: C, groupId: string): void {
    this.leave(conn);
    let r = this.groups.get(groupId);
    if (!r) this.groups.set(groupId, (r = { list: [], cursor: 0 }));
    this.where.set(conn, { groupId, at: r.list.length });
    r.list.push(conn);
  }

  /** Leave whatever group the connection is in (none: nothing happens). */
  leave(conn: C): void {
    const w = this.where.get(conn);
    if (!w) return;
    this.where.delete(conn);
    const r = this.groups.get(w.groupId) as Roster<C>;
    const last = r.list.pop() as C;
    if (last !== conn) {
      r.list[w.at] = last;
      (this.where.get(last) as { at: number }).at = w.at;
    }
    if (r.list.length === 0) this.groups.delete(w.groupId);
  }

  /** The group's members here, in no particular order (do not keep the array). */
  of(groupId: string): readonly C[] {
    return this.groups.get(groupId)?.list ?? [];
  }

  /** Call `f` on the next `n` members of the group in turn (round robin across calls). */
  inTurn(groupId: string, n: number, f: (conn: C) => void): void {
    const r = this.groups.get(groupId);
    if (!r) return;
    for (let i = 0; i < Math.min(n, r.list.length); i++) {
      r.cursor = (r.cursor + 1) % r.list.length;
      f(r.list[r.cursor] as C);
    }
  }
}

/**
 * One frame (a WebSocket message, a TCP line or read) → the session's input, or the refusal the
 * client gets: the same rules on every wire. `bytes` has the wire's own framing removed.
 */
export function receive(inbound: Inbound, codec: Codec, bytes: Uint8Array | ArrayBuffer, maxFrameBytes: number): void {
  if (bytes.byteLength > maxFrameBytes) return tooLarge(inbound);
  const text = decodeUtf8(bytes);
  if (text === undefined) return inbound.reject('invalid_input', 'invalid_utf8', T.INVALID_INPUT);
  if (codec === 'text') return inbound.input({ kind: 'text', text }, bytes.byteLength);
  const op = parseClientFrame(text);
  if (isFrameError(op)) return inbound.reject(op.error, op.reason, op.message);
  inbound.input({ kind: 'op', op }, bytes.byteLength);
}

/** A frame over MAX_FRAME_BYTES (also one a transport refuses before it has all of it). */
export const tooLarge = (inbound: Inbound): void => inbound.reject('too_large', 'too_large', T.TOO_LARGE);

/**
 * Slow consumers: a connection whose unsent output is past MAX_BACKPRESSURE_BYTES has stopped
 * reading, and is dropped rather than buffered for without bound. Counted and logged here; the
 * transport drops the socket.
 */
export class SlowConsumers {
  constructor(
    readonly maxBuffered: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** True (counted and logged) when `buffered` is past the bound: the caller drops the connection. */
  tooSlow(transport: TransportLabel, conn: string | undefined, buffered: number): boolean {
    if (buffered <= this.maxBuffered) return false;
    this.metrics.slowConsumers.inc({ transport });
    this.log.warn({ conn, transport, queued: buffered }, 'slow consumer closed');
    return true;
  }
}
