// The menu flow as a pure state machine: (session, input) → (session, effects).
// No I/O, no timers. Work that needs the engine is asked for with a `call`
// effect; the node performs it and feeds the answer back as a `result` input.
// Text and JSON clients share this machine: text answers prompts one by one,
// JSON sends whole ops; both end in the same calls and events.
import type { ClientOp, ErrorCode, ServerEvent } from './protocol/frames.js';
import { GROUP_ID_RE, type ChatMessage, type HistoryFrom } from './engine/model.js';
import { codePoints, sanitize } from './protocol/hygiene.js';
import { CLOSE_NORMAL } from './ports.js';
import * as T from './protocol/text.js';

export interface SessionLimits {
  maxNameLength: number;
  maxTextLength: number;
}

export type SessionState =
  | { s: 'menu' }
  | { s: 'join_name' }
  | { s: 'join_group'; name: string }
  | { s: 'join_password'; name: string; groupId: string }
  | { s: 'create_name' }
  | { s: 'create_password'; name: string }
  /** `member`: the join id (tokens.ts), this member's identity across resumes: idempotent sends key on it. */
  | { s: 'chat'; name: string; groupId: string; member: string }
  | { s: 'closed' };

export type Call =
  | { call: 'hasGroups' }
  | { call: 'groupExists'; groupId: string }
  | { call: 'create'; name: string; password: string }
  | { call: 'join'; name: string; groupId: string; password: string; history: HistoryFrom }
  /** `since` null: the recent history (HISTORY_REPLAY), as a join without `since`. */
  | { call: 'resume'; token: string; since: number | null }
  | { call: 'who'; groupId: string }
  /**
   * A page of history. `before`: exclusive seq, null = newest, `seen` = before the oldest message
   * this connection has been shown (the text `/history`; the node keeps that position). `limit`:
   * null = the default page.
   */
  | { call: 'history'; groupId: string; before: number | 'seen' | null; limit: number | null };

export type CallFailure = { ok: false; code: ErrorCode; message: string };
export type CallResult =
  | { ok: true; hasGroups: boolean }
  | { ok: true; exists: boolean }
  | { ok: true; groupId: string; name: string; member: string; token: string; seq: number }
  | { ok: true; names: string[] }
  | { ok: true; messages: ChatMessage[]; more: boolean }
  | CallFailure;

export type Input =
  | { kind: 'open' }
  | { kind: 'text'; text: string }
  | { kind: 'op'; op: ClientOp }
  | { kind: 'bad'; code: ErrorCode; message: string }
  | { kind: 'result'; result: CallResult }
  /** The group was removed (server API): a member of it is back at the menu. */
  | { kind: 'group_closed'; groupId: string }
  | { kind: 'closed' };

export interface Publish {
  groupId: string;
  name: string;
  text: string;
  /** The client's own id, echoed in the ack. */
  id: string | number | null;
  /** The sender's join id: with `id`, a retried send is stored once (the engine's dedupe window). */
  member: string;
}

export type Effect =
  | { kind: 'send'; event: ServerEvent }
  /** A chat message: the node stores and fans it out, then acks (or errors) on its own, so sends pipeline. */
  | ({ kind: 'publish' } & Publish)
  | { kind: 'call'; call: Call }
  | { kind: 'attach'; groupId: string; name: string; history: HistoryFrom }
  /** `closed`: the group was removed, so nobody is told the member left. */
  | { kind: 'detach'; closed?: true }
  | { kind: 'close'; code: number };

export interface Session {
  readonly state: SessionState;
  /** The call whose result the session waits for; the node feeds no other input meanwhile. */
  readonly pending: Call | null;
}


export const newSession = (): Session => ({ state: { s: 'menu' }, pending: null });

/** Coarse phase for metrics: menu, auth (answering prompts / awaiting a check) or chat. */
export function phase(state: SessionState): 'menu' | 'auth' | 'chat' | 'closed' {
  switch (state.s) {
    case 'menu':
      return 'menu';
    case 'chat':
      return 'chat';
    case 'closed':
      return 'closed';
    default:
      return 'auth';
  }
}

type Out = { session: Session; effects: Effect[] };

const send = (event: ServerEvent): Effect => ({ kind: 'send', event });
const error = (code: ErrorCode, message: string): Effect => send({ type: 'error', code, message });
const at = (state: SessionState, effects: Effect[] = []): Out => ({ session: { state, pending: null }, effects });
const calling = (state: SessionState, call: Call, effects: Effect[] = []): Out => ({
  session: { state, pending: call },
  effects: [...effects, { kind: 'call', call }],
});

// Unicode format characters (category Cf: zero-width spaces and joiners, U+061C, U+FEFF, bidi
// controls, tags) render as nothing, so a name made of them would look empty or impersonate another.
const FORMAT_CHARS = /\p{Cf}/gu;

