// The chat's own nouns, beneath every layer that uses them: a group ID's
// shape, a chat message, and where a member's history starts. The engine
// stores and delivers these; the protocol encodes them; the session and the
// hubs reason about them. Imports nothing.

/** Group IDs are decimal strings from one counter starting at "0" (and the protocol's shape of them). */
export const GROUP_ID_RE = /^(0|[1-9][0-9]{0,15})$/;
/** Anything not shaped like a group ID never reaches a key or a lookup. */
export const isGroupId = (id: string): boolean => GROUP_ID_RE.test(id);

/** One chat message as members see it: `seq` orders a group's messages, from 1, with no gaps. */
export interface ChatMessage {
  groupId: string;
  seq: number;
  from: string;
  text: string;
  ts: number;
  /** Published through the server HTTP API (PROTOCOL.md §3b), not by a member. */
  api?: true;
}

/** Where a joining member's history starts: the newest messages, or everything after a seq it has (a resume). */
export type HistoryFrom = { since: number } | 'recent';
