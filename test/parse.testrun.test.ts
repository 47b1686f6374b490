// bpf/lib/parse.h through its test wrapper (bpf/tests/parse.bpf.c): each row's
// frame runs through tg_parse in tc and XDP context under BPF_PROG_TEST_RUN,
// and the row checks the struct pkt_meta the parser produced: what the meter
// does not expose (ports, TCP flags, ICMP type/code, offsets, VLAN tags). The
// struct's layout and the flag values are read from the object's BTF.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, TypedMap, u32, type Codec } from '../src/kernel/index.js';
import { abiFromBtf, dumpBtf } from '../tools/gen-abi/btf.js';
import { codecFromObject } from '../tools/gen-abi/runtime-codec.js';
import {
  ethernet, icmp, icmpv6, ipBytes, ipv4, ipv6, rawL4, tcp, udp, ETH_P_8021AD, ETH_P_IP, ETH_P_IPV6, IPPROTO, TCP_FLAGS, type Ipv6Ext,
} from '../lab/packets.js';

const OBJECT = join(fileURLToPath(import.meta.url), '..', '..', 'build', 'bpf', 'tests', 'parse.bpf.o');

interface PktMeta {
  frame_len: number;
  l3_bytes: number;
  flags: number;
  l3_proto: number;
  l2_len: number;
  l3_off: number;
  l4_off: number;
  vlan_tci: number;
  vlan_depth: number;
  ip_ver: number;
  l4_proto: number;
  ipv6_ext: number;
  frag_off: number;
  icmp_type: number;
  icmp_code: number;
  sport: number; // network order in the struct; the codec reads little endian
  dport: number;
  tcp_flags: number;
  saddr: Buffer;
  daddr: Buffer;
}

type Flag = 'SHORT' | 'TRUNCATED' | 'MALFORMED' | 'VLAN' | 'VLAN_LIMIT' | 'FRAGMENT' | 'IPV6_EXT' | 'EXT_LIMIT' | 'HAS_L4' | 'HAS_ADDR';

interface Row {
  name: string;
  frame: Buffer;
  /** Exactly these flags. */
  flags: Flag[];
  expect: Partial<Omit<PktMeta, 'flags' | 'sport' | 'dport' | 'saddr' | 'daddr'>> & { sport?: number; dport?: number; saddr?: string; daddr?: string };
  /** tc's test run refuses an IP EtherType without a whole IP header. */
  xdpOnly?: boolean;
}

const ETH_HLEN = 14;
const S4 = '198.18.3.1';
const D4 = '198.18.3.2';
const S6 = '2001:2:0:3::1';
const D6 = '2001:2:0:3::2';
const swap16 = (x: number) => ((x & 0xff) << 8) | (x >> 8);
const chain = (n: number): Ipv6Ext[] => Array.from({ length: n }, (_, i) => (i === 0 ? { type: 'hopByHop' } : { type: 'destOpts' }));

