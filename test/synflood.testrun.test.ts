// SYN-flood mitigation in the datapath under BPF_PROG_TEST_RUN: SYNs are
// counted per destination; to a guarded destination, a SYN from a source not
// verified is turned into the challenge (a SYN-ACK with the cookie as a
// wrong acknowledgment, sent back with TC_ACT_REDIRECT), whose checksums,
// addresses, ports and options are checked here; the client's RST carrying
// the cookie verifies its source, whose SYNs then pass; a wrong cookie does
// not; drop and log actions; SYN-ACKs counted as answers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { TypedMap, u32, u64 } from '../src/kernel/index.js';
import { TgAddrKey, TgSynCfg, TgSynCount, TG_SYN_CHALLENGE, TG_SYN_CHALLENGE_MARK, TG_SYN_DROP, TG_SYN_LOG } from '../src/kernel/abi.gen.js';
import { ethernet, inetChecksum, ipBytes, ipv4, ipv6, rawL4, IPPROTO, TCP_FLAGS } from '../lab/packets.js';
import { Harness, OBJECT } from './helpers/firewall.js';

const TC_ACT_UNSPEC = -1;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;

/** A TCP segment with a checksum over the pseudo header; options make doff > 5. */
function segment(o: { src: string; dst: string; sport: number; dport: number; seq?: number; ack?: number; flags: number; options?: Buffer; payload?: Buffer }): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt32BE((o.seq ?? 1000) >>> 0, 4);
  h.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  h[12] = (h.length / 4) << 4;
  h[13] = o.flags;
  h.writeUInt16BE(64240, 14);
  opts.copy(h, 20);
  const seg = Buffer.concat([h, o.payload ?? Buffer.alloc(0)]);
  seg.writeUInt16BE(tcpChecksum(o.src, o.dst, seg), 16);
  return seg;
}

function tcpChecksum(src: string, dst: string, seg: Buffer): number {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  const pseudo = s.length === 4 ? Buffer.alloc(12) : Buffer.alloc(40);
  s.copy(pseudo, 0);
  d.copy(pseudo, s.length);
  if (s.length === 4) {
    pseudo[9] = IPPROTO.TCP;
    pseudo.writeUInt16BE(seg.length, 10);
  } else {
    pseudo.writeUInt32BE(seg.length, 32);
    pseudo[39] = IPPROTO.TCP;
  }
  const copy = Buffer.from(seg);
  copy.writeUInt16BE(0, 16);
  return inetChecksum(pseudo, copy);
}

const SYN_OPTIONS = Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]); // MSS, SACK-perm, TS, NOP, WS
const CLIENT_MAC = '02:00:00:00:00:01';
const HOST_MAC = '02:00:00:00:00:02';
const frame = (src: string, dst: string, seg: Buffer) => ethernet({
  src: CLIENT_MAC, dst: HOST_MAC,
  payload: src.includes(':') ? ipv6({ src, dst, l4: rawL4(IPPROTO.TCP, seg) }) : ipv4({ src, dst, l4: rawL4(IPPROTO.TCP, seg) }),
});

