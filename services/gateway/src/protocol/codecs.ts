// Session events → wire strings. One encoder per codec; transports add framing.
import type { ChatMessage } from '../engine/model.js';
import type { ServerEvent } from './frames.js';
import * as T from './text.js';

export type Codec = 'text' | 'json';

/** The text rendering of an event, or null when the text protocol has nothing to say. */
export function encodeText(ev: ServerEvent): string | null {
  switch (ev.type) {
    case 'menu':
      return T.MENU;
    case 'prompt':
      return ev.prompt === 'name'
        ? T.ENTER_NAME
        : ev.prompt === 'groupId'
          ? T.ENTER_GROUP_ID
          : ev.prompt === 'password'
            ? T.ENTER_PASSWORD
            : T.ENTER_NEW_PASSWORD;
    case 'created':
      return T.chatCreated(ev.groupId);
    case 'joined':
      // Creating already said "Chat N has been created."; a resumed text client re-joins by the menu.
      return ev.via === 'join' ? T.welcome(ev.name, ev.groupId) : null;
    case 'message':
      return T.chatLine(ev.from, ev.text);
    case 'member_joined':
      return T.memberJoined(ev.name);
    case 'member_left':
      return T.memberLeft(ev.name);
    case 'members':
      return T.membersOnline(ev.groupId, ev.names);
    case 'history':
      // One message of `{from}: {text}` lines (like the menu's four lines), oldest first.
      return ev.messages.length === 0 ? T.NO_OLDER_MESSAGES : ev.messages.map((m) => T.chatLine(m.from, m.text)).join('\n');
    case 'group_closed':
      return T.chatClosed(ev.groupId);
    case 'ack':
      return null;
    case 'error':
      return ev.message;
    case 'bye':
      return T.DISCONNECTED;
    case 'restarting':
      return T.SERVER_RESTARTING;
  }
}

/** A `message` event's JSON object; `api: true` only on messages published through the server HTTP API. */
function messageJson(m: ChatMessage): Record<string, unknown> {
  const o: Record<string, unknown> = { type: 'message', groupId: m.groupId, seq: m.seq, from: m.from, text: m.text, ts: m.ts };
  if (m.api) o['api'] = true;
  return o;
}

/** The JSON rendering (PROTOCOL.md §3). Prompts are a text-only affair. */
export function encodeJson(ev: ServerEvent): string | null {
  switch (ev.type) {
    case 'menu':
      return JSON.stringify({ type: 'menu', options: T.MENU_OPTIONS });
    case 'prompt':
    case 'restarting': // JSON clients learn it from close code 1012
      return null;
    case 'joined':
      return JSON.stringify({ type: 'joined', groupId: ev.groupId, name: ev.name, token: ev.token, seq: ev.seq });
    case 'message':
      return JSON.stringify(messageJson(ev));
    case 'history':
      return JSON.stringify({ type: 'history', groupId: ev.groupId, messages: ev.messages.map(messageJson), more: ev.more });
    default:
      return JSON.stringify(ev);
  }
}

export function encode(codec: Codec, ev: ServerEvent): string | null {
  return codec === 'json' ? encodeJson(ev) : encodeText(ev);
}

/**
 * One event's wire forms for a fan-out: each encoded at most once, and only when a transport asks
 * for it, so a codec with no members on this node costs nothing.
 */
export class Encoded {
  private t: string | null | undefined;
  private j: string | null | undefined;
  constructor(readonly event: ServerEvent) {}

  get text(): string | null {
    if (this.t === undefined) this.t = encodeText(this.event);
    return this.t;
  }

  get json(): string | null {
    if (this.j === undefined) this.j = encodeJson(this.event);
    return this.j;
  }
}
