// Client addresses: TRUSTED_PROXIES parsing (IPv4 and IPv6 CIDRs), the X-Forwarded-For walk,
// the loopback exemption and the IPv6 /64 budget key. Pure functions, no sockets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ConnectionsPerIp,
  InvalidProxySpec,
  TrustedProxies,
  addressKey,
  cidrContains,
  clientAddress,
  isLoopback,
  parseCidr,
  parseHop,
  parseProxyV1,
  parseTrustedProxies,
  resolveXff,
} from '../../src/clientip.js';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('TRUSTED_PROXIES entries', () => {
  test('IPv4 and IPv6 addresses and networks parse; host bits are cleared', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { v: 4, net: 10n << 24n, bits: 8 });
    assert.deepEqual(parseCidr('10.1.2.3/8'), { v: 4, net: 10n << 24n, bits: 8 });
    assert.deepEqual(parseCidr('192.0.2.7'), { v: 4, net: (192n << 24n) | (2n << 8n) | 7n, bits: 32 });
    assert.deepEqual(parseCidr('2001:db8::/32'), { v: 6, net: 0x20010db8n << 96n, bits: 32 });
    assert.deepEqual(parseCidr('::1'), { v: 6, net: 1n, bits: 128 });
    assert.deepEqual(parseCidr(' 0.0.0.0/0 '), { v: 4, net: 0n, bits: 0 });
    // An IPv4-mapped IPv6 network is the IPv4 network it maps.
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), parseCidr('10.0.0.0/8'));
    assert.deepEqual(parseCidr('::ffff:10.0.0.1'), parseCidr('10.0.0.1'));
  });

  test('a prefix past the family width, a hostname, a port or garbage is refused', () => {
    for (const bad of [
      '10.0.0.0/33',
      '2001:db8::/129',
      '10.0.0.0/',
      '10.0.0.0/8x',
      '10.0.0.0/-1',
      '10.0.0.0/ 8',
      '10.0.0.0/08000',
      '/8',
      '10.0.0.256',
      '10.0.0',
      'example.com',
      'localhost',
      '10.0.0.1:80',
      '[::1]',
      'fe80::1%eth0',
      '2001:db8::/32/1',
      'garbage',
      '',
    ]) {
      assert.throws(() => parseCidr(bad), InvalidProxySpec, JSON.stringify(bad));
    }
    assert.throws(() => parseTrustedProxies(['127.0.0.1', '10.0.0.0/33']), /10\.0\.0\.0\/33.*0 to 32/);
  });

  test('config: a bad TRUSTED_PROXIES is a ConfigError naming the entry; a good list is kept', () => {
    assert.throws(
      () => loadConfig({ TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/33' }),
      (e: unknown) => e instanceof ConfigError && /TRUSTED_PROXIES/.test(e.message) && e.message.includes('10.0.0.0/33'),
    );
    assert.throws(() => loadConfig({ TRUSTED_PROXIES: 'haproxy' }), ConfigError);
    assert.deepEqual(loadConfig({ TRUSTED_PROXIES: '127.0.0.1, fd00::/8' }).trustedProxies, ['127.0.0.1', 'fd00::/8']);
  });

  test('IPv4 networks match at their boundaries, in any spelling of the peer', () => {
    const c = parseCidr('10.0.0.0/8');
    assert.ok(cidrContains(c, '10.0.0.0'));
    assert.ok(cidrContains(c, '10.255.255.255'));
    assert.ok(!cidrContains(c, '11.0.0.0'));
    assert.ok(!cidrContains(c, '9.255.255.255'));
    assert.ok(cidrContains(c, '::ffff:10.1.2.3'), 'IPv4-mapped peer (dual-stack socket)');
    assert.ok(cidrContains(c, '::ffff:a01:203'), 'IPv4-mapped, hex spelling');
    assert.ok(!cidrContains(c, '::a01:203'), 'IPv4-compatible is not IPv4');
    assert.ok(!cidrContains(c, 'garbage'));
    const one = parseCidr('192.0.2.7');
    assert.ok(cidrContains(one, '192.0.2.7'));
    assert.ok(!cidrContains(one, '192.0.2.8'));
    assert.ok(cidrContains(parseCidr('0.0.0.0/0'), '203.0.113.1'));
  });

  test('IPv6 networks match (they used to be ignored), and families never cross', () => {
    const c = parseCidr('2001:db8::/32');
    assert.ok(cidrContains(c, '2001:db8::1'));
    assert.ok(cidrContains(c, '2001:0DB8:ffff:ffff:ffff:ffff:ffff:ffff'));
    assert.ok(!cidrContains(c, '2001:db9::'));
    assert.ok(!cidrContains(c, '2001:db7:ffff::'));
    const odd = parseCidr('fd00:1234:5678::/47');
    assert.ok(cidrContains(odd, 'fd00:1234:5679:ffff::1'));
    assert.ok(!cidrContains(odd, 'fd00:1234:567a::1'));
    const lo = new TrustedProxies(['::1']);
    assert.ok(lo.has('0:0:0:0:0:0:0:1'));
    assert.ok(!lo.has('127.0.0.1'));
    assert.ok(!new TrustedProxies(['::/0']).has('10.0.0.1'), 'an IPv6 network never trusts an IPv4 peer');
    assert.ok(!new TrustedProxies(['0.0.0.0/0']).has('2001:db8::1'), 'an IPv4 network never trusts an IPv6 peer');
    assert.ok(new TrustedProxies(['10.0.0.0/8', '2001:db8::/32']).has('2001:db8:1::5'));
  });
});

