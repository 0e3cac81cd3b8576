// The seed's main transcript (PROTOCOL.md §1), byte for byte, written once for every transport
// that speaks the text protocol: create, wrong ID, wrong password, join, chat both ways, bad
// option, exit. Strings are spelled out here on purpose: the test must catch a typo in the code's copy.
import { within } from './wait.js';
import type { TextPeer } from './peers.js';

export const MENU = 'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.';

export interface TranscriptOptions {
  /** A new text client: `a` creates, `b` joins, `c` tries a bad option and exits. */
  open: (who: 'a' | 'b' | 'c') => Promise<TextPeer>;
  /** Reads `a`'s "Chat {id} has been created." and returns the ID. */
  created: (a: TextPeer) => Promise<string>;
  /** A group ID that does not exist. */
  wrongId: string;
}

export async function seedTranscript({ open, created, wrongId }: TranscriptOptions): Promise<void> {
  const a = await open('a');
  await a.expect(MENU);
  a.send('2');
  await a.expect('Enter your name: ');
  a.send('Adina');
  await a.expect('Enter a new password for your group:');
  a.send('1234');
  const id = await created(a);

  const b = await open('b');
  await b.expect(MENU);
  b.send('1');
  await b.expect('Enter your name: ');
  b.send('Maya');
  await b.expect('Enter group ID: ');
  b.send(wrongId);
  await b.expect('Wrong ID, try again! ');
  b.send(id);
  await b.expect('Enter password: ');
  b.send('4321');
  await b.expect('Wrong password. Please try again! ');
  b.send('1234');
  await b.expect(`Hi Maya! welcome to group ${id}!`);
  await a.expect('Maya has joined the chat!');

  b.send('hello Adina');
  await a.expect('Maya: hello Adina');
  a.send('hi Maya');
  await b.expect('Adina: hi Maya');

  const c = await open('c');
  await c.expect(MENU);
  c.send('5');
  await c.expect('please try again!');
  c.send('3');
  await c.expect('You have disconnected from the server.');
  await within(c.closed, 5000, 'server to close after option 3');

  b.close();
  await a.expect('Maya has left the chat.');
  a.close();
}
