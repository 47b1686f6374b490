// Table test of the metering program (bpf/progs/meter.bpf.c) through
// BPF_PROG_TEST_RUN: the production policy compiler fills the lookup maps,
// then every row's frame runs through the real program in the kernel and the
// row asserts exactly which (tenant, class, direction) counter moved, by how
// many packets and bytes, and which reason counters moved.
//
// Host-ingress rows run through both tg_meter_ingress (tc) and tg_meter_xdp:
// they share the parser and the attribution and must agree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, TypedMap, u32 } from '../src/kernel/index.js';
import {
  TG_CLASS_INLINE_V4, TG_CLASS_V4_INLINE, TG_DIR_EGRESS, TG_DIR_INGRESS, TG_DIR_MAX, TG_TENANT_UNATTRIBUTED,
  TgCounter, TgMeterConfig, TgMeterReason, TgMeterReasons,
} from '../src/kernel/abi.gen.js';
import { PolicyMaps } from '../src/metering/policy-maps.js';
import { reasonTotals } from '../src/metering/datapath.js';
import { compileMetering, parsePolicy, type MeteringPlan } from '../src/policy/index.js';
import {
  arp, ethernet, icmp, icmpv6, ipv4, ipv6, rawL4, tcp, udp, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, IPPROTO, type Ipv6Ext,
} from '../lab/packets.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const OBJECT = join(ROOT, 'build', 'bpf', 'meter.bpf.o');

// The counter array is resized below the default, as the agent may do.
const MAX_TENANTS = 16;
const MAX_CLASSES = 5;
const LO_IFINDEX = 1; // BPF_PROG_TEST_RUN's default device for tc and XDP is the netns' loopback
const IDS = new Map([
  ['alpha', 1],
  ['beta', 2],
  ['gamma', 3],
]);

const CLASS_IDS = new Map([
  ['internet', 0],
  ['mgmt', 1],
  ['internal', 2],
  ['mdns', 3],
  ['filler', 4],
]);
const [INTERNET, MGMT, INTERNAL, MDNS] = [0, 1, 2, 3];

// Generation 0: tenants by address only. Generation 1 additionally gives the
// loopback device (the test-run device) to gamma, for interface attribution.
// Classes in policy order: mgmt (198.19.5.0/24 and, nested inside internal,
// 198.18.7.0/24; SSH and DNS only), internal (the tenants' /16 and /62),
// mdns (any address, UDP 5353).
const POLICY_GEN0 = `
version: 1
classes:
  - name: mgmt
    billable: false
    match: { cidrs: [198.19.5.0/24, 198.18.7.0/24, "2001:2:0:5::/64"], protocols: [tcp, udp], ports: [22, 53] }
  - name: internal
    match: { cidrs: [198.18.0.0/16, "2001:2::/62"] }
  - name: mdns
    match: { protocols: [udp], ports: [5353] }
tenants:
  - name: alpha
    selectors:
      cidrs: [198.18.1.0/24, "2001:2:0:1::/64"]
  - name: beta
    selectors:
      cidrs: [198.18.2.0/24, "2001:2:0:2::/64"]
`;
const POLICY_GEN1 = `${POLICY_GEN0}
  - name: gamma
    selectors:
      interfaces: [lo]
`;

// Every row runs with both ways of finding an IPv4 peer's classes: inline in
// tg_class_gen (the policy's three IPv4 CIDRs) and the tg_class_v4 trie, for
// which a last class of addresses no row uses pushes the count past the
// inline capacity.
const FILLER = `  - name: filler
    match: { cidrs: [${Array.from({ length: TG_CLASS_INLINE_V4 }, (_, i) => `198.19.9.${i}/32`).join(', ')}] }
`;
const LAYOUTS = { inline: (p: string) => p, trie: (p: string) => p.replace('tenants:\n', `${FILLER}tenants:\n`) };

const A4 = '198.18.1.10';
const B4 = '198.18.2.20';
const X4 = '198.19.0.1'; // nobody's
const BAD4 = '198.18.9.9'; // a hand-written gen-0 entry points it at tenant 99 >= MAX_TENANTS
const A6 = '2001:2:0:1::10';
const B6 = '2001:2:0:2::20';
const X6 = '2001:2:0:ff::1';
const M4 = '198.19.5.9'; // in mgmt's CIDR
const N4 = '198.18.7.7'; // in mgmt's nested /24 and in internal's /16
const M6 = '2001:2:0:5::9';

