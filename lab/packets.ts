// A small packet builder for tests and the lab's traffic drivers: Ethernet with 802.1Q/802.1ad tags, IPv4
// (options, fragments), IPv6 with extension-header chains, TCP, UDP, ICMP,
// ICMPv6 and ARP. Lengths and checksums are computed unless a test overrides
// them on purpose (truncated or lying headers), so frames built here are also
// good enough to inject on a real interface.
//
//   const frame = ethernet({ vlans: [{ vid: 10 }], payload: ipv4({ src, dst, l4: udp({ sport: 1, dport: 2, payload }) }) });
import { isIPv4, isIPv6 } from 'node:net';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IPPROTO = {
  HOPOPTS: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ROUTING: 43,
  FRAGMENT: 44,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  SCTP: 132,
} as const;

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

/** A packet (L3) with its EtherType, as ipv4()/ipv6()/arp() return it. */
export interface L3 {
  etherType: number;
  bytes: Buffer;
}

/** An L4 header + payload whose checksum is filled in once the IP addresses are known. */
export interface L4 {
  proto: number;
  /** pseudo: the IPv4/IPv6 pseudo-header sum input without length/proto, or null (no checksum). */
  build(pseudo: { src: Buffer; dst: Buffer } | null): Buffer;
}

// ---------------------------------------------------------------- addresses

