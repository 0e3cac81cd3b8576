// The web client: the JSON protocol (subprotocol chat.json, PROTOCOL.md §3) over one WebSocket to
// the gateway that served this page. No framework, no build step, nothing fetched from elsewhere.
// Every string from the server or another user reaches the page through textContent, never as HTML.
// Type-checked by `make lint` (services/web/tsconfig.json: checkJs).
'use strict';

/**
 * @typedef {{ seq: number, from: string, text: string, ts: number, groupId?: string, api?: boolean }} ChatMessage
 * @typedef {{ groupId: string, name: string, token: string }} Session
 * @typedef {{ id: string, text: string, li: HTMLLIElement, sent: boolean, unsure: boolean }} Pending
 *   sent: on the current connection; unsure: sent on a connection that dropped before its ack
 */

/** Backoff between reconnects: 250 ms doubling to 8 s, each wait drawn from [half, full] (jitter). */
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 8000;
/** A connection attempt that has not opened by then is given up and retried. */
const CONNECT_TIMEOUT_MS = 8000;
/** Older history is asked for when the log is scrolled this close to its top. */
const NEAR_TOP_PX = 48;
const PAGE_SIZE = 50;

/** What each error code means to a person (PROTOCOL.md §3). */
const ERROR_TEXT = {
  invalid_option: 'That is not an option here.',
  no_groups: 'There are no group chats yet. Create one.',
  unknown_group: 'There is no group with that ID. Check the ID and try again.',
  wrong_password: 'Wrong password. Please try again.',
  invalid_input: 'That was not accepted',
  invalid_token: 'Your session has expired. Join the group again.',
  too_large: 'That message is too long.',
  rate_limited: 'Too many attempts or messages. Wait a moment, then try again.',
  busy: 'The server is busy. Try again in a moment.',
  group_limit: 'No more group chats can be created right now.',
  not_joined: 'You are not in a group. Join or create one.',
  unavailable: 'The chat service is unavailable for a moment. Try again shortly.',
};

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}

/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));
/** @param {string} id */
const button = (id) => /** @type {HTMLButtonElement} */ ($(id));

const ui = {
  status: $('status'),
  menu: $('menu'),
  menuError: $('menu-error'),
  name: input('name'),
  createForm: $('create-form'),
  createPassword: input('create-password'),
  createBtn: button('create-btn'),
  joinForm: $('join-form'),
  joinId: input('join-id'),
  joinPassword: input('join-password'),
  joinBtn: button('join-btn'),
  chat: $('chat'),
  groupTitle: $('group-title'),
  membersToggle: button('members-toggle'),
  memberCount: $('member-count'),
  membersPanel: $('members-panel'),
  members: $('members'),
  leaveBtn: button('leave-btn'),
  log: $('log'),
  older: button('older'),
  messages: $('messages'),
  chatError: $('chat-error'),
  sendForm: $('send-form'),
  text: input('text'),
};

// ---------------------------------------------------------------------------------------------
// State

/** @type {WebSocket | null} */
let ws = null;
let attempt = 0;
/** Reconnects scheduled since the page loaded (body[data-reconnects], for people and tests). */
let reconnects = 0;
/** @type {ReturnType<typeof setTimeout> | null} */
let retryTimer = null;
/** The user left on purpose: the next connection starts at the menu, at once. */
let leaving = false;
/** @type {Session | null} */
let session = null;
/** Every seq rendered (messages and own acknowledged sends): nothing is shown twice. */
const seen = new Set();
/**
 * The resume point: every seq up to it has been received (or was before the join). Own acks do
 * not jump it past a message still on its way, so a resume never skips one.
 */
let watermark = 0;
/** `joined` from a resume: its replay is running until the `members` that answers our `who`. */
let replaying = false;
/** The group's latest seq when the resume was answered. */
let resumedAt = 0;
/** The group's latest seq when this page joined: 0 for a new group, which has nothing older. */
let joinedAt = 0;
/** @type {'join' | 'create' | null} a menu request in flight */
let menuRequest = null;
/** @type {'idle' | 'loading' | 'none' | 'unsupported'} */
let olderState = 'idle';
/** @type {Map<string, Pending>} own messages not yet acknowledged, by client id, in send order */
const pending = new Map();
let nextId = 1;
/** name → how many sessions of that name are online */
let online = new Map();

