// Every line a user sees: first the seed chat's exact strings (shared/PROTOCOL.md §1),
// then the extensions, refusals and JSON errors. Trailing spaces are part of the protocol: do not "tidy" them.

export const MENU =
  'Hello client, please choose an option:\n' +
  '1. Connect to a group chat\n' +
  '2. Create a group chat.\n' +
  '3. Exit the server.';

export const MENU_OPTIONS = {
  '1': 'Connect to a group chat',
  '2': 'Create a group chat.',
  '3': 'Exit the server.',
} as const;

export const PLEASE_TRY_AGAIN = 'please try again!';
export const NO_CHATS =
  'You have chosen to connect to a chat, but there are no chats available to connect to. ' +
  'You are disconnected from the server, you can try to connect again later, bye!';
export const ENTER_NAME = 'Enter your name: ';
export const ENTER_GROUP_ID = 'Enter group ID: ';
export const WRONG_ID = 'Wrong ID, try again! ';
export const ENTER_PASSWORD = 'Enter password: ';
export const WRONG_PASSWORD = 'Wrong password. Please try again! ';
export const ENTER_NEW_PASSWORD = 'Enter a new password for your group:';
export const DISCONNECTED = 'You have disconnected from the server.';

export const welcome = (name: string, groupId: string): string => `Hi ${name}! welcome to group ${groupId}!`;
export const chatCreated = (groupId: string): string => `Chat ${groupId} has been created.`;
export const memberJoined = (name: string): string => `${name} has joined the chat!`;
export const memberLeft = (name: string): string => `${name} has left the chat.`;
export const chatLine = (name: string, text: string): string => `${name}: ${text}`;

// Extensions (not in the seed). Kept in the seed's tone and here, beside it.
export const CMD_WHO = '/who';
export const CMD_QUIT = '/quit';
/** Prints the page of history before the oldest line this client has seen. */
export const CMD_HISTORY = '/history';
export const NO_OLDER_MESSAGES = 'No older messages.';
export const membersOnline = (groupId: string, names: readonly string[]): string =>
  `Online in group ${groupId}: ${names.join(', ')}`;
export const INVALID_NAME = 'Names may not be empty, try again! ';
export const NOT_JOINED = 'Join or create a group first';
export const EMPTY_MESSAGE = 'Message text may not be empty';
export const nameTooLong = (max: number): string => `Names may be at most ${max} characters, try again! `;
export const EMPTY_PASSWORD = 'Passwords may not be empty, try again! ';
export const INVALID_INPUT = 'Invalid input (not UTF-8 text), try again! ';
export const TOO_LARGE = 'Message too long, try again! ';
export const RATE_LIMITED = 'You are sending too fast, slow down! ';
export const UNAVAILABLE = 'The chat is unavailable right now, try again later! ';
export const LOCKED = 'Too many wrong passwords for this group, try again later! ';
export const SERVER_RESTARTING = 'The server is restarting, please reconnect.';
export const IDLE_TIMEOUT = 'You have been idle too long, bye!';
export const TOO_MANY_CONNECTIONS = 'Too many connections from your address, try again later!';

// Admission refusals (PROTOCOL.md §3): a refused create goes back to the menu, a refused join back to the password prompt.
export const CREATE_BUDGET = 'You have created too many groups for now, try again later! ';
export const AUTH_BUDGET = 'Too many password attempts from your address, try again later! ';
export const BUSY = 'The server is busy checking passwords, try again in a moment! ';
export const GROUP_LIMIT = 'No more groups can be created right now, try again later! ';
export const INPUT_QUEUE_FULL = 'You are sending faster than the server can read, slow down! ';
export const INVALID_TOKEN = 'Invalid or expired resume token, join again with the password.';
export const chatClosed = (groupId: string): string => `Chat ${groupId} has been closed.`;

// JSON protocol errors (PROTOCOL.md §3): what a JSON client is told about a frame it got wrong.
export const FRAME_NOT_JSON = 'Frame is not valid JSON';
export const FRAME_NOT_OBJECT = 'Frame must be a JSON object';
export const CREATE_FIELDS = 'create needs string "name" and "password"';
export const JOIN_FIELDS = 'join needs "name", "groupId" and "password"';
export const SINCE_FIELD = '"since" must be a non-negative integer';
export const RESUME_FIELDS = 'resume needs "token" and a non-negative integer "since"';
export const SEND_FIELDS = 'send needs a string "text"';
export const HISTORY_FIELDS = '"before" and "limit" must be positive integers';
export const UNKNOWN_OP = 'Unknown op: expected create, join, resume, send, who, history or exit';

// The server HTTP API (PROTOCOL.md §3b): the `message` of its `{"error", "message"}` answers.
export const API_UNAUTHORIZED = 'Missing or wrong API key (Authorization: Bearer <key>)';
export const API_NO_ROUTE = 'No such API route';
export const API_NO_GROUP = 'No such group';
export const API_BODY_JSON = 'The body must be a JSON object in UTF-8';
export const API_TOO_LARGE = 'The body is too large';
export const API_CREATE_FIELDS = 'Needs a non-empty string "password"';
export const API_MESSAGE_FIELDS = 'Needs string "from" and "text"';
export const API_BUSY = 'Too many API calls in progress, try again';

// HTTP answers on PORT and METRICS_PORT (health, refused upgrades, unknown paths).
export const HTTP_OK = 'ok';
export const HTTP_READY = 'ready';
export const HTTP_DRAINING = 'draining';
export const HTTP_ENGINE_DOWN = 'engine unavailable';
export const HTTP_NOT_FOUND = 'not found';
export const HTTP_ORIGIN_REFUSED = 'origin not allowed';
export const HTTP_BAD_SUBPROTOCOL = 'unsupported subprotocol: use chat.text or chat.json';
export const HTTP_METRICS_FAILED = 'metrics failed';

// WebSocket close reasons (the phrase in the close frame; TCP clients get a line and FIN instead).
export const CLOSE_INPUT_QUEUE_FULL = 'input queue full';
export const CLOSE_RATE_LIMIT = 'rate limit';
export const CLOSE_INTERNAL_ERROR = 'internal error';
export const CLOSE_MENU_TIMEOUT = 'menu timeout';
export const CLOSE_RESTARTING = 'server restarting';

// The terminal client's own notices (services/client/src/main.ts): what it prints about its link,
// in the seed's tone. The server never sends these.
export const CLIENT_RECONNECTING = 'Connection lost, reconnecting...';
export const CLIENT_RESUMED = 'Reconnected, the chat goes on.';
export const CLIENT_RECONNECTING_MENU = 'Connection lost, reconnecting to the menu (this connection cannot resume a chat)...';
export const CLIENT_GAVE_UP = 'Could not reconnect to the server, bye!';
export const clientMissed = (from: number, to: number): string =>
  to > from ? `(messages ${from} to ${to} could not be recovered)` : `(message ${from} could not be recovered)`;
export const CLOSE_UNAVAILABLE = 'chat unavailable, try again later';
