// The terminal client (src/main.ts) through a dropped link: over ws:// and wss:// (HAProxy, Redis,
// three gateways) it resumes by itself when its gateway is killed (SIGKILL, by PID), shows the
// seed's words and no gap and no duplicate; over tcp:// it reconnects to the menu and says so.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../../gateway/src/protocol/text.js';
import { TEST_CHAT_SECRET } from '../../gateway/test/helpers/engines.js';
import { startGateway, tempDir, type Gateway } from '../../gateway/test/helpers/gateway.js';
import { RedisServer } from '../../gateway/test/helpers/redis.js';
import { makeCerts, startTlsBalancer, type TlsBalancer } from '../../gateway/test/helpers/tls.js';
import { Inbox, until, within } from '../../gateway/test/helpers/wait.js';
import { ResumingClient, type ChatMessage } from '../src/resume.js';
import { MuteRelay } from './relay.js';

const CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), '../src/main.js');
const MENU = T.MENU.split('\n');

interface Terminal {
  say: (l: string) => void;
  hear: (s: string, ms?: number) => Promise<string>;
  /** Every line printed so far. */
  all: string[];
  end: () => Promise<number | null>;
  kill: () => void;
}

function runClient(url: string, extra: string[] = []): Terminal {
  const p = spawn(process.execPath, [CLIENT, url, ...extra], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = new Inbox<string>();
  const all: string[] = [];
  let buf = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      all.push(line);
      out.push(line);
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
  return {
    say: (l) => p.stdin.write(l + '\n'),
    hear: (s, ms = 10_000) => out.next(ms, JSON.stringify(s), (l) => l === s),
    all,
    end: () => within(exited, 10_000, 'client exit'),
    kill: () => void p.kill('SIGKILL'),
  };
}

const count = (lines: string[], line: string): number => lines.filter((l) => l === line).length;

describe('terminal client: a dropped link', () => {
  let redis: RedisServer;
  let gws: Gateway[] = [];
  let lb: TlsBalancer;
  let caFile = '';
  const killed = new Set<Gateway>();

  before(async () => {
    redis = await RedisServer.start();
    const env = { REDIS_URL: redis.url, CHAT_SECRET: TEST_CHAT_SECRET, TRUSTED_PROXIES: '127.0.0.1', DRAIN_SECONDS: '1' };
    gws = [];
    for (let i = 1; i <= 3; i++) gws.push(await startGateway({ env: { ...env, NODE_ID: `gw${i}` } }));
    const certs = makeCerts();
    caFile = join(tempDir('chat-ca-'), 'ca.pem');
    writeFileSync(caFile, certs.ca);
    lb = await startTlsBalancer(gws, certs);
  });
  after(async () => {
    await lb?.stop();
    for (const g of gws) await g.stop('SIGKILL').catch(() => undefined);
    await redis?.close();
  });

  /** The live gateway whose log shows `name` joining (the terminal's JSON connection). */
  const nodeOf = async (name: string): Promise<Gateway> => {
    let found: Gateway | undefined;
    await until(
      () => {
        found = gws.find((g) => !killed.has(g) && g.output.some((l) => l.includes('[NEW MEMBER]') && l.includes(`"name":"${name}"`)));
        return found !== undefined;
      },
      5000,
      `the node ${name} joined on`,
    );
    return found as Gateway;
  };

  for (const scheme of ['ws', 'wss'] as const) {
    test(`${scheme}://: its gateway killed, the terminal resumes on another: a notice, no gap, no duplicate, the seed's words`, async () => {
      // Ann writes through the library straight to the gateways (she resumes too if hers is the one killed).
      const live = gws.filter((g) => !killed.has(g));
      const ann = new ResumingClient({ url: live.map((g) => g.wsUrl), backoff: { initialMs: 20, maxMs: 500 } });
      const annGot = new Inbox<ChatMessage>();
      ann.on('message', (m) => annGot.push(m));
      await ann.connect();
      const { groupId } = await ann.create('Ann', 'pw');
      const name = scheme === 'ws' ? 'Bob' : 'Cy';
      const url = scheme === 'ws' ? `ws://127.0.0.1:${lb.ws}/` : `wss://localhost:${lb.wss}/`;
      const term = runClient(url, scheme === 'wss' ? ['--ca', caFile] : []);
      try {
        await term.hear(MENU[3] as string);
        for (const l of ['1', name, groupId]) term.say(l);
        await term.hear(T.ENTER_PASSWORD);
        term.say('pw');
        await term.hear(T.welcome(name, groupId));
        await ann.send('hello');
        await term.hear('Ann: hello');

        const node = await nodeOf(name);
        killed.add(node);
        node.proc.kill('SIGKILL');
        // Ann speaks while the terminal is cut off: it must arrive after the resume, once.
        const during = ann.send('while you were away');
        await term.hear(T.CLIENT_RECONNECTING);
        await term.hear(T.CLIENT_RESUMED, 20_000);
        await within(during, 15_000, 'Ann’s send acked');
        await term.hear('Ann: while you were away');
        term.say('I am back');
        const back = await annGot.next(10_000, 'the terminal’s line at Ann', (m) => m.text === 'I am back');
        assert.equal(back.from, name);
        await ann.send('welcome back');
        await term.hear('Ann: welcome back');
        term.say('/quit');
        await term.hear(T.DISCONNECTED);
        assert.equal(await term.end(), 0);

        // The seed's words, each once: no replayed line came twice, nothing of the JSON underneath showed.
        const lines = term.all;
        for (const l of ['Ann: hello', 'Ann: while you were away', 'Ann: welcome back', T.welcome(name, groupId)])
          assert.equal(count(lines, l), 1, `${JSON.stringify(l)} once in ${JSON.stringify(lines)}`);
        assert.deepEqual(lines.slice(0, 4), MENU);
        assert.ok(!lines.some((l) => l.startsWith('{')), 'no JSON on the screen');
        assert.ok(lines.indexOf('Ann: while you were away') > lines.indexOf(T.CLIENT_RESUMED));
      } finally {
        term.kill();
        await ann.close();
      }
    });
  }

  test('tcp://: a dropped link reconnects to the menu and says so', async () => {
    const live = gws.find((g) => !killed.has(g)) as Gateway;
    const relay = await MuteRelay.start(live.tcpPort, { proxyV1: true });
    const term = runClient(`tcp://127.0.0.1:${relay.port}`);
    try {
      await term.hear(MENU[3] as string);
      term.say('2');
      await term.hear(T.ENTER_NAME);
      relay.cut();
      await term.hear(T.CLIENT_RECONNECTING_MENU);
      await term.hear(MENU[3] as string);
      assert.equal(count(term.all, MENU[0] as string), 2, 'the menu again, on a new connection');
      term.say('3');
      await term.hear(T.DISCONNECTED);
      assert.equal(await term.end(), 0, 'a goodbye is not a drop: no reconnect');
    } finally {
      term.kill();
      await relay.close();
    }
  });
});