const ROWS: Row[] = [
  {
    name: 'IPv4 TCP SYN: ports, flags, offsets, addresses',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, l4: tcp({ sport: 40000, dport: 443, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK }) }) }),
    flags: ['HAS_L4', 'HAS_ADDR'],
    expect: { ip_ver: 4, l3_proto: ETH_P_IP, l2_len: 14, l3_off: 14, l4_off: 34, l4_proto: IPPROTO.TCP, sport: 40000, dport: 443, tcp_flags: 0x12, l3_bytes: 40, frame_len: 54, saddr: S4, daddr: D4 },
  },
  {
    name: 'IPv4 with 12 bytes of options: L4 after IHL',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, options: Buffer.alloc(12, 1), l4: udp({ sport: 5353, dport: 53 }) }) }),
    flags: ['HAS_L4', 'HAS_ADDR'],
    expect: { l4_off: 14 + 32, l4_proto: IPPROTO.UDP, sport: 5353, dport: 53, l3_bytes: 40 },
  },
  {
    name: 'IPv4 ICMP echo reply type/code',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, l4: icmp({ type: 3, code: 3 }) }) }),
    flags: ['HAS_L4', 'HAS_ADDR'],
    expect: { l4_proto: IPPROTO.ICMP, icmp_type: 3, icmp_code: 3 },
  },
  {
    name: 'IPv4 first fragment has L4',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, moreFragments: true, l4: udp({ sport: 7, dport: 8 }) }) }),
    flags: ['FRAGMENT', 'HAS_L4', 'HAS_ADDR'],
    expect: { frag_off: 0, sport: 7, dport: 8 },
  },
  {
    name: 'IPv4 non-first fragment has none',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(16, 0xee)) }) }),
    flags: ['FRAGMENT', 'HAS_ADDR'],
    expect: { frag_off: 1480, l4_proto: IPPROTO.UDP, sport: 0, dport: 0 },
  },
  {
    name: 'IPv6 UDP',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, l4: udp({ sport: 1, dport: 65535 }) }) }),
    flags: ['HAS_L4', 'HAS_ADDR'],
    expect: { ip_ver: 6, l3_proto: ETH_P_IPV6, l4_off: 54, sport: 1, dport: 65535, l3_bytes: 48, saddr: S6, daddr: D6 },
  },
  {
    name: 'IPv6 ICMPv6 behind hop-by-hop, routing, AH, destination options',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, ext: [{ type: 'hopByHop' }, { type: 'routing', data: Buffer.alloc(12) }, { type: 'ah' }, { type: 'destOpts' }], l4: icmpv6({ type: 135 }) }) }),
    flags: ['IPV6_EXT', 'HAS_L4', 'HAS_ADDR'],
    expect: { ipv6_ext: 4, l4_off: 54 + 8 + 16 + 24 + 8, l4_proto: IPPROTO.ICMPV6, icmp_type: 135 },
  },
  {
    name: 'IPv6 first fragment: L4 after the fragment header',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, ext: [{ type: 'fragment', moreFragments: true }], l4: tcp({ sport: 22, dport: 50000 }) }) }),
    flags: ['IPV6_EXT', 'FRAGMENT', 'HAS_L4', 'HAS_ADDR'],
    expect: { frag_off: 0, l4_off: 62, sport: 22, dport: 50000 },
  },
  {
    name: 'IPv6 non-first fragment: next header reported, no L4',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, ext: [{ type: 'fragment', offset: 2896 }], l4: rawL4(IPPROTO.TCP, Buffer.alloc(40)) }) }),
    flags: ['IPV6_EXT', 'FRAGMENT', 'HAS_ADDR'],
    expect: { frag_off: 2896, l4_proto: IPPROTO.TCP, ipv6_ext: 1 },
  },
  {
    name: 'IPv6 with 8 extension headers: all walked',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, ext: chain(8), l4: udp({ sport: 3, dport: 4 }) }) }),
    flags: ['IPV6_EXT', 'HAS_L4', 'HAS_ADDR'],
    expect: { ipv6_ext: 8, l4_off: 54 + 64, sport: 3, dport: 4 },
  },
  {
    name: 'IPv6 with 9 extension headers: gives up, no L4',
    frame: ethernet({ payload: ipv6({ src: S6, dst: D6, ext: chain(9), l4: udp({ sport: 3, dport: 4 }) }) }),
    flags: ['IPV6_EXT', 'EXT_LIMIT', 'HAS_ADDR'],
    expect: { ipv6_ext: 8, l4_proto: IPPROTO.DSTOPTS, sport: 0 },
  },
  {
    name: 'QinQ: depth 2, innermost TCI, inner IPv4',
    frame: ethernet({ vlans: [{ vid: 100, tpid: ETH_P_8021AD }, { vid: 200, pcp: 5 }], payload: ipv4({ src: S4, dst: D4, l4: udp({ sport: 9, dport: 10 }) }) }),
    flags: ['VLAN', 'HAS_L4', 'HAS_ADDR'],
    expect: { vlan_depth: 2, vlan_tci: (5 << 13) | 200, l2_len: 22, l3_off: 22, l4_off: 42, l3_proto: ETH_P_IP, sport: 9 },
  },
  {
    name: 'VLAN 0 priority tag',
    frame: ethernet({ vlans: [{ vid: 0, pcp: 6 }], payload: ipv6({ src: S6, dst: D6, l4: icmpv6() }) }),
    flags: ['VLAN', 'HAS_L4', 'HAS_ADDR'],
    expect: { vlan_depth: 1, vlan_tci: 6 << 13, l3_off: 18, icmp_type: 128 },
  },
  {
    name: 'three tags: stops at the limit',
    frame: ethernet({ vlans: [{ vid: 1 }, { vid: 2 }, { vid: 3 }], payload: ipv4({ src: S4, dst: D4, l4: udp({ sport: 1, dport: 2 }) }) }),
    flags: ['VLAN', 'VLAN_LIMIT'],
    expect: { vlan_depth: 2, ip_ver: 0, l2_len: 22, l3_bytes: 4 + 28 },
  },
  {
    name: 'TCP header cut',
    frame: ethernet({ payload: { etherType: ETH_P_IP, bytes: ipv4({ src: S4, dst: D4, totalLength: 30, l4: tcp({ sport: 1, dport: 2 }) }).bytes.subarray(0, 30) } }),
    flags: ['TRUNCATED', 'HAS_ADDR'],
    expect: { l4_proto: IPPROTO.TCP, l3_bytes: 30, sport: 0 },
  },
  {
    name: 'IPv4 header cut',
    frame: ethernet({ payload: { etherType: ETH_P_IP, bytes: Buffer.alloc(19, 0x45) } }),
    flags: ['TRUNCATED'],
    expect: { ip_ver: 4, l3_bytes: 19 },
    xdpOnly: true,
  },
  {
    name: 'IPv4 ihl 4: malformed',
    frame: ethernet({ payload: ipv4({ src: S4, dst: D4, ihl: 4, l4: udp({ sport: 1, dport: 2 }) }) }),
    flags: ['MALFORMED'],
    expect: { ip_ver: 4, l3_bytes: 28 },
  },
];