type ReasonName = keyof typeof TgMeterReason extends `TG_REASON_${infer R}` ? R : never;
type Dir = 'ingress' | 'egress';

interface Row {
  name: string;
  /** Host side of the hook: 'ingress' rows run on tc ingress and XDP, 'egress' rows on tc egress. */
  hook: Dir;
  frame: Buffer;
  /** Live policy generation for this row (default 0). */
  gen?: 0 | 1;
  tenant: number;
  /** Traffic class id (default: the default class, 0). */
  cls?: number;
  dir: Dir;
  bytes: number;
  /** Every reason counter that must move (each by exactly one); all others must not. */
  reasons: ReasonName[];
  /** Run on these programs only (default: by hook). */
  only?: string[];
}

const v4 = (o: Partial<Parameters<typeof ipv4>[0]> = {}) => ipv4({ src: A4, dst: X4, l4: udp({ sport: 4000, dport: 53, payload: Buffer.alloc(12) }), ...o });
const v6 = (o: Partial<Parameters<typeof ipv6>[0]> = {}) => ipv6({ src: A6, dst: X6, l4: udp({ sport: 4000, dport: 53, payload: Buffer.alloc(12) }), ...o });
const eth = (payload: ReturnType<typeof ipv4>, vlans?: Parameters<typeof ethernet>[0]['vlans'], padTo?: number) => ethernet({ payload, vlans, padTo });
const ALPHA = IDS.get('alpha')!;
const BETA = IDS.get('beta')!;
const GAMMA = IDS.get('gamma')!;
const UDP12 = 8 + 12;

function extChain(n: number): Ipv6Ext[] {
  const kinds: Ipv6Ext[] = [{ type: 'hopByHop' }, { type: 'destOpts' }, { type: 'routing' }, { type: 'ah' }];
  return Array.from({ length: n }, (_, i) => (i === 0 ? kinds[0]! : kinds[1 + ((i - 1) % 3)]!));
}
const extLen = (chain: Ipv6Ext[]) => chain.reduce((n, e) => n + (e.type === 'ah' ? 24 : 8), 0);

