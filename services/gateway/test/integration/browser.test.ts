// The web client in a real headless Chromium (the apt package, driven by playwright-core), against
// the real shape: redis-server + three gateways + HAProxy (deploy/haproxy/haproxy.cfg), all started
// here. Every page loads from HAProxy and connects through it; leastconn puts the second page on
// another gateway than the first, which the gateways' own chat_connections gauges confirm.
//   one creates a group, the other joins (after a wrong password); they chat both ways; both
//   member lists show both; the gateway under the phone-sized page is killed (SIGKILL by PID): the
//   page says it is reconnecting, resumes with its token through HAProxy on a live gateway, gets
//   what it missed and chats on; every page shows seqs 1..n once each, in order; the XSS text shows
//   literally (no element made, no dialog: page.on('dialog') fails the test); the CSP and other
//   headers come with the page and nothing breaks it; no horizontal overflow at 375 px.
// SCREENSHOT=docs/web-client.png writes the desktop page's picture (only when asked: CI leaves the tree clean).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { WsClient } from '../helpers/clients.js';
import { gatewayOn } from '../helpers/engines.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { HaProxy, REPO } from '../helpers/haproxy.js';
import { parseMetrics } from '../helpers/proc.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const haveHaproxy = spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
if (process.env['CI'] && !haveChromium) throw new Error(`chromium is required in CI (${CHROMIUM}; scripts/check-deps.sh installs it)`);
if (process.env['CI'] && !haveHaproxy) throw new Error('haproxy is required in CI (scripts/check-deps.sh installs it)');
const skip = (!haveChromium && `no chromium at ${CHROMIUM}`) || (!haveHaproxy && 'haproxy not installed');

const XSS = '<img src=x onerror=alert(1)>';
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const WAIT = 15_000;

let redis: RedisServer;
let gws: Gateway[] = [];
let lb: HaProxy;
let browser: Browser;

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  // HISTORY_REPLAY: a small join replay where the gateway pages history, so the late page scrolls back for the rest.
  gws = await Promise.all([1, 2, 3].map((i) => gatewayOn('redis', { redis, env: { NODE_ID: `gw${i}`, TRUSTED_PROXIES: '127.0.0.1', HISTORY_REPLAY: '2' } })));
  lb = await HaProxy.start(gws);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await lb?.stop();
  await Promise.all(gws.map((g) => g.stop()));
  await redis?.close();
});

/** Open WebSocket JSON connections per gateway, from each one's /metrics (a killed one counts 0). */
async function wsJsonPerGateway(): Promise<number[]> {
  return Promise.all(
    gws.map(async (g) => {
      if (g.proc.exitCode !== null || g.proc.signalCode !== null) return 0;
      const m = parseMetrics(await (await fetch(`http://127.0.0.1:${g.metricsPort}/metrics`)).text());
      return m.get('chat_connections{transport="ws_json"}') ?? 0;
    }),
  );
}

/** The gateway that holds the one connection not in `known`, once the total is `total`. */
async function landed(total: number, known: number[]): Promise<number> {
  let counts: number[] = [];
  await until(
    async () => {
      counts = await wsJsonPerGateway();
      return counts.reduce((a, b) => a + b, 0) === total;
    },
    WAIT,
    `${total} WebSocket connection(s) over the gateways`,
  );
  const extra = counts.map((n, i) => n - known.filter((k) => k === i).length);
  const i = extra.findIndex((n) => n === 1);
  assert.ok(i >= 0, `a new connection on one gateway: ${counts.join(',')}`);
  return i;
}

interface Watched {
  page: Page;
  context: BrowserContext;
  problems: string[];
}