describe('bpf/lib/parse.h under BPF_PROG_TEST_RUN', () => {
  let obj: BpfObject | undefined;
  let skipReason: string | undefined;
  let out: TypedMap<number, PktMeta>;
  let flagBits: Map<string, number>;

  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    const meta = codecFromObject<PktMeta>(OBJECT, 'pkt_meta') as Codec<PktMeta>;
    const flags = abiFromBtf(dumpBtf(OBJECT), OBJECT, 'pkt_flag').enums.find((e) => e.name === 'pkt_flag');
    assert.ok(flags, 'enum pkt_flag is in the wrapper object\'s BTF');
    flagBits = new Map(flags.values.map((v) => [v.name.replace(/^TG_PKT_/, ''), Number(v.value)]));
    obj = BpfObject.open(OBJECT);
    obj.load();
    out = new TypedMap(obj.map('parse_out'), u32, meta);
  });

  after(() => obj?.close());

  // cgroup_skb sees the same packets from the IP header on (the test run
  // strips the Ethernet header): offsets move by 14, L2 is empty. Tagged
  // frames do not reach a socket tagged, so they have no cgroup row.
  const l3Row = (row: Row): Row | undefined => {
    if (row.xdpOnly || row.flags.includes('VLAN') || row.flags.includes('VLAN_LIMIT')) return undefined;
    const e = { ...row.expect, l2_len: 0, l3_off: 0 };
    if (e.l4_off) e.l4_off -= ETH_HLEN;
    if (e.frame_len !== undefined) e.frame_len -= ETH_HLEN;
    return { ...row, expect: e };
  };

  for (const row of ROWS) {
    const runs: Array<[string, Row, number]> = (row.xdpOnly ? ['parse_xdp'] : ['parse_tc', 'parse_xdp']).map((p) => [p, row, row.frame.length]);
    const cg = l3Row(row);
    if (cg) runs.push(['parse_cg', cg, row.frame.length - ETH_HLEN]);
    for (const [prog, r, frameLen] of runs) {
      test(`${r.name} [${prog}]`, (t) => {
        if (skipReason) return t.skip(skipReason);
        out.set(0, out.value.decode(Buffer.alloc(out.value.size)));
        obj!.program(prog).testRun({ data: r.frame });
        const m = out.get(0)!;
        const names = [...flagBits].filter(([, bit]) => m.flags & bit).map(([n]) => n).sort();
        assert.deepEqual(names, [...r.flags].sort(), 'flags');
        const { sport, dport, saddr, daddr, ...plain } = r.expect;
        for (const [k, v] of Object.entries(plain)) assert.equal(m[k as keyof PktMeta], v, k);
        if (sport !== undefined) assert.equal(swap16(m.sport), sport, 'sport');
        if (dport !== undefined) assert.equal(swap16(m.dport), dport, 'dport');
        if (saddr !== undefined) assert.deepEqual(m.saddr.subarray(0, ipBytes(saddr).length), ipBytes(saddr), 'saddr');
        if (daddr !== undefined) assert.deepEqual(m.daddr.subarray(0, ipBytes(daddr).length), ipBytes(daddr), 'daddr');
        assert.equal(m.frame_len, frameLen, 'frame_len');
      });
    }
  }
});
