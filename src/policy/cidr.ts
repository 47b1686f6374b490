// IPv4/IPv6 addresses and CIDR prefixes: strict parsing, canonical text
// (RFC 5952 for IPv6), host-bit checks with a suggested network, containment.

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address in network byte order: 4 or 16 bytes. */
  addr: Buffer;
  /** Prefix length in bits: 0..32 or 0..128. */
  prefix: number;
}

export class CidrError extends Error {
  constructor(message: string, readonly suggestion?: string) {
    super(message);
    this.name = 'CidrError';
  }
}

function parseV4(s: string): Buffer | undefined {
  // By character rather than split and a regex per part: rule sets hold tens of thousands of prefixes.
  const out = Buffer.allocUnsafe(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // the end closes the last part like a dot
    if (c === 0x2e) {
      if (digits === 0 || part === 4) return undefined;
      out[part++] = value;
      value = 0;
      digits = 0;
      continue;
    }
    if (c < 0x30 || c > 0x39) return undefined;
    // Leading zeros are refused: "010" reads as octal in some tools, decimal in others.
    if (digits > 0 && value === 0) return undefined;
    value = value * 10 + (c - 0x30);
    digits++;
    if (value > 255) return undefined;
  }
  return part === 4 ? out : undefined;
}

function parseV6(s: string): Buffer | undefined {
  if (s.length === 0 || s.length > 45) return undefined;
  let head = s;
  let v4tail: Buffer | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    v4tail = parseV4(s.slice(lastColon + 1));
    if (!v4tail) return undefined;
    head = s.slice(0, lastColon + 1) + '0:0'; // two placeholder groups, replaced below
  }
  const dbl = head.indexOf('::');
  if (dbl !== head.lastIndexOf('::')) return undefined;
  const groups = (part: string): string[] | undefined => (part === '' ? [] : part.split(':'));
  let all: string[] | undefined;
  if (dbl >= 0) {
    const left = groups(head.slice(0, dbl));
    const right = groups(head.slice(dbl + 2));
    if (!left || !right) return undefined;
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    all = [...left, ...Array<string>(missing).fill('0'), ...right];
  } else {
    all = groups(head);
  }
  if (!all || all.length !== 8) return undefined;
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return undefined;
    out.writeUInt16BE(parseInt(all[i], 16), i * 2);
  }
  if (v4tail) v4tail.copy(out, 12);
  return out;
}

/** Parses a bare IPv4 or IPv6 address; undefined when it is neither. */
export function parseAddress(s: string): { family: Family; addr: Buffer } | undefined {
  if (s.includes(':')) {
    const a = parseV6(s);
    return a && { family: 6, addr: a };
  }
  const a = parseV4(s);
  return a && { family: 4, addr: a };
}

const V4_MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function maskInPlace(addr: Buffer, prefix: number): Buffer {
  for (let i = 0; i < addr.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    addr[i] &= bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return addr;
}

/** A copy of addr with every bit beyond prefix cleared: the network of addr/prefix. */
export function networkOf(addr: Buffer, prefix: number): Buffer {
  return maskInPlace(Buffer.from(addr), prefix);
}

/** True when every bit of addr beyond prefix is zero. */
export function hostBitsZero(addr: Buffer, prefix: number): boolean {
  for (let i = Math.max(0, prefix >> 3); i < addr.length; i++) {
    const bits = prefix - i * 8;
    const hostBits = bits <= 0 ? 0xff : 0xff >> bits;
    if (addr[i]! & hostBits) return false;
  }
  return true;
}

export function formatAddress(family: Family, addr: Buffer): string {
  if (family === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  const g = Array.from({ length: 8 }, (_, i) => addr.readUInt16BE(i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.addr)}/${c.prefix}`;
}

/**
 * Parses "198.18.0.0/15", "2001:2::/48", a bare address (a host prefix), or an
 * IPv4-mapped IPv6 prefix (::ffff:198.18.0.0/112), which is returned in its
 * IPv4 form because the datapath sees those packets as IPv4. Host bits must be
 * zero: the error suggests the network that was probably meant.
 */
export function parseCidr(text: string): Cidr {
  if (typeof text !== 'string') throw new CidrError(`expected a CIDR string, got ${typeof text}`);
  const s = text.trim();
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const parsed = parseAddress(addrText);
  if (!parsed) {
    throw new CidrError(`"${text}" is not an IPv4 or IPv6 address/prefix (e.g. 198.18.0.0/24 or 2001:2::/48)`);
  }
  const max = parsed.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > max) {
      throw new CidrError(`"${text}" has an invalid prefix length "${p}"; IPv${parsed.family} prefixes are 0..${max}`);
    }
    prefix = Number(p);
  }
  let c: Cidr = { family: parsed.family, addr: parsed.addr, prefix };
  if (!hostBitsZero(c.addr, c.prefix)) {
    const net = formatCidr({ ...c, addr: networkOf(c.addr, c.prefix) });
    throw new CidrError(`"${text}" has host bits set; did you mean ${net}?`, net);
  }
  if (c.family === 6 && c.prefix >= 96 && c.addr.subarray(0, 12).equals(V4_MAPPED)) {
    c = { family: 4, addr: Buffer.from(c.addr.subarray(12)), prefix: c.prefix - 96 };
  }
  return c;
}

/** Canonical text of a CIDR string (throws CidrError). */
export function normalizeCidr(text: string): string {
  return formatCidr(parseCidr(text));
}

/** True when a contains b (a is the same or a shorter prefix covering b). */
export function cidrContains(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family || a.prefix > b.prefix) return false;
  return networkOf(b.addr, a.prefix).equals(a.addr);
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}
