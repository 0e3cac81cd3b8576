// The seed's transcript, byte-exact, on every text transport (PROTOCOL.md §1–2).
// Strings are spelled out here and in helpers/transcript.ts on purpose: the test must catch a
// typo in the code's copy.
import { after, before, describe, test } from 'node:test';
import { ENGINES, gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { textPeer, type TextTransport } from '../helpers/peers.js';
import { MENU, seedTranscript } from '../helpers/transcript.js';
import { within } from '../helpers/wait.js';

const NO_CHATS =
  'You have chosen to connect to a chat, but there are no chats available to connect to. You are disconnected from the server, you can try to connect again later, bye!';

for (const engine of ENGINES) {
  for (const kind of ['tcp-raw', 'tcp-line', 'ws-text'] as TextTransport[]) {
    describe(`seed transcript over ${kind} on the ${engine} engine`, () => {
      let gw: Gateway;
      before(async () => {
        gw = await gatewayOn(engine);
      });
      after(async () => {
        await gw.stop();
      });

      test('option 1 with no groups: the long message, then the connection closes', async () => {
        const x = await textPeer(gw, kind);
        await x.expect(MENU);
        x.send('1');
        await x.expect(NO_CHATS);
        await within(x.closed, 5000, 'server to close the connection');
      });

      test('create, wrong ID, wrong password, join, chat both ways, bad option, exit', async () => {
        await seedTranscript({
          open: () => textPeer(gw, kind),
          created: async (a) => {
            await a.expect('Chat 0 has been created.');
            return '0';
          },
          wrongId: '9',
        });
      });
    });
  }

  test(`a second group gets ID 1 and history is replayed to a joiner, oldest first, on the ${engine} engine`, async () => {
    const gw = await gatewayOn(engine);
    try {
      const a = await textPeer(gw, 'tcp-line');
      await a.expect(MENU);
      for (const [say, hear] of [
        ['2', 'Enter your name: '],
        ['Ann', 'Enter a new password for your group:'],
        ['pw0', 'Chat 0 has been created.'],
      ] as const) {
        a.send(say);
        await a.expect(hear);
      }
      const b = await textPeer(gw, 'ws-text');
      await b.expect(MENU);
      for (const [say, hear] of [
        ['2', 'Enter your name: '],
        ['Bob', 'Enter a new password for your group:'],
        ['pw1', 'Chat 1 has been created.'],
      ] as const) {
        b.send(say);
        await b.expect(hear);
      }
      b.send('first');
      b.send('second');
      b.send('/who');
      await b.expect('Online in group 1: Bob');
      const c = await textPeer(gw, 'tcp-line');
      await c.expect(MENU);
      for (const [say, hear] of [
        ['1', 'Enter your name: '],
        ['Cy', 'Enter group ID: '],
        ['1', 'Enter password: '],
        ['pw1', 'Hi Cy! welcome to group 1!'],
      ] as const) {
        c.send(say);
        await c.expect(hear);
      }
      await c.expect('Bob: first');
      await c.expect('Bob: second');
      await b.expect('Cy has joined the chat!');
      c.send('/quit');
      await c.expect('You have disconnected from the server.');
      await within(c.closed, 5000, 'close after /quit');
      await b.expect('Cy has left the chat.');
    } finally {
      await gw.stop();
    }
  });
}
