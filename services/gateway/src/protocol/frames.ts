// The JSON protocol (shared/PROTOCOL.md §3) as types, and the parser that turns
// an untrusted frame into a typed op or a typed error. Never throws.
import type { ChatMessage } from '../engine/model.js';

import * as T from './text.js';

export type ErrorCode =
  | 'invalid_option'
  | 'no_groups'
  | 'unknown_group'
  | 'wrong_password'
  | 'invalid_input'
  | 'too_large'
  | 'rate_limited'
  | 'busy'
  | 'group_limit'
  | 'invalid_token'
  | 'not_joined'
  | 'unavailable';

export type ClientOp =
  | { op: 'create'; name: string; password: string }
  | { op: 'join'; name: string; groupId: string; password: string; since?: number }
  /** Without `since`: the recent history (HISTORY_REPLAY), as a join. */
  | { op: 'resume'; token: string; since?: number }
  | { op: 'send'; text: string; id?: string | number }
  | { op: 'who' }
  /** A page of older history: `before` exclusive (default: newest), `limit` clamped to HISTORY_PAGE_MAX. */
  | { op: 'history'; before?: number; limit?: number }
  | { op: 'exit' };

/** How a session came to be in a group: the text codec greets each differently. */
export type JoinVia = 'join' | 'create' | 'resume';

export type ServerEvent =
  | { type: 'menu' }
  | { type: 'prompt'; prompt: 'name' | 'groupId' | 'password' | 'newPassword' }
  | { type: 'created'; groupId: string }
  | { type: 'joined'; groupId: string; name: string; token: string; seq: number; via: JoinVia }
  | ({ type: 'message' } & ChatMessage)
  | { type: 'member_joined'; groupId: string; name: string }
  | { type: 'member_left'; groupId: string; name: string }
  | { type: 'members'; groupId: string; names: string[] }
  /** A page of history, oldest first; `more`: older messages remain. */
  | { type: 'history'; groupId: string; messages: ChatMessage[]; more: boolean }
  /** The group was removed (server API); the menu follows. */
  | { type: 'group_closed'; groupId: string }
  | { type: 'ack'; id: string | number | null; seq: number }
  /** `id`: on a refused or failed `send`, the client's id of that message (an extension of §3). */
  | { type: 'error'; code: ErrorCode; message: string; id?: string | number | null }
  | { type: 'bye' }
  | { type: 'restarting' };

export interface FrameError {
  error: ErrorCode;
  message: string;
  /** What kind of bad frame, for metrics (never derived from the message text). */
  reason: 'invalid_json' | 'invalid_op';
}

export const isFrameError = (v: ClientOp | FrameError): v is FrameError => 'error' in v;

const MAX_CLIENT_ID = 64;

const bad = (message: string, reason: FrameError['reason'] = 'invalid_json'): FrameError => ({ error: 'invalid_input', message, reason });

function str(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

function seqField(o: Record<string, unknown>, key: string): number | undefined | null {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** A positive integer, or undefined when absent; null when present but not one. */
function positiveField(o: Record<string, unknown>, key: string): number | undefined | null {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 ? v : null;
}

function groupIdField(o: Record<string, unknown>): string | undefined {
  const v = o['groupId'];
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string') return v.trim();
  return undefined;
}

/** Parse one JSON frame. Strings are checked for shape only; the session cleans them. */
export function parseClientFrame(raw: string): ClientOp | FrameError {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return bad(T.FRAME_NOT_JSON);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(T.FRAME_NOT_OBJECT);
  const o = v as Record<string, unknown>;
  switch (o['op']) {
    case 'create': {
      const name = str(o, 'name');
      const password = str(o, 'password');
      if (name === undefined || password === undefined) return bad(T.CREATE_FIELDS);
      return { op: 'create', name, password };
    }
    case 'join': {
      const name = str(o, 'name');
      const password = str(o, 'password');
      const groupId = groupIdField(o);
      const since = seqField(o, 'since');
      if (name === undefined || password === undefined || groupId === undefined)
        return bad(T.JOIN_FIELDS);
      if (since === null) return bad(T.SINCE_FIELD);
      return since === undefined ? { op: 'join', name, groupId, password } : { op: 'join', name, groupId, password, since };
    }
    case 'resume': {
      const token = str(o, 'token');
      const since = seqField(o, 'since');
      if (token === undefined || since === null) return bad(T.RESUME_FIELDS);
      return since === undefined ? { op: 'resume', token } : { op: 'resume', token, since };
    }
    case 'send': {
      const text = str(o, 'text');
      if (text === undefined) return bad(T.SEND_FIELDS);
      const id = o['id'];
      if (id === undefined || id === null) return { op: 'send', text };
      if ((typeof id === 'string' && id.length <= MAX_CLIENT_ID) || (typeof id === 'number' && Number.isFinite(id)))
        return { op: 'send', text, id };
      return bad(`"id" must be a number or a string of at most ${MAX_CLIENT_ID} characters`);
    }
    case 'who':
      return { op: 'who' };
    case 'history': {
      const before = positiveField(o, 'before');
      const limit = positiveField(o, 'limit');
      if (before === null || limit === null) return bad(T.HISTORY_FIELDS);
      return { op: 'history', ...(before === undefined ? {} : { before }), ...(limit === undefined ? {} : { limit }) };
    }
    case 'exit':
      return { op: 'exit' };
    default:
      return bad(T.UNKNOWN_OP, 'invalid_op');
  }
}
