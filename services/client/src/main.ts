// A terminal client for the chat, like the seed's client.py but on any transport:
//   node dist/services/client/src/main.js                      TCP 127.0.0.1:7037 (the seed's wire)
//   node dist/services/client/src/main.js tcp://host:7037
//   node dist/services/client/src/main.js ws://host:8080/       WebSocket
//   node dist/services/client/src/main.js wss://host:8443/      WebSocket over TLS
//   node dist/services/client/src/main.js tls://host:7443       the line protocol over TLS
//   … --ca FILE   also trust this CA (PEM), e.g. the local CA `make cluster` writes to .cluster/tls/ca.pem
// TLS always verifies the server's certificate chain and name.
// Type the answers to the prompts, then chat; `/who` lists members, `/quit` leaves.
// Everything is shown in the seed's words (the server strips control characters).
//
// Dropped links (docs/CLIENT.md):
// - ws:// and wss:// resume by themselves. The menu and its prompts run over the text protocol
//   (chat.text: the server's own flow, word for word); the answer to the password prompt goes out
//   as a JSON `join` or `create` instead (chat.json, through resume.ts), so the client holds a resume
//   token. In the chat a drop prints a short notice, the client reconnects with backoff and resumes
//   with its token and last seq, resends what was not acked, and the chat goes on with no gap.
// - tcp:// and tls:// have no token: a drop reconnects to the menu, and says so.
import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { connect as tlsConnect, rootCertificates } from 'node:tls';
import WebSocket from 'ws';
import * as T from '../../gateway/src/protocol/text.js';
import { ChatError, ResumingClient } from './resume.js';

const args = process.argv.slice(2);
const lines = createInterface({ input: process.stdin, terminal: false });
const print = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n');
const fail = (why: string): never => {
  process.stderr.write(`client: ${why}\n`);
  process.exit(1);
};

function parseTarget(t: string): URL {
  try {
    return new URL(t);
  } catch {
    return fail(`not a URL: ${t} (use tcp://host:port, tls://host:port, ws://host:port/ or wss://host:port/)`);
  }
}

const caAt = args.indexOf('--ca');
const caFile = caAt >= 0 ? (args.splice(caAt, 2)[1] ?? fail('--ca needs a file (PEM)')) : process.env['CHAT_CA_FILE'];
const target = args[0] ?? 'tcp://127.0.0.1:7037';
const url = parseTarget(target);
/** The public roots plus the given CA (a local CA must not make public certificates fail). */
const ca = ((): string[] | undefined => {
  if (!caFile) return undefined;
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')];
  } catch (e) {
    return fail(`cannot read CA file ${caFile}: ${(e as Error).message}`);
  }
})();
const host = url.hostname.replace(/^\[|\]$/g, '');

/** Reconnects without a token: exponential backoff with full jitter, bounded like the library's. */
const RETRY = { initialMs: 100, maxMs: 5000, maxAttempts: 30 };
const retryDelay = (attempt: number): number => Math.floor(Math.random() * Math.min(RETRY.maxMs, RETRY.initialMs * 2 ** (attempt - 1)));
/** What the server says last before it closes on purpose: no reconnect after these. */
const GOODBYES = [T.DISCONNECTED, T.NO_CHATS, T.IDLE_TIMEOUT];

if (url.protocol === 'tcp:' || url.protocol === 'tls:') lineClient();
else if (url.protocol === 'ws:' || url.protocol === 'wss:') wsClient();
else fail(`unsupported scheme ${url.protocol} (use tcp://, tls://, ws:// or wss://)`);

/** tcp:// and tls://: the server's bytes as they come; a drop reconnects to the menu. */
function lineClient(): void {
  const port = Number(url.port || (url.protocol === 'tls:' ? 7443 : 7037));
  let socket: Socket | null = null;
  let connected = false;
  let attempt = 0;
  let inputEnded = false;
  /** The end of what the server said, to tell a goodbye from a drop. */
  let tail = '';
  const open = (): void => {
    const s: Socket =
      url.protocol === 'tls:'
        ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}) })
        : connect({ host, port });
    socket = s;
    tail = '';
    s.setEncoding('utf8');
    s.once(url.protocol === 'tls:' ? 'secureConnect' : 'connect', () => {
      connected = true;
      attempt = 0;
    });
    s.on('data', (d: string) => {
      process.stdout.write(d);
      tail = (tail + d).slice(-512);
    });
    s.on('error', (e) => {
      if (!connected) fail(e.message);
    });
    s.on('close', () => {
      if (inputEnded || GOODBYES.some((g) => tail.includes(g))) process.exit(0);
      if (++attempt > RETRY.maxAttempts) {
        print(T.CLIENT_GAVE_UP);
        process.exit(1);
      }
      if (attempt === 1) print(T.CLIENT_RECONNECTING_MENU);
      socket = null;
      setTimeout(open, retryDelay(attempt));
    });
  };
  open();
  // Lines typed while the link is down (between a drop and the next try) would land at the new menu
  // as answers: they are dropped. Lines typed while a socket is connecting wait for it (piped answers).
  lines.on('line', (l) => {
    if (socket && !socket.destroyed && socket.writable) socket.write(l + '\n');
  });
  lines.on('close', () => {
    inputEnded = true;
    if (socket) socket.end();
    else process.exit(0);
  });
}