/** Parses a MAC "02:00:00:00:00:01". */
export function mac(s: string): Buffer {
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new TypeError(`mac: '${s}' is not a MAC address`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** IPv4 or IPv6 address in network order (4 or 16 bytes). */
export function ipBytes(addr: string): Buffer {
  if (isIPv4(addr)) return Buffer.from(addr.split('.').map(Number));
  if (!isIPv6(addr)) throw new TypeError(`ipBytes: '${addr}' is not an IPv4 or IPv6 address`);
  // An embedded dotted quad (::ffff:198.18.0.1) becomes its two hex groups.
  const s = addr.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a, b, c, d) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  const [head, rest] = s.split('::') as [string, string | undefined];
  const groups = (x: string) => (x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...Array<number>(8 - h.length - r.length).fill(0), ...r];
  if (all.length !== 8) throw new TypeError(`ipBytes: cannot parse '${addr}'`);
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

// ---------------------------------------------------------------- checksums

/** The Internet checksum (RFC 1071) of the concatenated buffers. */
export function inetChecksum(...parts: Buffer[]): number {
  const b = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudoHeader(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

// ---------------------------------------------------------------- L4

export interface TcpOptions {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** TCP_FLAGS bits; default SYN. */
  flags?: number;
  window?: number;
  payload?: Buffer;
}

export function tcp(o: TcpOptions): L4 {
  checkPort('tcp.sport', o.sport);
  checkPort('tcp.dport', o.dport);
  return {
    proto: IPPROTO.TCP,
    build(pseudo) {
      const payload = o.payload ?? Buffer.alloc(0);
      const h = Buffer.alloc(20);
      h.writeUInt16BE(o.sport, 0);
      h.writeUInt16BE(o.dport, 2);
      h.writeUInt32BE((o.seq ?? 1) >>> 0, 4);
      h.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
      h[12] = 5 << 4;
      h[13] = o.flags ?? TCP_FLAGS.SYN;
      h.writeUInt16BE(o.window ?? 65535, 14);
      const seg = Buffer.concat([h, payload]);
      if (pseudo) seg.writeUInt16BE(inetChecksum(pseudoHeader(pseudo.src, pseudo.dst, IPPROTO.TCP, seg.length), seg), 16);
      return seg;
    },
  };
}

export interface UdpOptions {
  sport: number;
  dport: number;
  payload?: Buffer;
}

export function udp(o: UdpOptions): L4 {
  checkPort('udp.sport', o.sport);
  checkPort('udp.dport', o.dport);
  return {
    proto: IPPROTO.UDP,
    build(pseudo) {
      const payload = o.payload ?? Buffer.alloc(0);
      const seg = Buffer.alloc(8 + payload.length);
      seg.writeUInt16BE(o.sport, 0);
      seg.writeUInt16BE(o.dport, 2);
      seg.writeUInt16BE(seg.length, 4);
      payload.copy(seg, 8);
      if (pseudo) {
        const c = inetChecksum(pseudoHeader(pseudo.src, pseudo.dst, IPPROTO.UDP, seg.length), seg);
        seg.writeUInt16BE(c === 0 ? 0xffff : c, 6);
      }
      return seg;
    },
  };
}

export interface IcmpOptions {
  /** Default: echo request (8 for ICMP, 128 for ICMPv6). */
  type?: number;
  code?: number;
  id?: number;
  seq?: number;
  payload?: Buffer;
}

function icmpLike(proto: number, defType: number, o: IcmpOptions): L4 {
  return {
    proto,
    build(pseudo) {
      const payload = o.payload ?? Buffer.alloc(0);
      const m = Buffer.alloc(8 + payload.length);
      m[0] = o.type ?? defType;
      m[1] = o.code ?? 0;
      m.writeUInt16BE(o.id ?? 1, 4);
      m.writeUInt16BE(o.seq ?? 1, 6);
      payload.copy(m, 8);
      // ICMP sums the message alone; ICMPv6 includes the pseudo header.
      const c = proto === IPPROTO.ICMP ? inetChecksum(m) : pseudo ? inetChecksum(pseudoHeader(pseudo.src, pseudo.dst, proto, m.length), m) : 0;
      m.writeUInt16BE(c, 2);
      return m;
    },
  };
}

export const icmp = (o: IcmpOptions = {}): L4 => icmpLike(IPPROTO.ICMP, 8, o);
export const icmpv6 = (o: IcmpOptions = {}): L4 => icmpLike(IPPROTO.ICMPV6, 128, o);

/** Raw bytes after the IP header(s) under any protocol number (e.g. a non-first fragment). */
export function rawL4(proto: number, bytes: Buffer): L4 {
  checkByte('rawL4.proto', proto);
  return { proto, build: () => Buffer.from(bytes) };
}

// ---------------------------------------------------------------- IPv4

export interface Ipv4Options {
  src: string;
  dst: string;
  l4: L4;
  ttl?: number;
  id?: number;
  tos?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragmentOffset?: number;
  /** IP options, padded with zeros (EOL) to a multiple of 4 bytes; at most 40. */
  options?: Buffer;
  /** Overrides tot_len (to build lying or truncated packets). */
  totalLength?: number;
  /** Overrides the IHL field (in 32-bit words). */
  ihl?: number;
  /** Overrides the version nibble. */
  version?: number;
}

export function ipv4(o: Ipv4Options): L3 {
  const src = ipBytes(o.src);
  const dst = ipBytes(o.dst);
  if (src.length !== 4) throw new TypeError(`ipv4.src: '${o.src}' is not an IPv4 address`);
  if (dst.length !== 4) throw new TypeError(`ipv4.dst: '${o.dst}' is not an IPv4 address`);
  const opts = o.options ?? Buffer.alloc(0);
  const optLen = Math.ceil(opts.length / 4) * 4;
  if (optLen > 40) throw new RangeError(`ipv4.options: ${opts.length} bytes exceed the 40 an IPv4 header can hold`);
  const fo = o.fragmentOffset ?? 0;
  if (!Number.isInteger(fo) || fo < 0 || fo % 8 !== 0 || fo / 8 > 0x1fff)
    throw new RangeError(`ipv4.fragmentOffset: ${fo} must be a multiple of 8 below 65536`);
  // A non-first fragment carries payload, not an L4 header: no L4 checksum either.
  const payload = o.l4.build(fo === 0 ? { src, dst } : null);
  const hlen = 20 + optLen;
  const h = Buffer.alloc(hlen);
  h[0] = ((o.version ?? 4) << 4) | (o.ihl ?? hlen / 4);
  h[1] = o.tos ?? 0;
  const tot = o.totalLength ?? hlen + payload.length;
  checkU16('ipv4.totalLength', tot);
  h.writeUInt16BE(tot, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  h.writeUInt16BE((o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | (fo / 8), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.l4.proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return { etherType: ETH_P_IP, bytes: Buffer.concat([h, payload]) };
}

// ---------------------------------------------------------------- IPv6

export type Ipv6Ext =
  | { type: 'hopByHop' | 'destOpts'; /** option bytes; padded with PadN to a multiple of 8 with the 2-byte header */ options?: Buffer }
  | { type: 'routing'; routingType?: number; segmentsLeft?: number; data?: Buffer }
  | { type: 'fragment'; /** bytes, multiple of 8 */ offset?: number; moreFragments?: boolean; id?: number }
  | { type: 'ah'; spi?: number; seq?: number; /** ICV length in bytes, multiple of 4 (default 12) */ icvLength?: number };

const EXT_PROTO: Record<Ipv6Ext['type'], number> = {
  hopByHop: IPPROTO.HOPOPTS,
  destOpts: IPPROTO.DSTOPTS,
  routing: IPPROTO.ROUTING,
  fragment: IPPROTO.FRAGMENT,
  ah: IPPROTO.AH,
};

function padOptions(opts: Buffer, headerBytes: number): Buffer {
  const total = Math.max(8, Math.ceil((headerBytes + opts.length) / 8) * 8);
  const pad = total - headerBytes - opts.length;
  const out = Buffer.alloc(opts.length + pad);
  opts.copy(out, 0);
  if (pad === 1) out[opts.length] = 0; // Pad1
  else if (pad >= 2) {
    out[opts.length] = 1; // PadN
    out[opts.length + 1] = pad - 2;
  }
  return out;
}

function extHeader(e: Ipv6Ext, next: number, i: number): Buffer {
  switch (e.type) {
    case 'hopByHop':
    case 'destOpts': {
      const body = padOptions(e.options ?? Buffer.alloc(0), 2);
      const h = Buffer.concat([Buffer.from([next, (2 + body.length) / 8 - 1]), body]);
      return h;
    }
    case 'routing': {
      const data = e.data ?? Buffer.alloc(4);
      const len = Math.max(8, Math.ceil((4 + data.length) / 8) * 8);
      const h = Buffer.alloc(len);
      h[0] = next;
      h[1] = len / 8 - 1;
      h[2] = e.routingType ?? 0;
      h[3] = e.segmentsLeft ?? 0;
      data.copy(h, 4);
      return h;
    }
    case 'fragment': {
      const off = e.offset ?? 0;
      if (!Number.isInteger(off) || off < 0 || off % 8 !== 0 || off > 0xfff8)
        throw new RangeError(`ipv6.ext[${i}].offset: ${off} must be a multiple of 8 below 65536`);
      const h = Buffer.alloc(8);
      h[0] = next;
      h.writeUInt16BE(off | (e.moreFragments ? 1 : 0), 2);
      h.writeUInt32BE((e.id ?? 0xabcd) >>> 0, 4);
      return h;
    }
    case 'ah': {
      const icv = e.icvLength ?? 12;
      if (!Number.isInteger(icv) || icv < 0 || icv % 4 !== 0) throw new RangeError(`ipv6.ext[${i}].icvLength: ${icv} must be a multiple of 4`);
      const h = Buffer.alloc(12 + icv);
      h[0] = next;
      h[1] = h.length / 4 - 2;
      h.writeUInt32BE((e.spi ?? 0x100) >>> 0, 4);
      h.writeUInt32BE((e.seq ?? 1) >>> 0, 8);
      return h;
    }
  }
}

export interface Ipv6Options {
  src: string;
  dst: string;
  l4: L4;
  /** Extension headers in wire order. */
  ext?: Ipv6Ext[];
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Overrides payload_len (0 = jumbogram-style, or a lie). */
  payloadLength?: number;
  /** Overrides the version nibble. */
  version?: number;
}

export function ipv6(o: Ipv6Options): L3 {
  const src = ipBytes(o.src);
  const dst = ipBytes(o.dst);
  if (src.length !== 16) throw new TypeError(`ipv6.src: '${o.src}' is not an IPv6 address`);
  if (dst.length !== 16) throw new TypeError(`ipv6.dst: '${o.dst}' is not an IPv6 address`);
  const ext = o.ext ?? [];
  const nonFirst = ext.some((e) => e.type === 'fragment' && (e.offset ?? 0) !== 0);
  const l4 = o.l4.build(nonFirst ? null : { src, dst });
  const headers: Buffer[] = ext.map((e, i) => extHeader(e, i + 1 < ext.length ? EXT_PROTO[ext[i + 1]!.type] : o.l4.proto, i));
  const payload = Buffer.concat([...headers, l4]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((((o.version ?? 6) << 28) | ((o.trafficClass ?? 0) << 20) | (o.flowLabel ?? 0)) >>> 0, 0);
  const plen = o.payloadLength ?? payload.length;
  checkU16('ipv6.payloadLength', plen);
  h.writeUInt16BE(plen, 4);
  h[6] = ext.length ? EXT_PROTO[ext[0]!.type] : o.l4.proto;
  h[7] = o.hopLimit ?? 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return { etherType: ETH_P_IPV6, bytes: Buffer.concat([h, payload]) };
}

// ---------------------------------------------------------------- ARP

export interface ArpOptions {
  /** 1 request (default), 2 reply. */
  op?: number;
  senderMac?: string;
  senderIp: string;
  targetMac?: string;
  targetIp: string;
}

export function arp(o: ArpOptions): L3 {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // Ethernet
  b.writeUInt16BE(ETH_P_IP, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(o.op ?? 1, 6);
  mac(o.senderMac ?? '02:00:00:00:00:01').copy(b, 8);
  const sip = ipBytes(o.senderIp);
  const tip = ipBytes(o.targetIp);
  if (sip.length !== 4) throw new TypeError(`arp.senderIp: '${o.senderIp}' is not an IPv4 address`);
  if (tip.length !== 4) throw new TypeError(`arp.targetIp: '${o.targetIp}' is not an IPv4 address`);
  sip.copy(b, 14);
  mac(o.targetMac ?? '00:00:00:00:00:00').copy(b, 18);
  tip.copy(b, 24);
  return { etherType: ETH_P_ARP, bytes: b };
}

// ---------------------------------------------------------------- Ethernet

export interface Vlan {
  vid: number;
  pcp?: number;
  /** ETH_P_8021Q (default) or ETH_P_8021AD (the outer tag of QinQ). */
  tpid?: number;
}

export interface EthernetOptions {
  dst?: string;
  src?: string;
  /** Tags outermost first. */
  vlans?: Vlan[];
  payload: L3 | { etherType: number; bytes: Buffer };
  /** Pads the frame to this many bytes (e.g. 60, the Ethernet minimum without FCS). */
  padTo?: number;
}

export function ethernet(o: EthernetOptions): Buffer {
  const parts: Buffer[] = [mac(o.dst ?? '02:00:00:00:00:02'), mac(o.src ?? '02:00:00:00:00:01')];
  (o.vlans ?? []).forEach((v, i) => {
    if (!Number.isInteger(v.vid) || v.vid < 0 || v.vid > 4095) throw new RangeError(`ethernet.vlans[${i}].vid: ${v.vid} is not in 0..4095`);
    const t = Buffer.alloc(4);
    t.writeUInt16BE(v.tpid ?? ETH_P_8021Q, 0);
    t.writeUInt16BE(((v.pcp ?? 0) << 13) | v.vid, 2);
    parts.push(t);
  });
  checkU16('ethernet.payload.etherType', o.payload.etherType);
  const et = Buffer.alloc(2);
  et.writeUInt16BE(o.payload.etherType, 0);
  parts.push(et, o.payload.bytes);
  const frame = Buffer.concat(parts);
  if (o.padTo !== undefined && frame.length < o.padTo) return Buffer.concat([frame, Buffer.alloc(o.padTo - frame.length)]);
  return frame;
}

/** Length of the Ethernet header plus tags of a frame built with `vlans` tags. */
export const l2Length = (vlans = 0): number => 14 + 4 * vlans;

// ---------------------------------------------------------------- checks

function checkPort(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`${field}: ${v} is not a port (0..65535)`);
}
function checkU16(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`${field}: ${v} does not fit 16 bits`);
}
function checkByte(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${field}: ${v} does not fit 8 bits`);
}