// ---------------------------------------------------------------------------------------------
// Connection

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`;
}

/** @param {'connecting' | 'online' | 'reconnecting' | 'offline'} state @param {string} text */
function setStatus(state, text) {
  ui.status.dataset['state'] = state;
  ui.status.textContent = text;
  document.body.dataset['conn'] = state;
  const usable = state === 'online';
  ui.createBtn.disabled = !usable || menuRequest !== null;
  ui.joinBtn.disabled = !usable || menuRequest !== null;
}

function connect() {
  retryTimer = null;
  setStatus(attempt === 0 && !session ? 'connecting' : 'reconnecting', attempt === 0 && !session ? 'Connecting…' : 'Reconnecting…');
  let sock;
  try {
    sock = new WebSocket(wsUrl(), 'chat.json');
  } catch {
    scheduleReconnect();
    return;
  }
  ws = sock;
  const openTimer = setTimeout(() => sock.close(), CONNECT_TIMEOUT_MS);
  sock.onopen = () => {
    clearTimeout(openTimer);
    if (session) {
      // Back in the group with the token, from the last seq we hold: the gap is replayed.
      replaying = true;
      send({ op: 'resume', token: session.token, since: watermark });
      send({ op: 'who' });
    }
  };
  sock.onmessage = (ev) => {
    if (typeof ev.data !== 'string') return;
    /** @type {unknown} */
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (frame && typeof frame === 'object') handle(/** @type {Record<string, any>} */ (frame));
  };
  sock.onclose = () => {
    clearTimeout(openTimer);
    if (ws !== sock) return;
    ws = null;
    menuRequest = null;
    olderState = olderState === 'loading' ? 'idle' : olderState;
    // Unacknowledged: matched against the resume's replay, or sent again after it.
    for (const p of pending.values()) {
      if (p.sent) p.unsure = true;
      p.sent = false;
    }
    if (leaving) {
      leaving = false;
      attempt = 0;
      connect();
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (retryTimer !== null) return;
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const wait = Math.round(cap / 2 + Math.random() * (cap / 2));
  attempt++;
  reconnects++;
  document.body.dataset['reconnects'] = String(reconnects);
  setStatus('reconnecting', session ? 'Connection lost. Reconnecting…' : 'Reconnecting…');
  retryTimer = setTimeout(connect, wait);
}

/** @param {Record<string, unknown>} op */
function send(op) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(op));
  return true;
}

// The browser knows the network came back: do not wait for the backoff.
window.addEventListener('online', () => {
  if (retryTimer !== null) {
    clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }
});

// ---------------------------------------------------------------------------------------------
// Events from the server

/** @param {Record<string, any>} ev */
function handle(ev) {
  switch (ev['type']) {
    case 'menu':
      if (!session) {
        attempt = 0;
        setStatus('online', 'Connected');
        showMenu();
      }
      break;
    case 'created':
      break; // `joined` follows, and says it
    case 'joined':
      onJoined(ev);
      break;
    case 'message':
      onMessage(/** @type {ChatMessage} */ (ev), false);
      break;
    case 'history':
      onHistory(ev);
      break;
    case 'ack':
      onAck(String(ev['id']), Number(ev['seq']));
      break;
    case 'member_joined':
      if (!replaying || String(ev['name']) !== session?.name) addNotice(`${String(ev['name'])} has joined the chat!`, 'joined');
      changeMember(String(ev['name']), 1);
      break;
    case 'member_left':
      addNotice(`${String(ev['name'])} has left the chat.`, 'left');
      changeMember(String(ev['name']), -1);
      break;
    case 'members':
      setMembers(Array.isArray(ev['names']) ? ev['names'].map(String) : []);
      if (replaying) {
        // The resume's replay is over: everything up to the group's seq at the resume is here
        // (or no longer held), so later resumes start from there.
        replaying = false;
        watermark = Math.max(watermark, resumedAt);
        advance();
        flushPending();
      } else if (olderState === 'idle' && ui.log.scrollHeight <= ui.log.clientHeight) {
        loadOlder(); // the log does not fill the screen, so it cannot be scrolled: fetch the page above now
      }
      break;
    case 'group_closed':
      addNotice(`Chat ${String(ev['groupId'])} has been closed.`, 'left');
      endSession();
      showMenu();
      showError(ui.menuError, `Chat ${String(ev['groupId'])} has been closed.`);
      break;
    case 'error':
      onError(String(ev['code']), typeof ev['message'] === 'string' ? ev['message'] : '', ev['id']);
      break;
    case 'bye':
      break;
    default:
      break; // an event this page does not know yet: ignored
  }
}

/** @param {Record<string, any>} ev */
function onJoined(ev) {
  const groupId = String(ev['groupId']);
  const resumed = session !== null && session.groupId === groupId && replaying;
  const created = menuRequest === 'create';
  session = { groupId, name: String(ev['name']), token: String(ev['token']) };
  attempt = 0;
  menuRequest = null;
  setStatus('online', 'Connected');
  hideError(ui.chatError);
  if (resumed) {
    resumedAt = Number(ev['seq']) || 0; // every message after the watermark, up to this, follows
    return;
  }
  // A fresh join or create: a new log. The replay that follows is the recent history.
  ui.messages.replaceChildren();
  seen.clear();
  for (const p of pending.values()) p.li.remove();
  pending.clear();
  watermark = Number(ev['seq']) || 0;
  joinedAt = watermark;
  olderState = 'idle';
  renderOlder();
  setMembers([]);
  ui.groupTitle.textContent = `Group ${groupId}`;
  document.title = `Group ${groupId} · chat`;
  hideError(ui.menuError);
  showChat();
  if (created) addNotice(`Chat ${groupId} has been created. Share its ID and password to invite others.`, 'created');
  else addNotice(`Hi ${session.name}! welcome to group ${groupId}!`, 'joined');
  send({ op: 'who' });
  ui.text.focus();
}

/**
 * @param {ChatMessage} m
 * @param {boolean} older from a history page: goes above what is shown
 */
function onMessage(m, older) {
  const seq = Number(m.seq);
  if (!Number.isSafeInteger(seq) || seen.has(seq)) return;
  // During a resume, our own message that was sent but not acknowledged comes back here: it is that one.
  if (replaying && session && m.from === session.name) {
    for (const p of pending.values()) {
      if (p.unsure && p.text.trim() === String(m.text).trim()) {
        pending.delete(p.id);
        confirm(p, seq, m.ts);
        advance();
        return;
      }
    }
  }
  seen.add(seq);
  const stick = nearBottom();
  insertBySeq(messageItem(m, session !== null && m.from === session.name && !m.api), seq, older);
  advance();
  if (!older && stick) scrollToBottom();
  renderOlder();
}

/** Move the watermark over every seq now held without a hole. */
function advance() {
  while (seen.has(watermark + 1)) watermark++;
}

/** @param {Record<string, any>} ev */
function onHistory(ev) {
  const msgs = Array.isArray(ev['messages']) ? ev['messages'] : [];
  const before = ui.log.scrollHeight;
  for (let i = msgs.length - 1; i >= 0; i--) onMessage(/** @type {ChatMessage} */ (msgs[i]), true);
  ui.log.scrollTop += ui.log.scrollHeight - before; // keep what the reader was looking at in place
  olderState = ev['more'] === true ? 'idle' : 'none';
  renderOlder();
  if (olderState === 'idle' && ui.log.scrollHeight <= ui.log.clientHeight) loadOlder(); // still no scrollbar
}

/** @param {string} id @param {number} seq */
function onAck(id, seq) {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  confirm(p, seq, Date.now());
  advance();
}

/** @param {Pending} p @param {number} seq @param {number} ts */
function confirm(p, seq, ts) {
  seen.add(seq);
  p.li.classList.remove('pending', 'failed');
  p.li.dataset['seq'] = String(seq);
  const time = p.li.querySelector('time');
  if (time) setTime(time, ts);
  // Usually already in its place; when another member's message got ahead of it, moved.
  const prev = neighbour(p.li, -1);
  const next = neighbour(p.li, 1);
  if ((prev === null || prev < seq) && (next === null || next > seq)) return;
  p.li.remove();
  insertBySeq(p.li, seq, false);
}

/**
 * The seq of the nearest message before (-1) or after (1) this item, or null.
 * @param {Element} li @param {number} dir
 */
function neighbour(li, dir) {
  for (let el = dir < 0 ? li.previousElementSibling : li.nextElementSibling; el; el = dir < 0 ? el.previousElementSibling : el.nextElementSibling) {
    const seq = /** @type {HTMLElement} */ (el).dataset['seq'];
    if (seq !== undefined) return Number(seq);
  }
  return null;
}

/**
 * @param {string} code
 * @param {string} message the server's own wording (shown as text)
 * @param {unknown} id a refused send's client id
 */
function onError(code, message, id) {
  const known = /** @type {Record<string, string>} */ (ERROR_TEXT)[code];
  let text = known ?? `Error: ${code}`;
  if (code === 'invalid_input' && message) text = `${text}: ${message}`;
  if (id !== undefined && id !== null) {
    const p = pending.get(String(id));
    if (p) {
      pending.delete(p.id);
      p.li.classList.remove('pending');
      p.li.classList.add('failed');
      p.li.title = text;
    }
    showError(ui.chatError, text);
    return;
  }
  if (olderState === 'loading' && (code === 'invalid_input' || code === 'not_joined')) {
    // This server does not page history (an older gateway): say so once, stop asking.
    olderState = code === 'invalid_input' ? 'unsupported' : 'idle';
    renderOlder();
    return;
  }
  if (code === 'not_joined' && !session) return; // the `who` after a refused resume: already handled
  if (code === 'invalid_token' || code === 'not_joined') {
    const groupId = session?.groupId ?? '';
    replaying = false;
    endSession();
    showMenu();
    ui.joinId.value = groupId;
    showError(ui.menuError, text);
    return;
  }
  if (menuRequest !== null || !session) {
    menuRequest = null;
    setStatus('online', 'Connected');
    showError(ui.menuError, text);
    if (code === 'wrong_password') ui.joinPassword.select();
    if (code === 'unknown_group') ui.joinId.select();
    return;
  }
  showError(ui.chatError, text);
}

// ---------------------------------------------------------------------------------------------
// Rendering (text only: textContent everywhere)

/** @param {ChatMessage} m @param {boolean} mine */
function messageItem(m, mine) {
  const li = document.createElement('li');
  li.className = mine ? 'msg mine' : 'msg';
  li.dataset['seq'] = String(m.seq);
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = String(m.from);
  li.append(from);
  if (m.api === true) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'API';
    li.append(badge);
  }
  const time = document.createElement('time');
  setTime(time, Number(m.ts));
  li.append(time);
  const text = document.createElement('p');
  text.className = 'text';
  text.textContent = String(m.text);
  li.append(text);
  return li;
}

/** @param {HTMLElement} time @param {number} ts */
function setTime(time, ts) {
  const d = new Date(Number.isFinite(ts) ? ts : Date.now());
  time.setAttribute('datetime', d.toISOString());
  time.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * In seq order among the messages; notices and pending sends stay where they arrived. A live
 * message goes right before the first message with a greater seq (at the end, almost always);
 * an older one from a history page goes at the very top.
 * @param {HTMLLIElement} li @param {number} seq @param {boolean} older
 */
function insertBySeq(li, seq, older) {
  const items = [...ui.messages.querySelectorAll('li[data-seq]')].filter((el) => el !== li);
  let i = items.length;
  while (i > 0 && Number(/** @type {HTMLElement} */ (items[i - 1]).dataset['seq']) > seq) i--;
  const next = items[i];
  if (next === undefined) ui.messages.append(li);
  else if (i === 0 && older) ui.messages.prepend(li);
  else next.before(li);
}

/** @param {string} text @param {string} kind */
function addNotice(text, kind) {
  const stick = nearBottom();
  const li = document.createElement('li');
  li.className = `notice ${kind}`;
  li.textContent = text;
  ui.messages.append(li);
  if (stick) scrollToBottom();
}

function renderOlder() {
  const oldest = oldestSeq();
  let state = olderState;
  if (state === 'idle' && (oldest === null ? joinedAt === 0 : oldest <= 1)) state = 'none';
  ui.older.dataset['state'] = state;
  ui.older.disabled = state !== 'idle';
  ui.older.textContent =
    state === 'loading' ? 'Loading older messages…' : state === 'none' ? 'This is the beginning of the chat' : state === 'unsupported' ? 'Older messages are not available on this server' : 'Load older messages';
}

/** @returns {number | null} */
function oldestSeq() {
  const first = /** @type {HTMLElement | null} */ (ui.messages.querySelector('li[data-seq]'));
  return first ? Number(first.dataset['seq']) : null;
}

function loadOlder() {
  if (!session || olderState !== 'idle') return;
  const oldest = oldestSeq();
  if (oldest === null ? joinedAt === 0 : oldest <= 1) return renderOlder();
  /** @type {Record<string, unknown>} */
  const op = { op: 'history', limit: PAGE_SIZE };
  if (oldest !== null) op['before'] = oldest;
  if (!send(op)) return;
  olderState = 'loading';
  renderOlder();
}

/** @param {string[]} names */
function setMembers(names) {
  online = new Map();
  for (const n of names) online.set(n, (online.get(n) ?? 0) + 1);
  renderMembers();
}

/** @param {string} name @param {number} delta */
function changeMember(name, delta) {
  const n = (online.get(name) ?? 0) + delta;
  if (n > 0) online.set(name, n);
  else online.delete(name);
  renderMembers();
}

function renderMembers() {
  const names = [...online.keys()].sort((a, b) => a.localeCompare(b));
  ui.members.replaceChildren(
    ...names.map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      if (session && n === session.name) li.classList.add('me');
      return li;
    }),
  );
  ui.memberCount.textContent = String(names.length);
}

function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 64;
}

function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

/** @param {HTMLElement} el @param {string} text */
function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

/** @param {HTMLElement} el */
function hideError(el) {
  el.hidden = true;
  el.textContent = '';
}

function showMenu() {
  document.body.dataset['view'] = 'menu';
  ui.menu.hidden = false;
  ui.chat.hidden = true;
  document.title = 'Group chat';
}

function showChat() {
  document.body.dataset['view'] = 'chat';
  ui.menu.hidden = true;
  ui.chat.hidden = false;
}

function endSession() {
  session = null;
  replaying = false;
  pending.clear();
}

// ---------------------------------------------------------------------------------------------
// Sending

/** Own messages: shown at once as pending, confirmed by `ack` (or by the replay after a drop). */
function sendMessage() {
  const text = ui.text.value;
  if (text.trim() === '' || !session) return;
  const id = `m${nextId++}`;
  const li = messageItem({ seq: 0, from: session.name, text, ts: Date.now() }, true);
  delete li.dataset['seq'];
  li.classList.add('pending');
  ui.messages.append(li);
  scrollToBottom();
  /** @type {Pending} */
  const p = { id, text, li, sent: false, unsure: false };
  pending.set(id, p);
  ui.text.value = '';
  hideError(ui.chatError);
  if (!replaying) p.sent = send({ op: 'send', text, id });
}

/** After a resume's replay: what is still unacknowledged goes (again), in order. */
function flushPending() {
  for (const p of pending.values()) {
    if (p.sent) continue;
    p.unsure = false;
    p.sent = send({ op: 'send', text: p.text, id: p.id });
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.createForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const password = ui.createPassword.value;
  if (name === '') return showError(ui.menuError, 'Enter your name.'), ui.name.focus();
  if (password === '') return showError(ui.menuError, 'Choose a password for the group.'), ui.createPassword.focus();
  hideError(ui.menuError);
  if (send({ op: 'create', name, password })) {
    menuRequest = 'create';
    setStatus('online', 'Creating the group…');
  }
});

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const groupId = ui.joinId.value.trim();
  const password = ui.joinPassword.value;
  if (name === '') return showError(ui.menuError, 'Enter your name.'), ui.name.focus();
  if (groupId === '') return showError(ui.menuError, 'Enter the group ID.'), ui.joinId.focus();
  if (password === '') return showError(ui.menuError, 'Enter the group password.'), ui.joinPassword.focus();
  hideError(ui.menuError);
  if (send({ op: 'join', name, groupId, password })) {
    menuRequest = 'join';
    setStatus('online', 'Joining…');
  }
});

ui.sendForm.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
});

ui.leaveBtn.addEventListener('click', () => {
  endSession();
  showMenu();
  if (ws && ws.readyState === WebSocket.OPEN) {
    leaving = true;
    send({ op: 'exit' }); // bye, then the server closes; the next connection starts at the menu
  }
});

ui.older.addEventListener('click', loadOlder);
ui.log.addEventListener('scroll', () => {
  if (ui.log.scrollTop < NEAR_TOP_PX) loadOlder();
});

ui.membersToggle.addEventListener('click', () => {
  const open = ui.membersPanel.classList.toggle('open');
  ui.membersToggle.setAttribute('aria-expanded', String(open));
});

connect();
