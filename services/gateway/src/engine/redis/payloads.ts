// Parsing what comes back from Redis: channel payloads and history stream
// entries. Untrusted bytes in, typed values or null out; never throws.
import type { ChannelEvent, StoredMessage } from '../engine.js';

export type StreamEntry = [id: string, fields: string[]];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A message published through the server HTTP API carries `"api": true` (absent otherwise). */
const apiFlag = (v: Obj): { api?: true } => (v['api'] === true ? { api: true } : {});

/**
 * `{"t":"m","seq",from,text,ts,origin[,api]}` (from publish.lua), `{"t":"n",kind,name,origin}` (a
 * notice) or `{"t":"c"}` (the group was removed: remove_group.lua).
 */
export function parseChannelPayload(groupId: string, payload: string): ChannelEvent | null {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!isObj(v)) return null;
  if (v['t'] === 'm') {
    const { seq, from, text, ts, origin } = v;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return null;
    if (typeof from !== 'string' || typeof text !== 'string' || typeof ts !== 'number' || typeof origin !== 'string') return null;
    return { kind: 'message', message: { groupId, seq, from, text, ts, origin, ...apiFlag(v) } };
  }
  if (v['t'] === 'c') return { kind: 'closed' };
  if (v['t'] === 'n') {
    const { kind, name, origin } = v;
    if ((kind !== 'joined' && kind !== 'left') || typeof name !== 'string' || typeof origin !== 'string') return null;
    return { kind: 'notice', notice: { kind, groupId, name, origin } };
  }
  return null;
}

/** XRANGE rows (`<seq>-0`, ['m', '{"from","text","ts","origin"}']) → messages; unreadable rows are skipped. */
export function parseStreamEntries(groupId: string, rows: StreamEntry[]): StoredMessage[] {
  const out: StoredMessage[] = [];
  for (const [id, fields] of rows) {
    const seq = Number(id.slice(0, id.indexOf('-')));
    if (!Number.isSafeInteger(seq) || seq < 1) continue;
    const i = fields.indexOf('m');
    const body = i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
    if (body === undefined) continue;
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      continue;
    }
    if (!isObj(v)) continue;
    const { from, text, ts, origin } = v;
    if (typeof from !== 'string' || typeof text !== 'string' || typeof ts !== 'number') continue;
    out.push({ groupId, seq, from, text, ts, origin: typeof origin === 'string' ? origin : '', ...apiFlag(v) });
  }
  return out;
}
