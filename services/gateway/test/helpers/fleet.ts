// A fleet of joined chat members in a process of its own, for tests that must run clients
// somewhere the test process is not: inside a network namespace (`ip netns exec NS node fleet.js`),
// or past one process's file-descriptor limit.
//   node fleet.js '{"ws":"ws://10.0.0.1:8080/","tcp":{"host":"10.0.0.1","port":7037},
//                   "groupId":"0","password":"pw","json":100,"text":10,"lines":10,"prefix":"ho"}'
// Opens `json` WebSocket JSON members, `text` WebSocket text members and `lines` TCP members, each
// joined to the group with the password and named `<prefix>-<kind>-<i>`. Prints `ready <n>` once
// all have joined, `closed <n>` whenever members' connections close, then holds them (it sends
// nothing more) until it is killed. Any failure before `ready` is printed as `failed <why>` and
// exits 1. `lineGroups` puts each TCP member in a group of its own.
import { connect } from 'node:net';
import WebSocket from 'ws';
import * as T from '../../src/protocol/text.js';

interface Spec {
  ws: string;
  tcp?: { host: string; port: number };
  groupId: string;
  password: string;
  json?: number;
  text?: number;
  lines?: number;
  /** TCP member i joins lineGroups[i] (with the same password) instead of groupId. */
  lineGroups?: string[];
  prefix?: string;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const prefix = spec.prefix ?? 'fleet';
let closed = 0;
const onClosed = (): void => {
  closed++;
  process.stdout.write(`closed ${closed}\n`);
};
const deadline = (ms: number, what: string): NodeJS.Timeout =>
  setTimeout(() => {
    process.stdout.write(`failed ${what}: no answer within ${ms} ms\n`);
    process.exit(1);
  }, ms);

function jsonMember(i: number): Promise<void> {
  return new Promise((res, rej) => {
    const ws = new WebSocket(spec.ws, ['chat.json']);
    ws.on('error', (e) => rej(e));
    ws.on('message', (d) => {
      const ev = JSON.parse(d.toString()) as { type: string; code?: string };
      if (ev.type === 'menu') ws.send(JSON.stringify({ op: 'join', name: `${prefix}-j-${i}`, groupId: spec.groupId, password: spec.password }));
      else if (ev.type === 'joined') res();
      else if (ev.type === 'error') rej(new Error(`json member ${i}: ${ev.code}`));
    });
    ws.once('close', onClosed);
  });
}

/** The text flow of the seed: 1, name, group ID, password, then the welcome line. */
function textAnswers(i: number, kind: string, groupId = spec.groupId): { answers: string[]; welcome: string } {
  const name = `${prefix}-${kind}-${i}`;
  return { answers: ['1', name, groupId, spec.password], welcome: T.welcome(name, groupId) };
}

function textMember(i: number): Promise<void> {
  return new Promise((res, rej) => {
    const { answers, welcome } = textAnswers(i, 't');
    const ws = new WebSocket(spec.ws, ['chat.text']);
    const prompts = [T.MENU, T.ENTER_NAME, T.ENTER_GROUP_ID, T.ENTER_PASSWORD];
    let step = 0;
    ws.on('error', (e) => rej(e));
    ws.on('message', (d) => {
      const s = d.toString();
      if (step < prompts.length && s.includes(prompts[step]!.trim())) ws.send(answers[step++]!);
      else if (s.includes(welcome)) res();
    });
    ws.once('close', onClosed);
  });
}

function lineMember(i: number): Promise<void> {
  return new Promise((res, rej) => {
    const { answers, welcome } = textAnswers(i, 'l', spec.lineGroups?.[i] ?? spec.groupId);
    const s = connect({ host: spec.tcp!.host, port: spec.tcp!.port, noDelay: true });
    const prompts = ['3. Exit the server.', T.ENTER_NAME, T.ENTER_GROUP_ID, T.ENTER_PASSWORD];
    let buf = '';
    let step = 0;
    s.setEncoding('utf8');
    s.on('error', (e) => rej(e));
    s.on('data', (d: string) => {
      buf += d;
      while (step < prompts.length && buf.includes(prompts[step]!)) {
        buf = buf.slice(buf.indexOf(prompts[step]!) + prompts[step]!.length);
        s.write(answers[step++]! + '\n');
      }
      if (buf.includes(welcome)) {
        buf = '';
        res();
      }
    });
    s.once('close', onClosed);
  });
}

const timer = deadline(60_000, 'joins');
const joins: Array<Promise<void>> = [];
// A few at a time: the gateway checks each password (scrypt), and a burst needs no more.
const queue: Array<() => Promise<void>> = [];
for (let i = 0; i < (spec.json ?? 0); i++) queue.push(() => jsonMember(i));
for (let i = 0; i < (spec.text ?? 0); i++) queue.push(() => textMember(i));
for (let i = 0; i < (spec.lines ?? 0); i++) queue.push(() => lineMember(i));
const total = queue.length;
const worker = async (): Promise<void> => {
  for (let next = queue.shift(); next; next = queue.shift()) await next();
};
for (let w = 0; w < 16; w++) joins.push(worker());
Promise.all(joins).then(
  () => {
    clearTimeout(timer);
    process.stdout.write(`ready ${total}\n`);
  },
  (e: unknown) => {
    process.stdout.write(`failed ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