const ROWS: Row[] = [
  // ---- IPv4, L4 protocols, options
  { name: 'IPv4 UDP from a tenant address', hook: 'ingress', frame: eth(v4()), tenant: ALPHA, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv4 UDP to a tenant address', hook: 'ingress', frame: eth(v4({ src: X4, dst: A4 })), tenant: ALPHA, dir: 'ingress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv4 TCP, host-egress to a tenant', hook: 'egress', frame: eth(v4({ src: X4, dst: A4, l4: tcp({ sport: 443, dport: 40000, payload: Buffer.alloc(100) }) })), tenant: ALPHA, dir: 'ingress', bytes: 20 + 20 + 100, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv4 ICMP, host-egress from a tenant', hook: 'egress', frame: eth(v4({ dst: X4, l4: icmp({ payload: Buffer.alloc(56) }) })), tenant: ALPHA, dir: 'egress', bytes: 20 + 8 + 56, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv4 with options (ihl 8)', hook: 'ingress', frame: eth(v4({ options: Buffer.from([0x94, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]), l4: tcp({ sport: 1, dport: 2 }) })), tenant: ALPHA, dir: 'egress', bytes: 32 + 20, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'tenant to tenant at host-ingress: the sender', hook: 'ingress', frame: eth(v4({ src: A4, dst: B4 })), tenant: ALPHA, cls: INTERNAL, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'tenant to tenant at host-egress: the receiver', hook: 'egress', frame: eth(v4({ src: A4, dst: B4 })), tenant: BETA, cls: INTERNAL, dir: 'ingress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv4 padded to the Ethernet minimum: tot_len, not the frame', hook: 'ingress', frame: eth(v4({ l4: udp({ sport: 1, dport: 2 }) }), undefined, 60), tenant: ALPHA, dir: 'egress', bytes: 28, reasons: ['IPV4', 'BY_ADDR'] },

  // ---- IPv4 fragments
  { name: 'IPv4 first fragment (MF, offset 0)', hook: 'ingress', frame: eth(v4({ moreFragments: true, l4: udp({ sport: 1, dport: 2, payload: Buffer.alloc(1472) }) })), tenant: ALPHA, dir: 'egress', bytes: 1500, reasons: ['IPV4', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'IPv4 non-first fragment (no L4 header)', hook: 'ingress', frame: eth(v4({ src: X4, dst: B4, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(300)) })), tenant: BETA, dir: 'ingress', bytes: 320, reasons: ['IPV4', 'FRAGMENT', 'FRAG_NO_PORTS', 'BY_ADDR'] }, // mdns (any peer, UDP 5353) would need its ports
  { name: 'IPv4 last fragment at host-egress', hook: 'egress', frame: eth(v4({ src: B4, dst: X4, fragmentOffset: 2960, l4: rawL4(IPPROTO.TCP, Buffer.alloc(8)) })), tenant: BETA, dir: 'egress', bytes: 28, reasons: ['IPV4', 'FRAGMENT', 'BY_ADDR'] },

  // ---- IPv6 and extension headers
  { name: 'IPv6 UDP from a tenant', hook: 'ingress', frame: eth(v6()), tenant: ALPHA, dir: 'egress', bytes: 40 + UDP12, reasons: ['IPV6', 'BY_ADDR'] },
  { name: 'IPv6 TCP to a tenant', hook: 'ingress', frame: eth(v6({ src: X6, dst: B6, l4: tcp({ sport: 1, dport: 22, payload: Buffer.alloc(7) }) })), tenant: BETA, dir: 'ingress', bytes: 40 + 27, reasons: ['IPV6', 'BY_ADDR'] },
  { name: 'IPv6 ICMPv6 at host-egress', hook: 'egress', frame: eth(v6({ src: X6, dst: A6, l4: icmpv6({ payload: Buffer.alloc(32) }) })), tenant: ALPHA, dir: 'ingress', bytes: 40 + 40, reasons: ['IPV6', 'BY_ADDR'] },
  { name: 'IPv6 hop-by-hop + routing + destination options', hook: 'ingress', frame: eth(v6({ ext: [{ type: 'hopByHop', options: Buffer.from([5, 2, 0, 0]) }, { type: 'routing', data: Buffer.alloc(20) }, { type: 'destOpts' }] })), tenant: ALPHA, dir: 'egress', bytes: 40 + 8 + 24 + 8 + UDP12, reasons: ['IPV6', 'IPV6_EXT', 'BY_ADDR'] },
  { name: 'IPv6 AH then TCP', hook: 'ingress', frame: eth(v6({ ext: [{ type: 'ah' }], l4: tcp({ sport: 5, dport: 6 }) })), tenant: ALPHA, dir: 'egress', bytes: 40 + 24 + 20, reasons: ['IPV6', 'IPV6_EXT', 'BY_ADDR'] },
  { name: 'IPv6 first fragment (fragment header, offset 0)', hook: 'ingress', frame: eth(v6({ ext: [{ type: 'fragment', moreFragments: true }] })), tenant: ALPHA, dir: 'egress', bytes: 40 + 8 + UDP12, reasons: ['IPV6', 'IPV6_EXT', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'IPv6 non-first fragment', hook: 'egress', frame: eth(v6({ src: X6, dst: B6, ext: [{ type: 'hopByHop' }, { type: 'fragment', offset: 1448 }], l4: rawL4(IPPROTO.UDP, Buffer.alloc(200)) })), tenant: BETA, dir: 'ingress', bytes: 40 + 16 + 200, reasons: ['IPV6', 'IPV6_EXT', 'FRAGMENT', 'FRAG_NO_PORTS', 'BY_ADDR'] },
  { name: `IPv6 with exactly TG_MAX_IPV6_EXT (8) extension headers`, hook: 'ingress', frame: eth(v6({ ext: extChain(8) })), tenant: ALPHA, dir: 'egress', bytes: 40 + extLen(extChain(8)) + UDP12, reasons: ['IPV6', 'IPV6_EXT', 'BY_ADDR'] },
  { name: 'IPv6 with 9 extension headers: walk gives up, still counted by address', hook: 'ingress', frame: eth(v6({ ext: extChain(9) })), tenant: ALPHA, dir: 'egress', bytes: 40 + extLen(extChain(9)) + UDP12, reasons: ['IPV6', 'IPV6_EXT', 'IPV6_EXT_LIMIT', 'BY_ADDR'] },
  { name: 'IPv6 jumbogram-style payload_len 0: bytes present', hook: 'ingress', frame: eth(v6({ payloadLength: 0 })), tenant: ALPHA, dir: 'egress', bytes: 40 + UDP12, reasons: ['IPV6', 'BY_ADDR'] },

  // ---- VLAN
  { name: '802.1Q tag, inner IPv4 attributes', hook: 'ingress', frame: eth(v4(), [{ vid: 100 }]), tenant: ALPHA, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'VLAN', 'BY_ADDR'] },
  { name: 'QinQ (802.1ad + 802.1Q), inner IPv6', hook: 'egress', frame: eth(v6({ src: X6, dst: B6 }), [{ vid: 10, tpid: ETH_P_8021AD }, { vid: 20 }]), tenant: BETA, dir: 'ingress', bytes: 40 + UDP12, reasons: ['IPV6', 'VLAN', 'BY_ADDR'] },
  { name: 'VLAN 0 (priority tag)', hook: 'ingress', frame: eth(v4({ src: X4, dst: A4 }), [{ vid: 0, pcp: 5 }]), tenant: ALPHA, dir: 'ingress', bytes: 20 + UDP12, reasons: ['IPV4', 'VLAN', 'BY_ADDR'] },
  { name: 'three tags (beyond TG_MAX_VLAN_DEPTH): L2 payload, unattributed', hook: 'ingress', frame: eth(v4(), [{ vid: 1, tpid: ETH_P_8021AD }, { vid: 2 }, { vid: 3, tpid: ETH_P_8021Q }]), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 4 + 20 + UDP12, reasons: ['NON_IP', 'VLAN', 'UNATTRIBUTED'] },

  // ---- truncated and malformed
  // tc's BPF_PROG_TEST_RUN refuses an IPv4/IPv6 EtherType with less than a whole IP header
  // (the kernel pulls it while building the skb), so untagged cut headers run on XDP only;
  // behind an 802.1Q tag the kernel does not look, and tc sees them too.
  { name: 'Ethernet header only, EtherType IPv4', hook: 'ingress', only: ['tg_meter_xdp'], frame: ethernet({ payload: { etherType: ETH_P_IP, bytes: Buffer.alloc(0) } }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 0, reasons: ['IPV4', 'TRUNCATED', 'UNATTRIBUTED'] },
  { name: 'IPv4 header cut after 12 bytes', hook: 'ingress', only: ['tg_meter_xdp'], frame: ethernet({ payload: { etherType: ETH_P_IP, bytes: v4().bytes.subarray(0, 12) } }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 12, reasons: ['IPV4', 'TRUNCATED', 'UNATTRIBUTED'] },
  { name: 'IPv4 header cut after 12 bytes, 802.1Q tagged', hook: 'ingress', frame: ethernet({ vlans: [{ vid: 7 }], payload: { etherType: ETH_P_IP, bytes: v4().bytes.subarray(0, 12) } }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 12, reasons: ['IPV4', 'VLAN', 'TRUNCATED', 'UNATTRIBUTED'] },
  { name: 'IPv6 header cut after 30 bytes, 802.1Q tagged', hook: 'egress', frame: ethernet({ vlans: [{ vid: 7 }], payload: { etherType: 0x86dd, bytes: v6().bytes.subarray(0, 30) } }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'ingress', bytes: 30, reasons: ['IPV6', 'VLAN', 'TRUNCATED', 'UNATTRIBUTED'] },
  { name: 'cut inside the VLAN tag', hook: 'ingress', frame: ethernet({ payload: { etherType: ETH_P_8021Q, bytes: Buffer.from([0, 5]) } }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 0, reasons: ['NON_IP', 'TRUNCATED', 'UNATTRIBUTED'] },
  { name: 'IPv4 tot_len larger than the frame: bytes present', hook: 'ingress', frame: eth(v4({ totalLength: 1500 })), tenant: ALPHA, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'TRUNCATED', 'BY_ADDR'] },
  { name: 'IPv4 tot_len smaller than the frame: tot_len', hook: 'ingress', frame: eth(v4({ totalLength: 24 })), tenant: ALPHA, dir: 'egress', bytes: 24, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv6 payload_len larger than the frame', hook: 'egress', frame: eth(v6({ src: B6, dst: X6, payloadLength: 9000 })), tenant: BETA, dir: 'egress', bytes: 40 + UDP12, reasons: ['IPV6', 'TRUNCATED', 'BY_ADDR'] },
  { name: 'TCP header cut (L4 missing, L3 intact): the meter does not read L4, so only L3 is judged', hook: 'ingress', frame: ethernet({ payload: { etherType: ETH_P_IP, bytes: v4({ totalLength: 28, l4: tcp({ sport: 1, dport: 2 }) }).bytes.subarray(0, 28) } }), tenant: ALPHA, dir: 'egress', bytes: 28, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv6 extension header cut', hook: 'ingress', frame: ethernet({ payload: { etherType: 0x86dd, bytes: v6({ ext: [{ type: 'hopByHop' }] }).bytes.subarray(0, 44) } }), tenant: ALPHA, dir: 'egress', bytes: 44, reasons: ['IPV6', 'TRUNCATED', 'BY_ADDR'] },
  { name: 'IPv4 ihl 3: malformed, never trusted for attribution', hook: 'ingress', frame: eth(v4({ ihl: 3 })), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 20 + UDP12, reasons: ['MALFORMED', 'UNATTRIBUTED'] },
  { name: 'version 5 under EtherType IPv4: malformed', hook: 'egress', frame: eth(v4({ version: 5 })), tenant: TG_TENANT_UNATTRIBUTED, dir: 'ingress', bytes: 20 + UDP12, reasons: ['MALFORMED', 'UNATTRIBUTED'] },

  // ---- non-IP, unattributed, bad index
  { name: 'ARP: non-IP, L2 payload', hook: 'ingress', frame: ethernet({ payload: arp({ senderIp: A4, targetIp: B4 }) }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 28, reasons: ['NON_IP', 'UNATTRIBUTED'] },
  { name: 'ARP at host-egress', hook: 'egress', frame: ethernet({ payload: arp({ senderIp: A4, targetIp: B4 }), padTo: 60 }), tenant: TG_TENANT_UNATTRIBUTED, dir: 'ingress', bytes: 46, reasons: ['NON_IP', 'UNATTRIBUTED'] },
  { name: 'IPv4 nobody owns, host-ingress', hook: 'ingress', frame: eth(v4({ src: X4, dst: '198.19.0.2' })), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'UNATTRIBUTED'] },
  { name: 'IPv6 nobody owns, host-egress', hook: 'egress', frame: eth(v6({ src: X6, dst: '2001:2:0:fe::1' })), tenant: TG_TENANT_UNATTRIBUTED, dir: 'ingress', bytes: 40 + UDP12, reasons: ['IPV6', 'UNATTRIBUTED'] },
  { name: 'tenant id beyond the counter array', hook: 'ingress', frame: eth(v4({ src: BAD4 })), tenant: TG_TENANT_UNATTRIBUTED, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'BAD_INDEX', 'UNATTRIBUTED'] },

  // ---- traffic classes: peer address (destination of the tenant's egress, source of its ingress), protocol, either port
  { name: 'class by peer CIDR and destination port', hook: 'ingress', frame: eth(v4({ dst: M4 })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'class by peer CIDR and source port (tenant ingress: the peer is the source)', hook: 'egress', frame: eth(v4({ src: M4, dst: A4, l4: tcp({ sport: 22, dport: 40000 }) })), tenant: ALPHA, cls: MGMT, dir: 'ingress', bytes: 40, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'class CIDR matches but the port does not: default class', hook: 'ingress', frame: eth(v4({ dst: M4, l4: udp({ sport: 4000, dport: 80 }) })), tenant: ALPHA, dir: 'egress', bytes: 28, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'class with ports, ICMP has none: default class', hook: 'ingress', frame: eth(v4({ dst: M4, l4: icmp({ payload: Buffer.alloc(8) }) })), tenant: ALPHA, dir: 'egress', bytes: 36, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'class port range, protocol not listed (ICMP type is no port): default', hook: 'egress', frame: eth(v4({ src: M4, dst: A4, l4: rawL4(IPPROTO.TCP, Buffer.alloc(2)) })), tenant: ALPHA, dir: 'ingress', bytes: 22, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'IPv6 class through an extension-header chain', hook: 'ingress', frame: eth(v6({ dst: M6, ext: [{ type: 'hopByHop' }, { type: 'destOpts' }], l4: tcp({ sport: 50000, dport: 22 }) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 40 + 16 + 20, reasons: ['IPV6', 'IPV6_EXT', 'BY_ADDR'] },
  { name: 'nested prefix: the first class in policy order wins (mgmt /24 inside internal /16)', hook: 'ingress', frame: eth(v4({ dst: N4, l4: tcp({ sport: 40000, dport: 22 }) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 40, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'nested prefix: the longest prefix still carries the covering class', hook: 'ingress', frame: eth(v4({ dst: N4, l4: tcp({ sport: 40000, dport: 80 }) })), tenant: ALPHA, cls: INTERNAL, dir: 'egress', bytes: 40, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'class without CIDRs matches any peer', hook: 'ingress', frame: eth(v4({ l4: udp({ sport: 5353, dport: 5353 }) })), tenant: ALPHA, cls: MDNS, dir: 'egress', bytes: 28, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'two classes match: the earlier one wins (internal before mdns)', hook: 'ingress', frame: eth(v4({ dst: B4, l4: udp({ sport: 5353, dport: 5353 }) })), tenant: ALPHA, cls: INTERNAL, dir: 'egress', bytes: 28, reasons: ['IPV4', 'BY_ADDR'] },
  { name: 'unattributed traffic is classified too', hook: 'ingress', frame: eth(v4({ src: X4, dst: M4, l4: udp({ sport: 1, dport: 53 }) })), tenant: TG_TENANT_UNATTRIBUTED, cls: MGMT, dir: 'egress', bytes: 28, reasons: ['IPV4', 'UNATTRIBUTED'] },
  { name: 'non-first fragment, class without ports: matches by CIDR', hook: 'ingress', frame: eth(v4({ dst: B4, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(100)) })), tenant: ALPHA, cls: INTERNAL, dir: 'egress', bytes: 120, reasons: ['IPV4', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'first fragment: ports read, class by port, ports remembered', hook: 'ingress', frame: eth(v4({ dst: M4, id: 777, moreFragments: true, l4: udp({ sport: 4000, dport: 53, payload: Buffer.alloc(100) }) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 20 + 8 + 100, reasons: ['IPV4', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'later fragment of that datagram: the first fragment\'s class', hook: 'ingress', frame: eth(v4({ dst: M4, id: 777, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(60)) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 80, reasons: ['IPV4', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'IPv6 first fragment remembers its ports', hook: 'ingress', frame: eth(v6({ dst: M6, ext: [{ type: 'fragment', moreFragments: true, id: 0x12345678 }], l4: tcp({ sport: 50000, dport: 22 }) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 40 + 8 + 20, reasons: ['IPV6', 'IPV6_EXT', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'IPv6 later fragment gets them', hook: 'ingress', frame: eth(v6({ dst: M6, ext: [{ type: 'fragment', offset: 1448, id: 0x12345678 }], l4: rawL4(IPPROTO.TCP, Buffer.alloc(40)) })), tenant: ALPHA, cls: MGMT, dir: 'egress', bytes: 40 + 8 + 40, reasons: ['IPV6', 'IPV6_EXT', 'FRAGMENT', 'BY_ADDR'] },
  { name: 'a later fragment of a datagram whose first fragment was not seen: default class, reason', hook: 'ingress', frame: eth(v4({ dst: M4, id: 778, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(60)) })), tenant: ALPHA, dir: 'egress', bytes: 80, reasons: ['IPV4', 'FRAGMENT', 'FRAG_NO_PORTS', 'BY_ADDR'] },
  { name: 'non-IP frames are the default class', hook: 'ingress', gen: 1, frame: ethernet({ payload: arp({ senderIp: A4, targetIp: B4 }) }), tenant: GAMMA, dir: 'egress', bytes: 28, reasons: ['NON_IP', 'BY_IFACE'] },

  // ---- generation 1: loopback belongs to gamma
  { name: 'interface owner wins over addresses (host-ingress)', hook: 'ingress', gen: 1, frame: eth(v4({ src: A4, dst: B4 })), tenant: GAMMA, cls: INTERNAL, dir: 'egress', bytes: 20 + UDP12, reasons: ['IPV4', 'BY_IFACE'] },
  { name: 'interface owner (host-egress)', hook: 'egress', gen: 1, frame: eth(v6({ src: X6, dst: A6 })), tenant: GAMMA, dir: 'ingress', bytes: 40 + UDP12, reasons: ['IPV6', 'BY_IFACE'] },
  { name: 'interface owner gets non-IP frames too', hook: 'ingress', gen: 1, frame: ethernet({ payload: arp({ senderIp: X4, targetIp: A4 }) }), tenant: GAMMA, dir: 'egress', bytes: 28, reasons: ['NON_IP', 'BY_IFACE'] },
];

const counterIndex = (tenant: number, cls: number, dir: number): number => (tenant * MAX_CLASSES + cls) * TG_DIR_MAX + dir;

function reasonIndex(r: ReasonName): number {
  return TgMeterReason[`TG_REASON_${r}` as keyof typeof TgMeterReason];
}

for (const [layout, withLayout] of Object.entries(LAYOUTS)) describe(`meter.bpf.c under BPF_PROG_TEST_RUN, IPv4 classes ${layout}`, () => {
  let obj: BpfObject | undefined;
  let skipReason: string | undefined;
  let counters: TypedMap<number, TgCounter>;
  let reasons: TypedMap<number, TgMeterReasons>;
  let config: TypedMap<number, TgMeterConfig>;

  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    obj = BpfObject.open(OBJECT);
    obj.setMaxEntries('tg_meter_counters', MAX_TENANTS * MAX_CLASSES * TG_DIR_MAX);
    obj.setConst('tg_cfg_max_tenants', MAX_TENANTS);
    obj.setConst('tg_cfg_max_classes', MAX_CLASSES);
    obj.load();
    counters = new TypedMap(obj.map('tg_meter_counters'), u32, TgCounter);
    reasons = new TypedMap(obj.map('tg_meter_reasons'), u32, TgMeterReasons);
    config = new TypedMap(obj.map('tg_meter_config'), u32, TgMeterConfig);

    const ctx = { tenantIds: IDS, classIds: CLASS_IDS, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES };
    const plans: MeteringPlan[] = [
      compileMetering(parsePolicy(withLayout(POLICY_GEN0), 'gen0'), { ...ctx, ifindexOf: () => undefined, generation: 0 }),
      compileMetering(parsePolicy(withLayout(POLICY_GEN1), 'gen1'), { ...ctx, ifindexOf: (n) => (n === 'lo' ? LO_IFINDEX : undefined), generation: 1 }),
    ];
    assert.equal(plans[1]!.ifaces.length, 1, 'generation 1 gives lo to gamma');
    for (const p of plans) assert.equal(p.classMaps.gen.flags & TG_CLASS_V4_INLINE, layout === 'inline' ? TG_CLASS_V4_INLINE : 0, `IPv4 classes ${layout}`);
    const maps = new PolicyMaps(obj);
    for (const p of plans) maps.write(p);
    // The compiler refuses ids >= maxTenants, so a stale or foreign entry is written by hand.
    maps.v4.set({ prefixlen: 8 + 24, generation: 0, addr_be: Buffer.from([198, 18, 9, 0]), pad: Buffer.alloc(3) }, { tenant_id: 99, flags: 0 });
  });

  after(() => obj?.close());

  function snapshot(): { c: Map<number, TgCounter>; r: bigint[] } {
    const c = new Map<number, TgCounter>();
    for (let i = 0; i < MAX_TENANTS * MAX_CLASSES * TG_DIR_MAX; i++) c.set(i, counters.getSum(i)!);
    const r = reasonTotals(reasons);
    return { c, r };
  }

  function runAndDiff(prog: string, frame: Buffer, gen: 0 | 1) {
    config.set(0, { generation: gen, flags: 0, metered_netns: 0, pad: 0 });
    const before = snapshot();
    // Pin the device explicitly: skb->ifindex for tc, ingress_ifindex for XDP.
    const ctx = prog === 'tg_meter_xdp' ? Buffer.alloc(24) : Buffer.alloc(192);
    ctx.writeUInt32LE(LO_IFINDEX, prog === 'tg_meter_xdp' ? 12 : 40);
    const res = obj!.program(prog).testRun({ data: frame, ctx });
    const afterS = snapshot();
    const moved: { idx: number; packets: bigint; bytes: bigint }[] = [];
    for (const [idx, c] of afterS.c) {
      const b = before.c.get(idx)!;
      if (c.packets !== b.packets || c.bytes !== b.bytes) moved.push({ idx, packets: c.packets - b.packets, bytes: c.bytes - b.bytes });
    }
    const reasonDelta = afterS.r.map((v, i) => v - before.r[i]!);
    return { res, moved, reasonDelta };
  }

  for (const row of ROWS) {
    const progs = row.only ?? (row.hook === 'ingress' ? ['tg_meter_ingress', 'tg_meter_xdp'] : ['tg_meter_egress']);
    for (const prog of progs) {
      test(`${row.name} [${prog}]`, (t) => {
        if (skipReason) return t.skip(skipReason);
        const { res, moved, reasonDelta } = runAndDiff(prog, row.frame, row.gen ?? 0);
        if (prog === 'tg_meter_xdp') assert.equal(res.retval, 2, 'XDP_PASS');
        else assert.equal(res.retval | 0, -1, 'TC_ACT_UNSPEC: metering never decides');
        assert.deepEqual(res.data.subarray(0, row.frame.length), row.frame, 'the frame is not modified');

        const dir = row.dir === 'ingress' ? TG_DIR_INGRESS : TG_DIR_EGRESS;
        const idx = counterIndex(row.tenant, row.cls ?? INTERNET, dir);
        const name = (i: number) => {
          const r = Math.floor(i / TG_DIR_MAX);
          return `tenant ${Math.floor(r / MAX_CLASSES)} class ${r % MAX_CLASSES} ${i % TG_DIR_MAX === TG_DIR_INGRESS ? 'ingress' : 'egress'}`;
        };
        assert.deepEqual(
          moved.map((m) => ({ counter: name(m.idx), packets: m.packets, bytes: m.bytes })),
          [{ counter: name(idx), packets: 1n, bytes: BigInt(row.bytes) }],
          'exactly one counter moved, by one packet and the L3 bytes',
        );
        const want = new Set(row.reasons.map(reasonIndex));
        const got = reasonDelta.map((d, i) => ({ reason: Object.keys(TgMeterReason)[i], d })).filter((x) => x.d !== 0n);
        assert.deepEqual(
          got,
          [...want].sort((a, b) => a - b).map((i) => ({ reason: Object.keys(TgMeterReason)[i], d: 1n })),
          'reason counters',
        );
      });
    }
  }

  test('entries of the generation that is not live are ignored', (t) => {
    if (skipReason) return t.skip(skipReason);
    // BAD4 -> tenant 99 exists only in generation 0; lo -> gamma only in generation 1.
    const frame = eth(v4({ src: BAD4, dst: X4 }));
    const r1 = runAndDiff('tg_meter_egress', frame, 1);
    assert.deepEqual(r1.moved.map((m) => m.idx), [counterIndex(GAMMA, INTERNAL, TG_DIR_INGRESS)], 'the peer (source) is in internal\'s /16');
    assert.equal(r1.reasonDelta[TgMeterReason.TG_REASON_BAD_INDEX], 0n);
    const r0 = runAndDiff('tg_meter_egress', eth(v4({ src: X4, dst: X4 })), 0);
    assert.deepEqual(r0.moved.map((m) => m.idx), [counterIndex(TG_TENANT_UNATTRIBUTED, INTERNET, TG_DIR_INGRESS)], 'lo is nobody\'s in generation 0');
  });

  test('repeated runs count every packet (per-CPU sums)', (t) => {
    if (skipReason) return t.skip(skipReason);
    config.set(0, { generation: 0, flags: 0, metered_netns: 0, pad: 0 });
    const before = counters.getSum(counterIndex(ALPHA, INTERNET, TG_DIR_EGRESS))!;
    const frame = eth(v4());
    obj!.program('tg_meter_ingress').testRun({ data: frame, repeat: 1000 });
    const afterC = counters.getSum(counterIndex(ALPHA, INTERNET, TG_DIR_EGRESS))!;
    assert.equal(afterC.packets - before.packets, 1000n);
    assert.equal(afterC.bytes - before.bytes, 1000n * BigInt(20 + UDP12));
  });

  test('frames shorter than an Ethernet header cannot be test-run (kernel refuses with EINVAL)', (t) => {
    if (skipReason) return t.skip(skipReason);
    // The parser's TG_PKT_SHORT path is therefore only verifier-checked here;
    // BPF_PROG_TEST_RUN requires at least ETH_HLEN bytes for tc and XDP.
    for (const prog of ['tg_meter_ingress', 'tg_meter_xdp'])
      assert.throws(() => obj!.program(prog).testRun({ data: Buffer.alloc(10) }), /EINVAL/);
  });
});