describe('the X-Forwarded-For walk', () => {
  const trusted = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48']);

  test('an untrusted peer: its header is ignored; a trusted peer without a header is itself', () => {
    assert.deepEqual(resolveXff('198.51.100.7', ['203.0.113.9'], trusted), { ip: '198.51.100.7', forwarded: false });
    assert.deepEqual(resolveXff('127.0.0.1', [], trusted), { ip: '127.0.0.1', forwarded: false });
    assert.deepEqual(resolveXff('::ffff:127.0.0.1', [], trusted), { ip: '127.0.0.1', forwarded: false });
  });

  test('from the right: each trusted hop vouches for the one before it; forged hops further left are never reached', () => {
    assert.deepEqual(resolveXff('127.0.0.1', ['203.0.113.9'], trusted), { ip: '203.0.113.9', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['9.9.9.9, 203.0.113.9'], trusted), { ip: '203.0.113.9', forwarded: true });
    // Two proxies: the balancer (10.0.0.5) in front of a sidecar on loopback.
    assert.deepEqual(resolveXff('127.0.0.1', ['9.9.9.9, 203.0.113.9, 10.0.0.5'], trusted), { ip: '203.0.113.9', forwarded: true });
    // Several headers count as one list, in order.
    assert.deepEqual(resolveXff('127.0.0.1', ['9.9.9.9', '203.0.113.9, 10.0.0.5'], trusted), { ip: '203.0.113.9', forwarded: true });
    // A client that forges a trusted address on the left still ends at its own.
    assert.deepEqual(resolveXff('127.0.0.1', ['10.0.0.1, 203.0.113.9'], trusted), { ip: '203.0.113.9', forwarded: true });
    // IPv6 hops (bare, bracketed, with a port) and a trusted IPv6 proxy.
    assert.deepEqual(resolveXff('127.0.0.1', ['2001:db8:1::7, 2001:db8:ffff::2'], trusted), { ip: '2001:db8:1::7', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['[2001:db8:1::7]:443'], trusted), { ip: '2001:db8:1::7', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['203.0.113.9:5555'], trusted), { ip: '203.0.113.9', forwarded: true });
    // Every hop trusted: the leftmost is the client.
    assert.deepEqual(resolveXff('127.0.0.1', ['10.0.0.9, 10.0.0.5'], trusted), { ip: '10.0.0.9', forwarded: true });
  });

  test('an unparseable hop ends the walk (it used to be skipped): the client is the last address reached', () => {
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1, garbage, 10.0.0.5'], trusted), { ip: '10.0.0.5', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1, unknown'], trusted), { ip: '127.0.0.1', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1,'], trusted), { ip: '127.0.0.1', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1', ''], trusted), { ip: '127.0.0.1', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1, fe80::1%eth0'], trusted), { ip: '127.0.0.1', forwarded: true });
    assert.deepEqual(resolveXff('127.0.0.1', ['1.1.1.1, 999.1.1.1'], trusted), { ip: '127.0.0.1', forwarded: true });
  });

  test('hops: what parses and what does not', () => {
    assert.equal(parseHop(' 203.0.113.9 '), '203.0.113.9');
    assert.equal(parseHop('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(parseHop('[::1]'), '::1');
    assert.equal(parseHop('[2001:db8::1]:8080'), '2001:db8::1');
    assert.equal(parseHop('2001:db8::1'), '2001:db8::1');
    for (const bad of ['', 'unknown', '_hidden', 'host.example', '[203.0.113.9', '203.0.113.9:', '1.2.3.4:123456', 'fe80::1%eth0']) {
      assert.equal(parseHop(bad), null, JSON.stringify(bad));
    }
  });
});

