// Client addresses you can trust (issue 8, item 6), against real gateways: with a small
// MAX_CONNECTIONS_PER_IP, a forged or unparseable X-Forwarded-For never mints new addresses, a
// forwarded 127.0.0.1 is not exempt, IPv6 counts per /64, IPv6 proxies can be trusted, and a bad
// TRUSTED_PROXIES does not start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describe, test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { Gateway, MAIN, freePort, startGateway, tempDir } from '../helpers/gateway.js';
import { until, within } from '../helpers/wait.js';

const MENU = 'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.';
const TOO_MANY = 'Too many connections from your address, try again later!';

/** Open WebSocket connections one after another; how many were admitted (the rest got 429). */
async function admitted(url: string, headers: Array<Record<string, string | string[]>>, localAddress?: string): Promise<{ n: number; open: WsClient[] }> {
  const open: WsClient[] = [];
  for (const h of headers) {
    try {
      open.push(await WsClient.connect(url, undefined, h as Record<string, string>, localAddress));
    } catch (e) {
      assert.match(String(e), /429/, 'refused for the address cap, nothing else');
    }
  }
  return { n: open.length, open };
}

const closeAll = (cs: Array<{ close(): void }>): void => {
  for (const c of cs) c.close();
};

/** `n` rotating forged addresses. */
const rotating = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** The client addresses the gateway logged its first `n` connections from (the resolved ones). */
async function remotes(gw: Gateway, n: number): Promise<string[]> {
  const seen = (): string[] => gw.output.filter((l) => l.includes('[CLIENT CONNECTED]')).map((l) => (JSON.parse(l) as { remote: string }).remote);
  await until(() => seen().length >= n, 5000, `${n} connection log lines`);
  return [...new Set(seen())];
}

/** A non-loopback address of this machine: a peer that is neither trusted nor exempt. */
const external = ((): string | null => {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  return null;
})();

describe('forged and unparseable X-Forwarded-For chains', () => {
  test('from an untrusted peer: 20 rotating X-Forwarded-For values are one address (cap 2)', { skip: external === null && 'no non-loopback interface' }, async () => {
    const host = external as string;
    const gw = await startGateway({ env: { HOST: host, MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      const url = `ws://${host}:${gw.port}/`;
      const r = await admitted(url, rotating(20, (i) => ({ 'x-forwarded-for': `198.51.100.${i + 1}` })));
      assert.equal(r.n, 2, 'the peer itself is the client: its header is ignored');
      // A PROXY header from it is not believed either: over TCP it is the same (full) address.
      const tcp = await firstLine(host, gw.tcpPort, 'PROXY TCP4 198.51.100.99 127.0.0.1 40000 7037\r\n');
      assert.equal(tcp, TOO_MANY);
      assert.deepEqual(await remotes(gw, 2), [host]);
      closeAll(r.open);
    } finally {
      await gw.stop();
    }
  });

  test('through a trusted proxy: rotating forged hops left of the proxy-appended one are one address (cap 2)', async () => {
    const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      // The client's own header first, the proxy's appended hop last; also as one comma-joined header.
      const r = await admitted(gw.wsUrl, [
        ...rotating(10, (i) => ({ 'x-forwarded-for': [`198.51.100.${i + 1}`, '203.0.113.9'] })),
        ...rotating(10, (i) => ({ 'x-forwarded-for': `10.0.0.${i + 1}, 127.0.0.1, 203.0.113.9` })),
      ]);
      assert.equal(r.n, 2);
      assert.deepEqual(await remotes(gw, 2), ['203.0.113.9']);
      closeAll(r.open);
    } finally {
      await gw.stop();
    }
  });

  test('an unparseable hop ends the walk: rotating addresses behind it are not reached (cap 2)', async () => {
    const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      // Before, the bad hop was skipped and each connection got the forged address left of it.
      const r = await admitted(gw.wsUrl, [
        ...rotating(5, (i) => ({ 'x-forwarded-for': `198.51.100.${i + 1}, unknown` })),
        ...rotating(5, (i) => ({ 'x-forwarded-for': `198.51.100.${i + 1}, 198.51.100.300` })),
        ...rotating(5, (i) => ({ 'x-forwarded-for': [`198.51.100.${i + 1}`, ''] })),
      ]);
      // The walk stops at the trusted proxy (127.0.0.1): a forwarded address, so not exempt.
      assert.equal(r.n, 2);
      assert.deepEqual(await remotes(gw, 2), ['127.0.0.1']);
      closeAll(r.open);
    } finally {
      await gw.stop();
    }
  });

  test('X-Forwarded-For: 127.0.0.1 (or a PROXY header naming it) through a trusted proxy is not exempt', async () => {
    const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1,::1' } });
    try {
      const r = await admitted(gw.wsUrl, rotating(4, () => ({ 'x-forwarded-for': '127.0.0.1' })));
      assert.equal(r.n, 2, 'a forwarded 127.0.0.1 is capped like any address');
      const tcp = await LineClient.connect(gw.tcpPort);
      tcp.send('PROXY TCP4 127.0.0.1 127.0.0.1 40000 7037', '\r\n');
      assert.equal(await tcp.next(), TOO_MANY);
      await within(tcp.closed, 5000, 'the refused TCP connection to close');
      const v6 = await admitted(gw.wsUrl, rotating(3, () => ({ 'x-forwarded-for': '::1' })));
      assert.equal(v6.n, 2, 'nor is a forwarded ::1');
      // A loopback peer that forwards nothing (a test suite, a load test on this machine) still is.
      const plain = await admitted(gw.wsUrl, rotating(4, () => ({})));
      assert.equal(plain.n, 4);
      // (A trusted peer speaks first, in case it is a PROXY header: here it is the menu answer.)
      const plainTcp = await LineClient.connect(gw.tcpPort);
      plainTcp.send('3');
      assert.equal(await plainTcp.nextLines(4), MENU);
      assert.equal(await plainTcp.next(), 'You have disconnected from the server.');
      closeAll([...r.open, ...v6.open, ...plain.open]);
    } finally {
      await gw.stop();
    }
  });
});

