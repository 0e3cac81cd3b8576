// The chaos suite's verdict, as a pure function: what each member sent, had acked and
// received, against the group's history as the store holds it at the end.
//
// Every message text is `<member name>#<client id>`, so a stored or received text says
// who sent it and which send it was, whatever seq it got.

export interface HistoryEntry {
  seq: number;
  text: string;
}

export interface MemberRecord {
  name: string;
  /** `joined.seq` of the first join: the member is owed every message after it. */
  joinSeq: number;
  /** Every chat message received, in arrival order (live and replayed on resume). */
  received: Array<[seq: number, text: string]>;
  /** Client id → text, for every send the member made. */
  sent: Map<number, string>;
  /** Client id → seq of its first ack. */
  acks: Map<number, number>;
  /** Acks that came again for an id already acked (with any seq). */
  reacks: number;
}

export interface CheckResult {
  sent: number;
  acked: number;
  /** History entries at the end. */
  stored: number;
  /** Distinct (member, seq) deliveries. */
  delivered: number;
  /** Deliveries owed: per member, every stored message after its join that it did not send. */
  owed: number;
  /** An owed message never received. */
  missing: number;
  /** An acked send whose seq does not hold its text at the end (acked, then lost). */
  ackedLost: number;
  /** A send stored under more than one seq. */
  dupStored: number;
  /** The same seq received twice by one member. */
  dupDelivered: number;
  /** A seq received after a higher one. */
  outOfOrder: number;
  /** A seq received with another text than the store holds at that seq (e.g. a seq reused after data loss). */
  mismatched: number;
  /** A seq received that the store does not hold at the end. */
  phantom: number;
  /** Sends never acked by the end. */
  unacked: number;
  /** The first few violations, spelled out. */
  samples: string[];
}

export const emptyResult = (): CheckResult => ({
  sent: 0,
  acked: 0,
  stored: 0,
  delivered: 0,
  owed: 0,
  missing: 0,
  ackedLost: 0,
  dupStored: 0,
  dupDelivered: 0,
  outOfOrder: 0,
  mismatched: 0,
  phantom: 0,
  unacked: 0,
  samples: [],
});

const MAX_SAMPLES = 12;

export const messageText = (name: string, id: number): string => `${name}#${id}`;

/** Sum of two results (samples capped). */
export function addResults(a: CheckResult, b: CheckResult): CheckResult {
  const out = emptyResult();
  for (const k of Object.keys(out) as Array<keyof CheckResult>) {
    if (k === 'samples') continue;
    out[k] = a[k] + b[k];
  }
  out.samples = [...a.samples, ...b.samples].slice(0, MAX_SAMPLES);
  return out;
}

/** Check one group: its history at the end and every member's record. */
export function checkGroup(groupId: string, history: HistoryEntry[], members: MemberRecord[]): CheckResult {
  const r = emptyResult();
  const note = (s: string): void => {
    if (r.samples.length < MAX_SAMPLES) r.samples.push(`group ${groupId}: ${s}`);
  };
  const bySeq = new Map<number, string>();
  const seqsOf = new Map<string, number[]>();
  for (const e of history) {
    bySeq.set(e.seq, e.text);
    const l = seqsOf.get(e.text);
    if (l) l.push(e.seq);
    else seqsOf.set(e.text, [e.seq]);
  }
  r.stored = history.length;
  for (const [text, seqs] of seqsOf) {
    if (seqs.length > 1) {
      r.dupStored += seqs.length - 1;
      note(`"${text}" stored ${seqs.length} times (seqs ${seqs.join(', ')})`);
    }
  }
  for (const m of members) {
    r.sent += m.sent.size;
    r.acked += m.acks.size;
    for (const [id, seq] of m.acks) {
      const text = m.sent.get(id) ?? messageText(m.name, id);
      if (bySeq.get(seq) !== text) {
        r.ackedLost++;
        note(`${m.name}: send ${id} acked as seq ${seq}, which holds ${JSON.stringify(bySeq.get(seq) ?? null)}`);
      }
    }
    for (const id of m.sent.keys()) if (!m.acks.has(id)) r.unacked++;
    const seen = new Set<number>();
    let max = 0;
    for (const [seq, text] of m.received) {
      if (seen.has(seq)) {
        r.dupDelivered++;
        note(`${m.name}: seq ${seq} received twice`);
        continue;
      }
      if (seq < max) {
        r.outOfOrder++;
        note(`${m.name}: seq ${seq} received after ${max}`);
      }
      max = Math.max(max, seq);
      seen.add(seq);
      const stored = bySeq.get(seq);
      if (stored === undefined) {
        r.phantom++;
        note(`${m.name}: received seq ${seq} (${JSON.stringify(text)}), not in the store at the end`);
      } else if (stored !== text) {
        r.mismatched++;
        note(`${m.name}: received seq ${seq} as ${JSON.stringify(text)}, the store holds ${JSON.stringify(stored)}`);
      }
    }
    r.delivered += seen.size;
    const own = `${m.name}#`;
    for (const e of history) {
      if (e.seq <= m.joinSeq || e.text.startsWith(own)) continue;
      r.owed++;
      if (!seen.has(e.seq)) {
        r.missing++;
        note(`${m.name}: never received seq ${e.seq}`);
      }
    }
  }
  return r;
}

/** Loss the table reports: acked sends gone from the store, and owed deliveries never made. */
export const lost = (r: CheckResult): number => r.ackedLost + r.missing;
/** Duplicates: a send stored twice, or a seq delivered twice. */
export const duplicated = (r: CheckResult): number => r.dupStored + r.dupDelivered;