/** A display name: controls and format characters stripped, trimmed, non-empty, bounded. */
export function cleanName(raw: string, limits: SessionLimits): { name: string } | { error: string } {
  const name = sanitize(raw).replace(FORMAT_CHARS, '').trim();
  if (name.length === 0) return { error: T.INVALID_NAME };
  if (codePoints(name) > limits.maxNameLength) return { error: T.nameTooLong(limits.maxNameLength) };
  return { name };
}

type CleanText = { text: string } | { empty: true } | { tooLong: true };
export function cleanText(raw: string, limits: SessionLimits): CleanText {
  const text = sanitize(raw);
  if (text.trim().length === 0) return { empty: true };
  if (codePoints(text) > limits.maxTextLength) return { tooLong: true };
  return { text };
}

export function step(session: Session, input: Input, limits: SessionLimits): Out {
  const { state } = session;
  if (state.s === 'closed') return { session, effects: [] };
  if (input.kind === 'closed') return at({ s: 'closed' }, state.s === 'chat' ? [{ kind: 'detach' }] : []);
  if (input.kind === 'result') {
    if (!session.pending) return { session, effects: [] };
    return onResult(state, session.pending, input.result);
  }
  if (session.pending) throw new Error('session: input while a call is pending');
  switch (input.kind) {
    case 'group_closed':
      // Only the group this session is in now (it may have moved on since the notice was queued).
      if (state.s !== 'chat' || state.groupId !== input.groupId) return at(state);
      return at({ s: 'menu' }, [{ kind: 'detach', closed: true }, send({ type: 'group_closed', groupId: input.groupId }), send({ type: 'menu' })]);
    case 'open':
      return at(state, [send({ type: 'menu' })]);
    case 'bad':
      return at(state, [error(input.code, input.message)]);
    case 'text':
      return onText(state, input.text, limits);
    case 'op':
      return onOp(state, input.op, limits);
  }
}

function onText(state: SessionState, raw: string, limits: SessionLimits): Out {
  switch (state.s) {
    case 'menu': {
      const option = raw.trim();
      if (option === '1') return calling(state, { call: 'hasGroups' });
      if (option === '2') return at({ s: 'create_name' }, [send({ type: 'prompt', prompt: 'name' })]);
      if (option === '3') return at({ s: 'closed' }, [send({ type: 'bye' }), { kind: 'close', code: CLOSE_NORMAL }]);
      return at(state, [error('invalid_option', T.PLEASE_TRY_AGAIN)]);
    }
    case 'join_name':
    case 'create_name': {
      const clean = cleanName(raw, limits);
      if ('error' in clean) return at(state, [error('invalid_input', clean.error)]);
      const { name } = clean;
      return state.s === 'join_name'
        ? at({ s: 'join_group', name }, [send({ type: 'prompt', prompt: 'groupId' })])
        : at({ s: 'create_password', name }, [send({ type: 'prompt', prompt: 'newPassword' })]);
    }
    case 'join_group': {
      const groupId = raw.trim();
      if (!GROUP_ID_RE.test(groupId)) return at(state, [error('unknown_group', T.WRONG_ID)]);
      return calling(state, { call: 'groupExists', groupId });
    }
    case 'join_password': {
      // No group has an empty password, so an empty answer is simply wrong.
      if (raw.length === 0) return at(state, [error('wrong_password', T.WRONG_PASSWORD)]);
      return calling(state, { call: 'join', name: state.name, groupId: state.groupId, password: raw, history: 'recent' });
    }
    case 'create_password': {
      if (raw.length === 0) return at(state, [error('invalid_input', T.EMPTY_PASSWORD)]);
      return calling(state, { call: 'create', name: state.name, password: raw });
    }
    case 'chat': {
      const command = raw.trim();
      if (command === T.CMD_WHO) return calling(state, { call: 'who', groupId: state.groupId });
      if (command === T.CMD_HISTORY) return calling(state, { call: 'history', groupId: state.groupId, before: 'seen', limit: null });
      if (command === T.CMD_QUIT)
        return at({ s: 'closed' }, [{ kind: 'detach' }, send({ type: 'bye' }), { kind: 'close', code: CLOSE_NORMAL }]);
      const clean = cleanText(raw, limits);
      if ('empty' in clean) return at(state); // an empty line is not a message
      if ('tooLong' in clean) return at(state, [error('too_large', T.TOO_LARGE)]);
      return at(state, [{ kind: 'publish', groupId: state.groupId, name: state.name, text: clean.text, id: null, member: state.member }]);
    }
    case 'closed':
      return at(state);
  }
}