describe('IPv6', () => {
  test('one /64 shares one MAX_CONNECTIONS_PER_IP cap (X-Forwarded-For and PROXY TCP6); another /64 is fine', async () => {
    const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      const r = await admitted(gw.wsUrl, [
        { 'x-forwarded-for': '2001:db8:1:2::1' },
        { 'x-forwarded-for': '2001:db8:1:2:ffff:ffff:ffff:ffff' },
        { 'x-forwarded-for': '2001:db8:1:2:abcd::3' },
        { 'x-forwarded-for': '[2001:db8:1:2::4]:443' },
      ]);
      assert.equal(r.n, 2, 'four addresses in one /64: two admitted');
      const tcp = await LineClient.connect(gw.tcpPort);
      tcp.send('PROXY TCP6 2001:db8:1:2::99 ::1 40000 7037', '\r\n');
      assert.equal(await tcp.next(), TOO_MANY);
      const other = await admitted(gw.wsUrl, [{ 'x-forwarded-for': '2001:db8:1:3::1' }, { 'x-forwarded-for': '2001:db8:1:3::2' }]);
      assert.equal(other.n, 2, 'the next /64 has its own cap');
      const tcp2 = await LineClient.connect(gw.tcpPort);
      tcp2.send('PROXY TCP6 2001:db8:1:4::1 ::1 40000 7037', '\r\n');
      assert.equal(await tcp2.nextLines(4), MENU);
      // Closing one frees a place in its /64.
      (r.open[0] as WsClient).close();
      await (r.open[0] as WsClient).closed;
      const again = await admitted(gw.wsUrl, [{ 'x-forwarded-for': '2001:db8:1:2::5' }]);
      assert.equal(again.n, 1);
      closeAll([...r.open, ...other.open, ...again.open, tcp2]);
    } finally {
      await gw.stop();
    }
  });

  test('an IPv6 proxy in TRUSTED_PROXIES (a CIDR) is trusted: its X-Forwarded-For names the client', async () => {
    // Before, IPv6 entries were ignored: the ::1 peer stayed the client (and, loopback, was never capped).
    const gw = await startGateway({ env: { HOST: '::1', MAX_CONNECTIONS_PER_IP: '1', TRUSTED_PROXIES: '::1/128' } });
    try {
      const url = `ws://[::1]:${gw.port}/`;
      const r = await admitted(url, rotating(3, () => ({ 'x-forwarded-for': '203.0.113.7' })));
      assert.equal(r.n, 1);
      const other = await admitted(url, [{ 'x-forwarded-for': '203.0.113.8' }]);
      assert.equal(other.n, 1);
      assert.deepEqual(await remotes(gw, 2), ['203.0.113.7', '203.0.113.8']);
      closeAll([...r.open, ...other.open]);
    } finally {
      await gw.stop();
    }
  });
});

describe('TRUSTED_PROXIES is validated', () => {
  for (const bad of ['10.0.0.0/33', '2001:db8::/129', 'garbage', '127.0.0.1,10.0.0.0/8x', 'proxy.internal']) {
    test(`TRUSTED_PROXIES=${bad} exits 2 naming the entry`, async () => {
      const env = {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOST: '127.0.0.1',
        PORT: '0',
        METRICS_PORT: '0',
        TCP_PORT: String(await freePort()),
        DATA_DIR: tempDir('chat-data-'),
        TRUSTED_PROXIES: bad,
      };
      const gw = new Gateway(spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] }), env);
      try {
        const { code } = await within(gw.exited, 15_000, 'the gateway to exit');
        assert.equal(code, 2);
        const out = gw.output.join('\n');
        assert.match(out, /TRUSTED_PROXIES must be comma-separated IPs or CIDRs/);
        assert.ok(out.includes(bad.split(',').pop() as string), out);
        assert.ok(!out.includes('[LISTENING]'));
      } finally {
        if (gw.proc.exitCode === null && gw.proc.signalCode === null) gw.proc.kill('SIGKILL');
      }
    });
  }
});

/** Connect to host:port, send `say`, and return the first line that comes back. */
function firstLine(host: string, port: number, say: string): Promise<string> {
  return within(
    new Promise<string>((res, rej) => {
      let buf = '';
      const s = connect({ host, port }, () => s.write(say));
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          res(buf.slice(0, nl));
          s.destroy();
        }
      });
      s.once('error', rej);
    }),
    5000,
    `a line from ${host}:${port}`,
  );
}