/**
 * ws:// and wss://. Phases: `menu` (the text protocol's own menu and prompts, one answer at a
 * time), then `auth` (the password goes out as a JSON join/create), then `chat` (JSON, resuming).
 */
function wsClient(): void {
  const wsOptions: WebSocket.ClientOptions = ca ? { ca } : {};
  const queue: string[] = [];
  let inputEnded = false;
  let phase: 'menu' | 'auth' | 'chat' | 'done' = 'menu';

  // ---- the menu, over chat.text ----
  let text: WebSocket | null = null;
  let everOpen = false;
  let attempt = 0;
  /** An answer is out and its reply not yet in (the menu's prompts answer every line with one frame). */
  let awaiting = false;
  let lastFrame = '';
  let lastSent = '';
  let goodbye = false;
  const auth = { name: '', groupId: '', mode: 'join' as 'join' | 'create' };

  const openMenu = (): void => {
    phase = 'menu';
    awaiting = false;
    goodbye = false;
    const ws = new WebSocket(url, ['chat.text'], wsOptions);
    text = ws;
    ws.on('open', () => {
      everOpen = true;
      attempt = 0;
    });
    ws.on('message', (d) => {
      if (text !== ws) return;
      const s = d.toString();
      print(s);
      awaiting = false;
      lastFrame = s;
      if (s === T.ENTER_GROUP_ID) auth.name = lastSent;
      else if (s === T.ENTER_NEW_PASSWORD) Object.assign(auth, { name: lastSent, mode: 'create' });
      else if (s === T.ENTER_PASSWORD) Object.assign(auth, { groupId: lastSent, mode: 'join' });
      if (GOODBYES.includes(s)) goodbye = true;
      pump();
    });
    ws.on('error', (e) => {
      if (!everOpen) fail(e.message);
    });
    ws.on('close', () => {
      if (text !== ws) return; // closed by us on the way to the chat
      text = null;
      if (goodbye || inputEnded) process.exit(0);
      if (++attempt > RETRY.maxAttempts) {
        print(T.CLIENT_GAVE_UP);
        process.exit(1);
      }
      if (attempt === 1) print(T.CLIENT_RECONNECTING_MENU);
      queue.length = 0; // answers typed for the old menu do not fit the new one
      setTimeout(openMenu, retryDelay(attempt));
    });
  };

  // ---- the chat, over chat.json ----
  let client: ResumingClient | null = null;
  /** After a refused join: the group vanished, so the next line is a group ID (then the password again). */
  let wantGroupId = false;

  const startClient = async (): Promise<ResumingClient> => {
    if (client && !client.isClosed) return client;
    const c = new ResumingClient({ url: url.toString(), ws: wsOptions });
    client = c;
    let outage = false;
    c.on('joined', (j) => {
      phase = 'chat';
      print(j.via === 'create' ? T.chatCreated(j.groupId) : T.welcome(j.name, j.groupId));
    });
    c.on('message', (m) => {
      if (!m.own) print(T.chatLine(m.from, m.text));
    });
    c.on('member_joined', (m) => print(T.memberJoined(m.name)));
    c.on('member_left', (m) => print(T.memberLeft(m.name)));
    c.on('reconnecting', () => {
      if (phase !== 'chat' || outage) return;
      outage = true;
      print(T.CLIENT_RECONNECTING);
    });
    c.on('resumed', () => {
      outage = false;
      print(T.CLIENT_RESUMED);
    });
    c.on('gap', (g) => print(T.clientMissed(g.from, g.to)));
    c.on('server_error', (e) => print(e.message));
    c.on('resume_failed', (e) => {
      print(e.message);
      void backToMenu();
    });
    c.on('group_closed', (g) => {
      print(T.chatClosed(g.groupId));
      void backToMenu();
    });
    c.on('closed', ({ reason }) => {
      if (client !== c) return;
      if (reason === 'bye') {
        print(T.DISCONNECTED);
        process.exit(0);
      }
      if (reason === 'gave_up') {
        print(T.CLIENT_GAVE_UP);
        process.exit(1);
      }
      if (reason === 'no_groups') process.exit(0);
    });
    await c.connect();
    return c;
  };

  const backToMenu = async (): Promise<void> => {
    const c = client;
    client = null;
    await c?.close();
    queue.length = 0;
    openMenu();
  };

  /** The answer to a password prompt: a JSON join or create, then the chat (or the refusal's words). */
  const authenticate = async (password: string): Promise<void> => {
    phase = 'auth';
    let c: ResumingClient;
    try {
      c = await startClient();
    } catch {
      print(T.UNAVAILABLE);
      return void (await backToMenu());
    }
    try {
      if (auth.mode === 'join') await c.join(auth.name, auth.groupId, password);
      else await c.create(auth.name, password);
    } catch (e) {
      const code = e instanceof ChatError ? e.code : 'unavailable';
      print(e instanceof ChatError && code !== 'closed' ? e.message : T.UNAVAILABLE);
      if (code === 'no_groups') process.exit(0);
      // As the server's text flow: a refused create goes back to the menu; a refused join asks again
      // (the password; or, for a group that went away meanwhile, the group ID first).
      if (auth.mode === 'create') return void (await backToMenu());
      wantGroupId = code === 'unknown_group';
      phase = 'auth';
    }
  };

  const chatLine = async (c: ResumingClient, l: string): Promise<void> => {
    const command = l.trim();
    if (command === T.CMD_QUIT) return void (await c.exit());
    if (command === T.CMD_WHO) {
      try {
        print(T.membersOnline(c.groupId ?? '', await c.who()));
      } catch (e) {
        print(e instanceof ChatError && e.code !== 'unavailable' && e.code !== 'closed' ? e.message : T.UNAVAILABLE);
      }
      return;
    }
    if (command.length === 0) return; // an empty line is not a message
    c.send(l).catch((e: unknown) => {
      if (e instanceof ChatError && e.code !== 'closed') print(e.message);
    });
  };

  /** Feed queued lines to whichever phase holds the input, one at a time where the reply matters. */
  let busy = false;
  const pump = (): void => {
    if (busy) return;
    while (queue.length > 0) {
      if (phase === 'menu') {
        if (awaiting || !text || text.readyState !== WebSocket.OPEN) return;
        const l = queue.shift() as string;
        if (lastFrame === T.ENTER_PASSWORD || lastFrame === T.ENTER_NEW_PASSWORD) {
          // The password goes to the JSON side, not to the text menu.
          const ws = text;
          text = null;
          ws.close(1000);
          busy = true;
          void authenticate(l).finally(() => {
            busy = false;
            pump();
          });
          return;
        }
        lastSent = l;
        awaiting = true;
        text.send(l);
      } else if (phase === 'auth') {
        const l = queue.shift() as string;
        if (wantGroupId) {
          wantGroupId = false;
          auth.groupId = l.trim();
          print(T.ENTER_PASSWORD);
          continue;
        }
        busy = true;
        void authenticate(l).finally(() => {
          busy = false;
          pump();
        });
        return;
      } else if (phase === 'chat' && client) {
        const c = client;
        const l = queue.shift() as string;
        if (l.trim() === T.CMD_WHO || l.trim() === T.CMD_QUIT) {
          busy = true;
          void chatLine(c, l).finally(() => {
            busy = false;
            pump();
          });
          return;
        }
        void chatLine(c, l);
      } else return;
    }
    if (inputEnded) void finishInput();
  };

  /** Input ended (piped answers): once everything typed is out and acked, leave like the seed's client. */
  const finishInput = async (): Promise<void> => {
    if (phase === 'done') return;
    if (phase === 'menu') {
      if (awaiting) return;
      phase = 'done';
      if (text) text.close(1000);
      else process.exit(0);
      return;
    }
    if (phase === 'auth' && busy) return;
    phase = 'done';
    const c = client;
    if (c && c.unacked > 0) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, 10_000);
        const check = (): void => {
          if (c.unacked > 0) return;
          clearTimeout(t);
          c.off('ack', check);
          res();
        };
        c.on('ack', check);
      });
    }
    await c?.close();
    process.exit(0);
  };

  lines.on('line', (l) => {
    queue.push(l);
    pump();
  });
  lines.on('close', () => {
    inputEnded = true;
    pump();
  });
  openMenu();
}
