// The test packet builder: lengths, checksums and field placement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arp, ethernet, icmp, icmpv6, inetChecksum, ipBytes, ipv4, ipv6, rawL4, tcp, udp, ETH_P_8021AD, IPPROTO } from './packets.js';

const sum16 = (b: Buffer) => inetChecksum(b); // 0 when the embedded checksum is right

function pseudo(src: Buffer, dst: Buffer, proto: number, seg: Buffer): Buffer {
  if (src.length === 4) return Buffer.concat([src, dst, Buffer.from([0, proto, seg.length >> 8, seg.length & 0xff])]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(seg.length);
  return Buffer.concat([src, dst, len, Buffer.from([0, 0, 0, proto])]);
}

test('ipBytes parses IPv4, IPv6 with ::, and embedded dotted quads', () => {
  assert.equal(ipBytes('198.18.0.1').toString('hex'), 'c6120001');
  assert.equal(ipBytes('2001:2::1').toString('hex'), '20010002000000000000000000000001');
  assert.equal(ipBytes('::').toString('hex'), '0'.repeat(32));
  assert.equal(ipBytes('::ffff:198.18.0.1').toString('hex'), '00000000000000000000ffffc6120001');
  assert.throws(() => ipBytes('198.18.0.256'), /not an IPv4 or IPv6 address/);
});

test('IPv4/UDP: lengths and both checksums are right', () => {
  const p = ipv4({ src: '198.18.0.1', dst: '198.18.0.2', l4: udp({ sport: 1000, dport: 53, payload: Buffer.from('abc') }) });
  assert.equal(p.bytes.length, 31);
  assert.equal(p.bytes.readUInt16BE(2), 31);
  assert.equal(sum16(p.bytes.subarray(0, 20)), 0);
  const seg = p.bytes.subarray(20);
  assert.equal(seg.readUInt16BE(4), 11);
  assert.equal(sum16(Buffer.concat([pseudo(ipBytes('198.18.0.1'), ipBytes('198.18.0.2'), 17, seg), seg])), 0);
});

test('IPv4 options, fragments and overrides', () => {
  const p = ipv4({ src: '198.18.0.1', dst: '198.18.0.2', options: Buffer.from([1, 1, 1]), moreFragments: true, l4: tcp({ sport: 1, dport: 2 }) });
  assert.equal(p.bytes[0], 0x46);
  assert.equal(p.bytes.readUInt16BE(6), 0x2000);
  const f = ipv4({ src: '198.18.0.1', dst: '198.18.0.2', fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(8)) });
  assert.equal(f.bytes.readUInt16BE(6), 185);
  assert.equal(ipv4({ src: '198.18.0.1', dst: '198.18.0.2', totalLength: 9000, l4: icmp() }).bytes.readUInt16BE(2), 9000);
  assert.throws(() => ipv4({ src: '198.18.0.1', dst: '198.18.0.2', fragmentOffset: 3, l4: icmp() }), /ipv4.fragmentOffset/);
  assert.throws(() => ipv4({ src: '2001:2::1', dst: '198.18.0.2', l4: icmp() }), /ipv4.src/);
});

test('IPv6 extension chain: next-header links, lengths, ICMPv6 checksum', () => {
  const p = ipv6({
    src: '2001:2::1', dst: '2001:2::2',
    ext: [{ type: 'hopByHop' }, { type: 'routing', data: Buffer.alloc(20) }, { type: 'fragment' }, { type: 'ah' }, { type: 'destOpts' }],
    l4: icmpv6({ payload: Buffer.alloc(4) }),
  });
  const b = p.bytes;
  assert.equal(b.readUInt16BE(4), b.length - 40);
  assert.equal(b[6], IPPROTO.HOPOPTS);
  let off = 40;
  const seen: number[] = [];
  let nh: number = b.readUInt8(6);
  while (nh !== IPPROTO.ICMPV6) {
    seen.push(nh);
    const len = nh === IPPROTO.FRAGMENT ? 8 : nh === IPPROTO.AH ? (b[off + 1]! + 2) * 4 : (b[off + 1]! + 1) * 8;
    nh = b[off]!;
    off += len;
  }
  assert.deepEqual(seen, [IPPROTO.HOPOPTS, IPPROTO.ROUTING, IPPROTO.FRAGMENT, IPPROTO.AH, IPPROTO.DSTOPTS]);
  const msg = b.subarray(off);
  assert.equal(msg.length, 12);
  assert.equal(sum16(Buffer.concat([pseudo(ipBytes('2001:2::1'), ipBytes('2001:2::2'), 58, msg), msg])), 0);
});

test('Ethernet with QinQ tags, padding, and ARP', () => {
  const f = ethernet({ vlans: [{ vid: 10, tpid: ETH_P_8021AD }, { vid: 20, pcp: 3 }], payload: arp({ senderIp: '198.18.0.1', targetIp: '198.18.0.2' }), padTo: 64 });
  assert.equal(f.length, 64);
  assert.equal(f.readUInt16BE(12), 0x88a8);
  assert.equal(f.readUInt16BE(14), 10);
  assert.equal(f.readUInt16BE(16), 0x8100);
  assert.equal(f.readUInt16BE(18), (3 << 13) | 20);
  assert.equal(f.readUInt16BE(20), 0x0806);
  assert.throws(() => ethernet({ vlans: [{ vid: 4096 }], payload: arp({ senderIp: '198.18.0.1', targetIp: '198.18.0.2' }) }), /vlans\[0\]\.vid/);
});