function onOp(state: SessionState, op: ClientOp, limits: SessionLimits): Out {
  const inChat = state.s === 'chat';
  const leave: Effect[] = inChat ? [{ kind: 'detach' }] : [];
  // A connection is in at most one group: a create/join/resume that succeeds leaves the current
  // one first (onResult); one that is refused changes nothing, so the call runs from `state`.
  switch (op.op) {
    case 'create': {
      const clean = cleanName(op.name, limits);
      if ('error' in clean) return at(state, [error('invalid_input', clean.error)]);
      if (op.password.length === 0) return at(state, [error('invalid_input', T.EMPTY_PASSWORD)]);
      return calling(state, { call: 'create', name: clean.name, password: op.password });
    }
    case 'join': {
      const clean = cleanName(op.name, limits);
      if ('error' in clean) return at(state, [error('invalid_input', clean.error)]);
      if (!GROUP_ID_RE.test(op.groupId)) return at(state, [error('unknown_group', T.WRONG_ID)]);
      const history: HistoryFrom = op.since === undefined ? 'recent' : { since: op.since };
      return calling(state, { call: 'join', name: clean.name, groupId: op.groupId, password: op.password, history });
    }
    case 'resume':
      return calling(state, { call: 'resume', token: op.token, since: op.since ?? null });
    case 'send': {
      // Refusals of a send carry its id, like the node's (a client tells which send failed, and for good).
      const refuse = (code: ErrorCode, message: string): Out => at(state, [send({ type: 'error', code, message, id: op.id ?? null })]);
      if (state.s !== 'chat') return refuse('not_joined', T.NOT_JOINED);
      const clean = cleanText(op.text, limits);
      if ('empty' in clean) return refuse('invalid_input', T.EMPTY_MESSAGE);
      if ('tooLong' in clean) return refuse('too_large', T.TOO_LARGE);
      return at(state, [{ kind: 'publish', groupId: state.groupId, name: state.name, text: clean.text, id: op.id ?? null, member: state.member }]);
    }
    case 'who':
      if (state.s !== 'chat') return at(state, [error('not_joined', T.NOT_JOINED)]);
      return calling(state, { call: 'who', groupId: state.groupId });
    case 'history':
      if (state.s !== 'chat') return at(state, [error('not_joined', T.NOT_JOINED)]);
      return calling(state, { call: 'history', groupId: state.groupId, before: op.before ?? null, limit: op.limit ?? null });
    case 'exit':
      return at({ s: 'closed' }, [...leave, send({ type: 'bye' }), { kind: 'close', code: CLOSE_NORMAL }]);
  }
}

function onResult(state: SessionState, call: Call, r: CallResult): Out {
  if (!r.ok) return onFailure(state, call, r);
  switch (call.call) {
    case 'hasGroups':
      if ('hasGroups' in r && r.hasGroups) return at({ s: 'join_name' }, [send({ type: 'prompt', prompt: 'name' })]);
      return at({ s: 'closed' }, [error('no_groups', T.NO_CHATS), { kind: 'close', code: CLOSE_NORMAL }]);
    case 'groupExists':
      if (state.s === 'join_group' && 'exists' in r && r.exists)
        return at({ s: 'join_password', name: state.name, groupId: call.groupId }, [send({ type: 'prompt', prompt: 'password' })]);
      return at(state, [error('unknown_group', T.WRONG_ID)]);
    case 'create':
    case 'join':
    case 'resume': {
      if (!('token' in r)) return at(state);
      const chat: SessionState = { s: 'chat', name: r.name, groupId: r.groupId, member: r.member };
      const joined = (via: 'join' | 'create' | 'resume'): Effect =>
        send({ type: 'joined', groupId: r.groupId, name: r.name, token: r.token, seq: r.seq, via });
      // A JSON client moving from one group to another leaves the old one only now that the new one let it in.
      const leave: Effect[] = state.s === 'chat' ? [{ kind: 'detach' }] : [];
      if (call.call === 'create')
        return at(chat, [
          ...leave,
          send({ type: 'created', groupId: r.groupId }),
          joined('create'),
          { kind: 'attach', groupId: r.groupId, name: r.name, history: { since: r.seq } },
        ]);
      const history: HistoryFrom = call.call === 'join' ? call.history : call.since === null ? 'recent' : { since: call.since };
      return at(chat, [...leave, joined(call.call), { kind: 'attach', groupId: r.groupId, name: r.name, history }]);
    }
    case 'who':
      return at(state, 'names' in r ? [send({ type: 'members', groupId: call.groupId, names: r.names })] : []);
    case 'history':
      return at(state, 'messages' in r ? [send({ type: 'history', groupId: call.groupId, messages: r.messages, more: r.more })] : []);
  }
}

function onFailure(state: SessionState, call: Call, r: CallFailure): Out {
  const effects: Effect[] = [error(r.code, r.message)];
  // A group that vanished between the ID and the password: ask for the ID again.
  if (call.call === 'join' && r.code === 'unknown_group' && state.s === 'join_password')
    return at({ s: 'join_group', name: state.name }, effects);
  if (r.code === 'no_groups' && state.s !== 'menu' && state.s !== 'chat')
    return at({ s: 'closed' }, [...effects, { kind: 'close', code: CLOSE_NORMAL }]);
  // A refused create in the text flow (budget, busy, group ceiling, outage) goes back to the menu;
  // a refused join stays at the password prompt (state unchanged). JSON clients stay where they were.
  if (call.call === 'create' && state.s === 'create_password') return at({ s: 'menu' }, [...effects, send({ type: 'menu' })]);
  return at(state, effects);
}