describe('SYN-flood mitigation under BPF_PROG_TEST_RUN', () => {
  let skipReason: string | undefined;
  let h: Harness;
  let cfg: TypedMap<number, TgSynCfg>;
  let guard: TypedMap<TgAddrKey, bigint>;
  let verified: TypedMap<TgAddrKey, bigint>;
  let counts: TypedMap<TgAddrKey, TgSynCount>;
  const addr = (a: string): TgAddrKey => {
    const b = ipBytes(a);
    const addr_be = Buffer.alloc(16);
    b.copy(addr_be);
    return { ip_ver: b.length === 4 ? 4 : 6, pad: Buffer.alloc(3), addr_be };
  };
  const run = (f: Buffer, prog: 'tg_filter_ingress' | 'tg_filter_egress' = 'tg_filter_ingress') => {
    const r = h.obj.program(prog).testRun({ data: f });
    return { rv: r.retval | 0, out: r.data };
  };

  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    h = new Harness();
    h.apply('  rules: []\n');
    cfg = new TypedMap(h.obj.map('tg_syn_cfg'), u32, TgSynCfg);
    guard = new TypedMap(h.obj.map('tg_syn_guard'), TgAddrKey, u64);
    verified = new TypedMap(h.obj.map('tg_syn_verified'), TgAddrKey, u64);
    counts = new TypedMap(h.obj.map('tg_syn_dst'), TgAddrKey, TgSynCount);
    cfg.set(0, { key: [0x0123456789abcdefn, 0xfedcba9876543210n], verified_ns: 60_000_000_000n, on: 1, action: TG_SYN_CHALLENGE });
  });
  after(() => h?.close());

  for (const family of [4, 6] as const) {
    const client = family === 4 ? '198.19.7.7' : '2001:2:0:77::7';
    const server = family === 4 ? '198.18.1.10' : '2001:2:0:1::10';
    for (const hook of ['ingress', 'egress'] as const) {
      test(`IPv${family} at ${hook}: challenge, RST with the cookie, then the client's SYNs pass`, (t) => {
        if (skipReason) return t.skip(skipReason);
        const prog = hook === 'ingress' ? 'tg_filter_ingress' : 'tg_filter_egress';
        const sport = hook === 'ingress' ? 41000 + family : 42000 + family;
        const syn = segment({ src: client, dst: server, sport, dport: 8080, seq: 5000, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS });
        for (const k of verified.keys()) verified.delete(k);
        guard.set(addr(server), 1n);
        try {
          const before = counts.getSum(addr(server)) ?? { syns: 0n, synacks: 0n, challenged: 0n, dropped: 0n, verified: 0n, passed: 0n };
          const c = run(frame(client, server, syn), prog);
          assert.equal(c.rv, TC_ACT_REDIRECT, 'the SYN is answered in the server\'s place');
          const out = c.out;
          // Ethernet: swapped
          assert.equal(out.subarray(0, 6).toString('hex'), CLIENT_MAC.replace(/:/g, ''));
          assert.equal(out.subarray(6, 12).toString('hex'), HOST_MAC.replace(/:/g, ''));
          const l3 = 14;
          const ipLen = family === 4 ? 20 : 40;
          const l4 = l3 + ipLen;
          const srcAt = family === 4 ? l3 + 12 : l3 + 8;
          const alen = family === 4 ? 4 : 16;
          assert.deepEqual(out.subarray(srcAt, srcAt + alen), ipBytes(server), 'from the server');
          assert.deepEqual(out.subarray(srcAt + alen, srcAt + 2 * alen), ipBytes(client), 'to the client');
          if (family === 4) assert.equal(inetChecksum(out.subarray(l3, l3 + 20)), 0, 'IPv4 header checksum still valid');
          const tcpOut = out.subarray(l4, l4 + 20 + SYN_OPTIONS.length);
          assert.equal(tcpOut.readUInt16BE(0), 8080);
          assert.equal(tcpOut.readUInt16BE(2), sport);
          assert.equal(tcpOut[13], TCP_FLAGS.SYN | TCP_FLAGS.ACK);
          assert.equal(tcpOut[12] >> 4, 10, 'same header length');
          assert.deepEqual([...tcpOut.subarray(20)], new Array(SYN_OPTIONS.length).fill(1), 'options blanked with NOPs');
          assert.equal(tcpOut.readUInt16BE(16), tcpChecksum(server, client, tcpOut), 'TCP checksum valid');
          const cookie = tcpOut.readUInt32BE(8);
          assert.notEqual(cookie, 5001, 'an acknowledgment the client must refuse');
          // The client refuses it with a RST whose sequence number is the cookie.
          const wrong = segment({ src: client, dst: server, sport, dport: 8080, seq: (cookie + 1) >>> 0, flags: TCP_FLAGS.RST });
          assert.equal(run(frame(client, server, wrong), prog).rv, TC_ACT_UNSPEC, 'a RST without the cookie verifies nothing (and goes on)');
          assert.equal(run(frame(client, server, syn), prog).rv, TC_ACT_REDIRECT, 'still unverified');
          const rst = segment({ src: client, dst: server, sport, dport: 8080, seq: cookie, flags: TCP_FLAGS.RST });
          assert.equal(run(frame(client, server, rst), prog).rv, TC_ACT_SHOT, 'the answer is consumed: the server never saw the connection');
          assert.ok(verified.get(addr(client)) !== undefined, 'the source is verified');
          assert.equal(run(frame(client, server, syn), prog).rv, TC_ACT_UNSPEC, 'its SYN retransmitted passes');
          const other = segment({ src: client, dst: server, sport: sport + 100, dport: 8080, flags: TCP_FLAGS.SYN });
          assert.equal(run(frame(client, server, other), prog).rv, TC_ACT_UNSPEC, 'and so do its next connections');
          const after = counts.getSum(addr(server))!;
          assert.deepEqual({ syns: after.syns - before.syns, challenged: after.challenged - before.challenged, verified: after.verified - before.verified, passed: after.passed - before.passed },
            { syns: 4n, challenged: 2n, verified: 1n, passed: 2n });
        } finally {
          guard.delete(addr(server));
        }
      });
    }
  }

  test('unguarded destinations: SYNs pass and are counted, SYN-ACKs count as answers', (t) => {
    if (skipReason) return t.skip(skipReason);
    const server = '198.18.2.20';
    const before = counts.getSum(addr(server));
    for (let i = 0; i < 3; i++) assert.equal(run(frame('198.19.8.8', server, segment({ src: '198.19.8.8', dst: server, sport: 43000 + i, dport: 80, flags: TCP_FLAGS.SYN }))).rv, TC_ACT_UNSPEC);
    assert.equal(run(frame(server, '198.19.8.8', segment({ src: server, dst: '198.19.8.8', sport: 80, dport: 43000, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK }))).rv, TC_ACT_UNSPEC);
    const after = counts.getSum(addr(server))!;
    assert.equal(after.syns - (before?.syns ?? 0n), 3n);
    assert.equal(after.synacks - (before?.synacks ?? 0n), 1n);
  });

  test('action drop drops unverified SYNs; action log lets them through; a SYN with data is never challenged', (t) => {
    if (skipReason) return t.skip(skipReason);
    const server = '198.18.3.30';
    const syn = (sport: number, payload?: Buffer) => frame('198.19.9.9', server, segment({ src: '198.19.9.9', dst: server, sport, dport: 80, flags: TCP_FLAGS.SYN, payload }));
    guard.set(addr(server), 1n);
    const c = cfg.get(0)!;
    try {
      cfg.set(0, { ...c, action: TG_SYN_DROP });
      assert.equal(run(syn(44001)).rv, TC_ACT_SHOT);
      cfg.set(0, { ...c, action: TG_SYN_LOG });
      assert.equal(run(syn(44002)).rv, TC_ACT_UNSPEC);
      cfg.set(0, c);
      assert.equal(run(syn(44003, Buffer.from('GET / HTTP/1.1\r\n\r\n'))).rv, TC_ACT_SHOT, 'TCP Fast Open data: dropped, the client retries without');
    } finally {
      cfg.set(0, c);
      guard.delete(addr(server));
    }
  });

  test('with mitigation off (cfg.on = 0) nothing is counted or challenged', (t) => {
    if (skipReason) return t.skip(skipReason);
    const server = '198.18.3.31';
    const c = cfg.get(0)!;
    guard.set(addr(server), 1n);
    try {
      cfg.set(0, { ...c, on: 0 });
      assert.equal(run(frame('198.19.9.9', server, segment({ src: '198.19.9.9', dst: server, sport: 45000, dport: 80, flags: TCP_FLAGS.SYN }))).rv, TC_ACT_UNSPEC);
      assert.equal(counts.getSum(addr(server)), undefined);
    } finally {
      cfg.set(0, c);
      guard.delete(addr(server));
    }
  });

  test('the challenge mark: a packet carrying it is neither filtered nor metered again', (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal(TG_SYN_CHALLENGE_MARK, 0x74675359);
  });
});