describe('the loopback exemption and budget keys', () => {
  test('only a loopback socket peer that forwarded nothing is exempt', () => {
    assert.equal(clientAddress('127.0.0.1', '127.0.0.1', false).exempt, true);
    assert.equal(clientAddress('::ffff:127.0.0.1', '::ffff:127.0.0.1', false).exempt, true);
    assert.equal(clientAddress('::1', '::1', false).exempt, true);
    assert.equal(clientAddress('127.0.0.1', '127.0.0.1', false, false).exempt, false, 'LOOPBACK_EXEMPT=0');
    assert.equal(clientAddress('127.0.0.2', '127.0.0.2', false).exempt, true);
    assert.equal(clientAddress('198.51.100.7', '198.51.100.7', false).exempt, false);
    // Forwarded: never, whatever the address (X-Forwarded-For: 127.0.0.1; a walk that ended at the proxy itself).
    assert.equal(clientAddress('127.0.0.1', '127.0.0.1', true).exempt, false);
    assert.equal(clientAddress('127.0.0.1', '::1', true).exempt, false);
    assert.equal(clientAddress('10.0.0.5', '127.0.0.1', true).exempt, false);
    assert.equal(clientAddress('', '', false).exempt, false, 'an unknown peer is not loopback');
    const xff = resolveXff('127.0.0.1', ['127.0.0.1'], new TrustedProxies(['127.0.0.1']));
    assert.equal(clientAddress('127.0.0.1', xff.ip, xff.forwarded).exempt, false);
  });

  test('loopback in any spelling', () => {
    for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.ok(isLoopback(ip), ip);
    for (const ip of ['128.0.0.1', '::2', '::', '', 'localhost', '126.255.255.255']) assert.ok(!isLoopback(ip), ip);
  });

  test('IPv6 addresses count per /64, in any spelling; IPv4 per address', () => {
    const k = addressKey('2001:db8:1:2::1');
    assert.equal(k, '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:DB8:1:2:ffff:ffff:ffff:ffff'), k);
    assert.equal(addressKey('2001:0db8:0001:0002:0:0:0:9'), k);
    assert.notEqual(addressKey('2001:db8:1:3::1'), k);
    assert.equal(addressKey('203.0.113.9'), '203.0.113.9');
    assert.notEqual(addressKey('203.0.113.10'), addressKey('203.0.113.9'));
    assert.equal(addressKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(addressKey('::ffff:cb00:7109'), '203.0.113.9', 'hex-spelled IPv4-mapped is the IPv4 address');
    assert.equal(clientAddress('127.0.0.1', '2001:db8:1:2::77', true).key, k);
  });

  test('one /64 shares one connection cap; another /64 has its own', () => {
    const cap = new ConnectionsPerIp(2);
    const a = (ip: string): ReturnType<typeof clientAddress> => clientAddress('127.0.0.1', ip, true);
    assert.ok(cap.acquire(a('2001:db8:1:2::1')));
    assert.ok(cap.acquire(a('2001:db8:1:2::2')));
    assert.ok(!cap.acquire(a('2001:db8:1:2:abcd::3')), 'a third address in the same /64');
    assert.ok(cap.acquire(a('2001:db8:1:3::1')), 'the next /64');
    cap.release(a('2001:db8:1:2::1'));
    assert.ok(cap.acquire(a('2001:db8:1:2::99')));
    // Exempt (an unforwarded loopback peer) never counts.
    for (let i = 0; i < 5; i++) assert.ok(cap.acquire(clientAddress('127.0.0.1', '127.0.0.1', false)));
  });
});

describe('PROXY v1 headers', () => {
  test('the source address, its family checked', () => {
    const h = (s: string): ReturnType<typeof parseProxyV1> => parseProxyV1(Buffer.from(s, 'latin1'));
    const v4 = 'PROXY TCP4 203.0.113.9 127.0.0.1 40000 7037\r\n';
    assert.deepEqual(h(v4 + 'rest'), { address: '203.0.113.9', length: v4.length });
    const v6 = 'PROXY TCP6 2001:db8::1 ::1 40000 7037\r\n';
    assert.deepEqual(h(v6), { address: '2001:db8::1', length: v6.length });
    assert.deepEqual(h('PROXY TCP6 ::ffff:203.0.113.9 ::1 40000 7037\r\n'), { address: '203.0.113.9', length: 46 });
    assert.deepEqual(h('PROXY UNKNOWN\r\n'), { address: '', length: 15 });
    assert.equal(h('PROXY TCP4 2001:db8::1 ::1 40000 7037\r\n'), null, 'TCP4 with an IPv6 source');
    assert.equal(h('PROXY TCP6 203.0.113.9 127.0.0.1 40000 7037\r\n'), null, 'TCP6 with an IPv4 source');
    assert.equal(h('PROXY TCP4 garbage 127.0.0.1 40000 7037\r\n'), null);
    assert.equal(h('PROXY TCP4 203.0.113.9'), 'partial');
    assert.equal(h('2\n'), null);
  });
});