/** A page whose dialogs, uncaught errors and CSP refusals are problems (asserted empty at the end). */
async function open(viewport: { width: number; height: number }, mobile = false): Promise<Watched> {
  const context = await browser.newContext({ viewport, isMobile: mobile, hasTouch: mobile });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('dialog', (d) => {
    problems.push(`dialog ${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${lb.ws}/`);
  await online(page);
  return { page, context, problems };
}

/** The status says connected; on a timeout, what the page said instead and what HAProxy logged. */
async function online(page: Page, ms = WAIT): Promise<void> {
  try {
    await page.waitForSelector('#status[data-state="online"]', { timeout: ms });
  } catch (e) {
    const status = await page.evaluate('[document.body.dataset.conn, document.body.dataset.reconnects, document.getElementById("status").textContent]');
    const log = lb.output.join('').split('\n').filter((l) => !l.startsWith('Connect from')).slice(-20).join('\n');
    throw new Error(`page not online: ${JSON.stringify(status)}; haproxy:\n${log}`, { cause: e });
  }
}

/** The seqs rendered in the message log, in page order. */
const seqs = (p: Page): Promise<number[]> => p.locator('#messages li[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));

const exactly = (text: string): RegExp => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

/** Wait until a message with exactly this text is rendered (and, for one's own, acknowledged: it has its seq). */
async function shows(p: Page, text: string): Promise<void> {
  await p.locator('#messages li[data-seq] .text').filter({ hasText: exactly(text) }).first().waitFor({ state: 'attached', timeout: WAIT });
}

async function say(p: Page, text: string): Promise<void> {
  await p.fill('#text', text);
  await p.press('#text', 'Enter');
  await shows(p, text);
}

/** Wait until the member list holds each name (on a phone the list is in a closed drawer: attached, not visible). */
async function members(p: Page, names: string[]): Promise<void> {
  for (const n of names) await p.locator('#members li').filter({ hasText: exactly(n) }).first().waitFor({ state: 'attached', timeout: WAIT });
}

test('web client: two browsers on two gateways behind HAProxy chat, one survives its gateway being killed', { skip, timeout: 90_000 }, async () => {
  // The page and its files, through HAProxy: the headers the gateway sends with them.
  const page = await fetch(`http://127.0.0.1:${lb.ws}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('content-security-policy'), CSP);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  const js = await fetch(`http://127.0.0.1:${lb.ws}/app.js`);
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(js.headers.get('content-security-policy'), CSP);
  assert.equal((await fetch(`http://127.0.0.1:${lb.ws}/app.js`, { headers: { 'If-None-Match': js.headers.get('etag') ?? '' } })).status, 304);
  assert.equal((await fetch(`http://127.0.0.1:${lb.ws}/../package.json`)).status, 404);

  // Ann (desktop) creates a group.
  const a = await open({ width: 1024, height: 700 });
  const gwA = await landed(1, []);
  await a.page.fill('#name', 'Ann');
  await a.page.fill('#create-password', 'pw-secret');
  await a.page.click('#create-btn');
  await a.page.waitForSelector('body[data-view="chat"]', { timeout: WAIT });
  const title = (await a.page.textContent('#group-title')) ?? '';
  const groupId = /^Group (\d+)$/.exec(title)?.[1];
  assert.ok(groupId !== undefined, `group title: ${title}`);

  // Bo (phone) joins through HAProxy and lands on another gateway: a wrong password first.
  const b = await open({ width: 375, height: 740 }, true);
  const gwB = await landed(2, [gwA]);
  assert.notEqual(gwB, gwA, 'the two pages are on different gateways');
  await b.page.fill('#name', 'Bo');
  await b.page.fill('#join-id', groupId);
  await b.page.fill('#join-password', 'not-it');
  await b.page.click('#join-btn');
  await b.page.waitForSelector('#menu-error:not([hidden])', { timeout: WAIT });
  assert.equal(await b.page.textContent('#menu-error'), 'Wrong password. Please try again.');
  await b.page.fill('#join-password', 'pw-secret');
  await b.page.click('#join-btn');
  await b.page.waitForSelector('body[data-view="chat"]', { timeout: WAIT });
  assert.equal(await b.page.textContent('#group-title'), `Group ${groupId}`);
  await a.page.waitForSelector('#messages li.notice:has-text("Bo has joined the chat!")', { timeout: WAIT });
  await members(a.page, ['Ann', 'Bo']);
  await members(b.page, ['Ann', 'Bo']);

  // Both ways; then the XSS text, which must arrive as text.
  await say(a.page, 'hello from Ann');
  await shows(b.page, 'hello from Ann');
  await say(b.page, 'hi Ann, Bo here');
  await shows(a.page, 'hi Ann, Bo here');
  await say(a.page, XSS);
  await shows(b.page, XSS);
  for (const w of [a, b]) assert.equal(await w.page.locator('#messages img').count(), 0, 'no element made from message text');

  // Kill Bo's gateway. Bo's page reconnects through HAProxy and resumes; Ann writes meanwhile.
  const killed = gws[gwB] as Gateway;
  assert.ok(killed.proc.pid !== undefined && process.kill(killed.proc.pid, 'SIGKILL'));
  await b.page.waitForSelector('body[data-reconnects]', { timeout: WAIT });
  await say(a.page, 'while you were away');
  await online(b.page, 30_000);
  await shows(b.page, 'while you were away');
  await say(b.page, 'back again');
  await shows(a.page, 'back again');
  assert.notEqual(await landed(2, [gwA]), gwB, 'Bo resumed on a live gateway');

  // No gap, no duplicate: both pages hold seqs 1..5, once each, in order.
  const all = [1, 2, 3, 4, 5];
  assert.deepEqual(await seqs(a.page), all);
  assert.deepEqual(await seqs(b.page), all);
  const texts = await b.page.locator('#messages li[data-seq] .text').allTextContents();
  assert.deepEqual(texts, ['hello from Ann', 'hi Ann, Bo here', XSS, 'while you were away', 'back again']);

  // A late joiner (Cy): the join replays the newest messages; on a gateway that pages history the
  // page fetches the older ones itself (the log does not fill its screen), elsewhere the replay holds them all.
  const c = await open({ width: 800, height: 900 });
  await c.page.fill('#name', 'Cy');
  await c.page.fill('#join-id', groupId);
  await c.page.fill('#join-password', 'pw-secret');
  await c.page.click('#join-btn');
  await members(c.page, ['Ann', 'Bo', 'Cy']); // the answer to the page's `who`, after the join's replay
  await c.page.waitForSelector('#older[data-state="none"]', { timeout: WAIT });
  assert.deepEqual(await seqs(c.page), all);

  // The phone: members in a drawer, nothing wider than the screen.
  await b.page.click('#members-toggle');
  await b.page.waitForSelector('#members-panel.open li:has-text("Ann")', { state: 'visible', timeout: WAIT });
  const overflow = Number(await b.page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
  assert.ok(overflow <= 0, `horizontal overflow at 375 px: ${overflow} px`);

  const shot = process.env['SCREENSHOT'];
  if (shot) await a.page.screenshot({ path: resolve(REPO, shot) });

  for (const w of [a, b, c]) {
    assert.deepEqual(w.problems, []);
    await w.context.close();
  }
});

test('older history: a gateway that keeps only the newest messages; the page pages back, or says it cannot', { skip, timeout: 60_000 }, async () => {
  // HISTORY_LIMIT=2: the join replays (and the gateway keeps) the last two of three messages. A gateway
  // with the history op answers the page's request with what it has (nothing older): "beginning";
  // one without it answers invalid_input: "not available". Either way the page stays usable.
  const gw = await startGateway({ noTcp: true, env: { HISTORY_LIMIT: '2' } });
  try {
    const ws = await WsClient.connect(gw.wsUrl, 'chat.json');
    ws.sendJson({ op: 'create', name: 'Dee', password: 'pw' });
    const { groupId } = await ws.nextOfType<{ groupId: string }>('joined');
    for (const [i, text] of ['one', 'two', 'three'].entries()) {
      ws.sendJson({ op: 'send', text, id: i });
      await ws.nextOfType('ack');
    }
    const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('dialog', (d) => problems.push(`dialog: ${d.message()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${gw.port}/`);
    await page.waitForSelector('#status[data-state="online"]', { timeout: WAIT });
    await page.fill('#name', 'Eve');
    await page.fill('#join-id', groupId);
    await page.fill('#join-password', 'pw');
    await page.click('#join-btn');
    await page.waitForSelector('#older[data-state="none"], #older[data-state="unsupported"]', { timeout: WAIT });
    assert.deepEqual(await seqs(page), [2, 3]);
    const state = await page.getAttribute('#older', 'data-state');
    assert.equal(await page.textContent('#older'), state === 'none' ? 'This is the beginning of the chat' : 'Older messages are not available on this server');
    assert.equal(await page.isHidden('#chat-error'), true, 'no error shown for it');
    await say(page, 'still here');
    assert.equal(JSON.parse(await ws.frames.next(WAIT, 'still here', (f) => f.includes('still here'))).seq, 4);
    assert.deepEqual(problems, []);
    ws.close();
    await context.close();
  } finally {
    await gw.stop();
  }
});
