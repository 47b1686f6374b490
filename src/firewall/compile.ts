// Compiles the security section's rules into the firewall maps of ONE
// generation (abi.h, "Firewall"). Pure: tenant ids and rule slots come from
// the caller. Rule i of the policy is bit i of every mask; a condition's map
// gives the rules it satisfies, and the datapath takes the lowest bit of the
// AND: the first rule, in document order, that matches (docs/security.md).
import {
  TG_FW_ALLOW, TG_FW_DENY, TG_FW_FROM, TG_FW_LOG, TG_FW_MASK_WORDS, TG_FW_MAX_PREFIXES, TG_FW_MAX_RULES, TG_FW_MAX_SLOTS,
  TG_FW_DST, TG_FW_L7, TG_FW_MAX_TENANT_KEYS, TG_FW_PORTS, TG_FW_PROTO, TG_HONEYPOT_MAX, TG_FW_ON, TG_FW_RATE_LIMIT, TG_FW_REDIRECT, TG_FW_SIDES, TG_FW_SRC, TG_FW_TENANT_KEYS, TG_FW_TO, TG_PORTS,
  TG_FW_HASH_SRC4, TG_FW_PFX_DST4, TG_FW_PFX_DST6, TG_FW_PFX_LENS, TG_FW_PFX_SRC4, TG_FW_PFX_SRC6, TG_FW_PFX_TABLES,
  TG_PROTOCOLS, TG_RL_MAX, TG_RL_MAX_STANDING, TG_RL_PER_DESTINATION, TG_RL_PER_RULE, TG_RL_PER_SOURCE, TG_RL_PER_TENANT, TG_DIR_INGRESS, TG_DIR_EGRESS,
  type TgFwGen, type TgFwMask, type TgFwRule, type TgFwTenantKey, type TgHoneypot, type TgFwPfxV4Key, type TgFwPfxV6Key, type TgLpmV4Key, type TgLpmV6Key, type TgRlCfg,
} from '../kernel/abi.gen.js';
import { networkOf, parseAddress, parseCidr, type Cidr, type Family } from '../policy/cidr.js';
import { lpmKey, type MapEntry } from '../policy/compile-metering.js';
import { PORT_PROTOCOLS, type SecuritySection } from '../policy/schema.js';
import { compileL7, L7CompileError, type L7Plan } from './l7.js';

export type FirewallRule = SecuritySection['rules'][number];
export type FirewallAction = FirewallRule['action'];
export type DefaultAction = SecuritySection['defaultAction'];

export const ACTION_CODES: Readonly<Record<FirewallAction, number>> = {
  allow: TG_FW_ALLOW, deny: TG_FW_DENY, log: TG_FW_LOG, 'rate-limit': TG_FW_RATE_LIMIT, redirect: TG_FW_REDIRECT,
};

/** Protocols whose packets carry ports the rules can match (tcp, udp, sctp). */
export { PORT_PROTOCOLS };

/** Hit-counter slot 0 counts the default action. */
export const DEFAULT_SLOT = 0;

export interface FirewallPlan {
  generation: 0 | 1;
  gen: TgFwGen;
  /** The prefix tables as trie entries; the tables gen.flags marks hashed (TG_FW_HASH_SRC4 << table) are written as `hashed` instead. */
  src: { v4: MapEntry<TgLpmV4Key, TgFwMask>[]; v6: MapEntry<TgLpmV6Key, TgFwMask>[] };
  dst: { v4: MapEntry<TgLpmV4Key, TgFwMask>[]; v6: MapEntry<TgLpmV6Key, TgFwMask>[] };
  hashed: { v4: MapEntry<TgFwPfxV4Key, TgFwMask>[]; v6: MapEntry<TgFwPfxV6Key, TgFwMask>[] };
  /** Every protocol of the generation, index generation * TG_PROTOCOLS + protocol. */
  protocols: MapEntry<number, TgFwMask>[];
  /** The ports some rule's ranges hold (index generation * TG_PORTS + port); every other port of the generation is 0. */
  ports: MapEntry<number, TgFwMask>[];
  tenants: MapEntry<TgFwTenantKey, TgFwMask>[];
  /** Every rule bit of the generation (unused bits zero), index generation * TG_FW_MAX_RULES + bit. */
  rules: MapEntry<number, TgFwRule>[];
  /** The rules in policy order with their hit-counter slots. */
  ruleSlots: Array<{ name: string; action: FirewallAction; slot: number }>;
  /** Every rate-limit index of the generation (unused ones zero), index generation * TG_RL_MAX + i: standing limits first, then rules'. */
  limits: MapEntry<number, TgRlCfg>[];
  /** The standing limits in policy order with their counter slots. */
  limitSlots: Array<{ name: string; slot: number }>;
  /** L7 signatures (src/firewall/l7.ts), when the policy has some. */
  l7?: L7Plan;
  /** Every redirect target of the generation (unused ones zero), index generation * TG_HONEYPOT_MAX + i. */
  honeypots: MapEntry<number, TgHoneypot>[];
}

export type RateLimit = NonNullable<FirewallRule['rateLimit']>;
export type StandingLimit = SecuritySection['rateLimits'][number];

/** The counter-slot name of a standing limit (rule names cannot hold a colon). */
export const limitSlotName = (name: string): string => `limit:${name}`;

/** Everything in a security section that needs a counter slot: the rules, then the standing limits. */
export function slotNames(security: SecuritySection): string[] {
  return [...security.rules.map((r) => r.name), ...security.rateLimits.map((l) => limitSlotName(l.name))];
}

const PER_CODES: Readonly<Record<RateLimit['per'], number>> = {
  source: TG_RL_PER_SOURCE, destination: TG_RL_PER_DESTINATION, rule: TG_RL_PER_RULE, tenant: TG_RL_PER_TENANT,
};
const UNIT = 1_000_000_000n;
/** A default byte burst (one second's worth) is capped here, so a bucket's billionths fit in a u64. */
export const MAX_BURST_BYTES = 1_000_000_000;
/** ... and is at least one full-size Ethernet packet, or a slow limit could never pass one. */
export const MIN_BURST_BYTES = 1500;

/** A limit's bucket parameters: bursts default to one second's worth (bytes: at least 1500); tokens in billionths (abi.h, "Rate limits"). */
export function limitCfg(l: RateLimit, slot: number, scope: { tenantId?: number; dirs?: number } = {}): TgRlCfg {
  const pps = BigInt(l.pps ?? 0);
  const bytesPs = BigInt(Math.floor((l.bps ?? 0) / 8));
  const pktCap = pps ? BigInt(l.burst ?? l.pps!) * UNIT : 0n;
  const byteCap = bytesPs ? BigInt(l.burstBytes ?? Math.min(Math.max(Number(bytesPs), MIN_BURST_BYTES), MAX_BURST_BYTES)) * UNIT : 0n;
  const fill = (cap: bigint, rate: bigint) => (rate ? (cap + rate - 1n) / rate : 0n);
  return {
    pps, pkt_cap: pktCap, pkt_fill_ns: fill(pktCap, pps),
    bytes_ps: bytesPs, byte_cap: byteCap, byte_fill_ns: fill(byteCap, bytesPs),
    slot, tenant_id: scope.tenantId ?? 0, per: PER_CODES[l.per], dirs: scope.dirs ?? 0, pad: Buffer.alloc(6),
  };
}

const DIRS: Readonly<Record<StandingLimit['direction'], number>> = {
  ingress: 1 << TG_DIR_INGRESS, egress: 1 << TG_DIR_EGRESS, both: (1 << TG_DIR_INGRESS) | (1 << TG_DIR_EGRESS),
};

export interface FirewallContext {
  generation: 0 | 1;
  /** Tenant name -> id (the ledger's). */
  tenantIds: ReadonlyMap<string, number>;
  /** Rule name -> hit-counter slot (1..TG_FW_MAX_SLOTS-1); see assignSlots. */
  slots: ReadonlyMap<string, number>;
  /** An interface's index where the datapath runs (redirect targets); undefined when there is none. */
  ifindexOf?: (name: string) => number | undefined;
}

/** A honeypot target as the datapath has it: the interface, and the neighbour to send to (family 0: the packet's own destination). */
export function honeypotOf(ifname: string, via: string | undefined, ifindexOf: ((name: string) => number | undefined) | undefined, field: string): TgHoneypot {
  const ifindex = ifindexOf?.(ifname);
  if (ifindex === undefined) throw new FirewallCompileError([`${field}: no interface "${ifname}" here`]);
  const a = via === undefined ? undefined : parseAddress(via);
  const via_be = Buffer.alloc(16);
  a?.addr.copy(via_be);
  return { ifindex, family: a ? (a.family === 4 ? AF_INET : AF_INET6) : 0, via_be };
}
const AF_INET = 2;
const AF_INET6 = 10;

export class FirewallCompileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`security policy cannot be compiled (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'FirewallCompileError';
  }
}

const ALL = (1n << BigInt(TG_FW_MAX_RULES)) - 1n;
const WORD = (1n << 64n) - 1n;

export function toMask(bits: bigint): TgFwMask {
  return { w: Array.from({ length: TG_FW_MASK_WORDS }, (_, i) => (bits >> BigInt(64 * i)) & WORD) };
}

/** toMask, remembering each mask it made: many entries share a few rule sets, and encoding is the costly part. */
function maskMemo(): (bits: bigint) => TgFwMask {
  const made = new Map<bigint, TgFwMask>();
  return (bits) => {
    let m = made.get(bits);
    if (!m) made.set(bits, (m = toMask(bits)));
    return m;
  };
}

export function fromMask(m: TgFwMask): bigint {
  return m.w.reduce((acc, w, i) => acc | (w << BigInt(64 * i)), 0n);
}

/**
 * Keeps every rule's slot (by name) and gives new rules the lowest free one.
 * Returns the slots of this policy and those handed out now (whose counters
 * the writer zeroes: a slot may have counted a rule that is gone).
 */
export function assignSlots(previous: ReadonlyMap<string, number>, names: readonly string[]): { slots: Map<string, number>; fresh: number[] } {
  const slots = new Map<string, number>();
  const used = new Set<number>();
  for (const n of names) {
    const s = previous.get(n);
    if (s !== undefined && Number.isInteger(s) && s > DEFAULT_SLOT && s < TG_FW_MAX_SLOTS && !used.has(s)) {
      slots.set(n, s);
      used.add(s);
    }
  }
  const fresh: number[] = [];
  let next = DEFAULT_SLOT + 1;
  for (const n of names) {
    if (slots.has(n)) continue;
    while (used.has(next)) next++;
    if (next >= TG_FW_MAX_SLOTS) throw new FirewallCompileError([`more than ${TG_FW_MAX_SLOTS - 1} rules`]);
    slots.set(n, next);
    used.add(next);
    fresh.push(next);
  }
  return { slots, fresh };
}

function bitOf(i: number): bigint {
  return 1n << BigInt(i);
}

/**
 * Trie entries for one address condition (source or destination): a /0 per
 * family (so every lookup answers) and every prefix some rule names, each
 * carrying the rules without this condition plus every rule with a prefix
 * containing it (a trie answers with the longest match only).
 */
function prefixEntries(rules: readonly FirewallRule[], pick: (r: FirewallRule) => readonly string[], generation: 0 | 1) {
  let any = 0n;
  const named = new Map<number | string, { cidr: Cidr; bits: bigint }>();
  rules.forEach((r, i) => {
    const cidrs = pick(r);
    if (cidrs.length === 0) any |= bitOf(i);
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      const id = prefixId(cidr.family, cidr.addr, cidr.prefix);
      const e = named.get(id) ?? { cidr, bits: 0n };
      e.bits |= bitOf(i);
      named.set(id, e);
    }
  });
  const out = { v4: [] as MapEntry<TgLpmV4Key, TgFwMask>[], v6: [] as MapEntry<TgLpmV6Key, TgFwMask>[] };
  const mask = maskMemo();
  for (const family of [4, 6] as Family[]) {
    const width = family === 4 ? 32 : 128;
    const zero: Cidr = { family, addr: Buffer.alloc(width / 8), prefix: 0 };
    const list = [...named.values()].filter((e) => e.cidr.family === family);
    if (!list.some((e) => e.cidr.prefix === 0)) list.push({ cidr: zero, bits: 0n });
    const byId = new Map(list.map((e) => [prefixId(family, e.cidr.addr, e.cidr.prefix), e.bits]));
    const lengths = [...new Set(list.map((e) => e.cidr.prefix))].sort((a, b) => a - b);
    for (const { cidr } of list) {
      // Every named prefix containing this one is its truncation to a length some prefix has.
      let bits = any;
      for (const len of lengths) {
        if (len > cidr.prefix) break;
        bits |= byId.get(prefixId(family, cidr.addr, len)) ?? 0n;
      }
      const entry = { key: lpmKey(generation, cidr.addr, cidr.prefix), value: mask(bits) };
      (family === 4 ? out.v4 : out.v6).push(entry as MapEntry<TgLpmV4Key & TgLpmV6Key, TgFwMask>);
    }
  }
  return out;
}

/**
 * The prefix tables (of the sides some rule has prefixes on) with at most
 * TG_FW_PFX_LENS distinct lengths, as the datapath's exact-match hashes
 * (abi.h, enum tg_fw_pfx_table): the trie's entries less a /0 that holds no
 * rule, since a lookup that finds nothing answers no rule too.
 */
function hashTables(src: FirewallPlan['src'] | undefined, dst: FirewallPlan['dst'] | undefined, generation: 0 | 1) {
  const out = { v4: [] as FirewallPlan['hashed']['v4'], v6: [] as FirewallPlan['hashed']['v6'], flags: 0, n: Buffer.alloc(TG_FW_PFX_TABLES), lens: Buffer.alloc(TG_FW_PFX_TABLES * TG_FW_PFX_LENS) };
  const tables = [[TG_FW_PFX_SRC4, src?.v4], [TG_FW_PFX_SRC6, src?.v6], [TG_FW_PFX_DST4, dst?.v4], [TG_FW_PFX_DST6, dst?.v6]] as const;
  for (const [table, entries] of tables) {
    if (!entries) continue;
    const kept = entries.filter((e) => e.key.prefixlen > 8 || e.value.w.some((w) => w !== 0n));
    const lengths = [...new Set(kept.map((e) => e.key.prefixlen - 8))].sort((a, b) => b - a);
    if (lengths.length > TG_FW_PFX_LENS) continue;
    out.flags |= TG_FW_HASH_SRC4 << table;
    out.n[table] = lengths.length;
    lengths.forEach((len, i) => (out.lens[table * TG_FW_PFX_LENS + i] = len));
    const to = table === TG_FW_PFX_SRC6 || table === TG_FW_PFX_DST6 ? out.v6 : out.v4;
    for (const e of kept) to.push({ key: { generation, table, prefixlen: e.key.prefixlen - 8, pad: 0, addr_be: e.key.addr_be }, value: e.value });
  }
  return out;
}

/**
 * Identity of addr's network of length len: a number for IPv4 (no string or
 * copy per prefix: a 10,000-prefix list looks up every prefix at each
 * length), a string for IPv6.
 */
function prefixId(family: Family, addr: Buffer, len: number): number | string {
  if (family === 4) return len * 2 ** 32 + (len === 0 ? 0 : (addr.readUInt32BE(0) & (-1 << (32 - len))) >>> 0);
  return `${len}/${networkOf(addr, len).toString('latin1')}`;
}

/** Whether a rule's protocol condition holds for protocol p (ports alone imply tcp, udp or sctp). */
export function protocolMatches(r: FirewallRule, p: number): boolean {
  if (r.protocols.length > 0) return r.protocols.includes(p);
  return r.ports.length === 0 || PORT_PROTOCOLS.has(p);
}

export function compileFirewall(security: SecuritySection, ctx: FirewallContext): FirewallPlan {
  const { rules } = security;
  const { generation } = ctx;
  const problems: string[] = [];
  if (rules.length > TG_FW_MAX_RULES) problems.push(`security.rules: ${rules.length} rules, at most ${TG_FW_MAX_RULES}; put prefixes that share a verdict into one rule's src or dst`);
  rules.forEach((r, i) => {
    if (r.tenant !== undefined && !ctx.tenantIds.has(r.tenant)) problems.push(`security.rules[${i}].tenant: no tenant "${r.tenant}"`);
    if (!ctx.slots.has(r.name)) problems.push(`security.rules[${i}]: no hit-counter slot for rule "${r.name}"`);
  });
  const standing = security.rateLimits;
  standing.forEach((l, i) => {
    if (l.tenant !== undefined && !ctx.tenantIds.has(l.tenant)) problems.push(`security.rateLimits[${i}].tenant: no tenant "${l.tenant}"`);
    if (!ctx.slots.has(limitSlotName(l.name))) problems.push(`security.rateLimits[${i}]: no counter slot for limit "${l.name}"`);
  });
  const ruleLimits = rules.flatMap((r) => (r.action === 'rate-limit' && r.rateLimit ? [r] : []));
  if (standing.length > TG_RL_MAX_STANDING) problems.push(`security.rateLimits: ${standing.length} limits, at most ${TG_RL_MAX_STANDING}`);
  if (standing.length + ruleLimits.length > TG_RL_MAX) {
    problems.push(`security.rules: ${ruleLimits.length} rate-limit rules and ${standing.length} standing limits, at most ${TG_RL_MAX} together`);
  }
  if (problems.length) throw new FirewallCompileError(problems);

  const limitAt = new Map<string, number>(); // rule name -> 1 + limit index
  const cfgs: TgRlCfg[] = standing.map((l) => limitCfg(l, ctx.slots.get(limitSlotName(l.name))!, {
    tenantId: l.tenant === undefined ? 0 : ctx.tenantIds.get(l.tenant)!, dirs: DIRS[l.direction],
  }));
  for (const r of ruleLimits) {
    cfgs.push(limitCfg(r.rateLimit!, ctx.slots.get(r.name)!));
    limitAt.set(r.name, cfgs.length);
  }
  const unused: TgRlCfg = { pps: 0n, pkt_cap: 0n, pkt_fill_ns: 0n, bytes_ps: 0n, byte_cap: 0n, byte_fill_ns: 0n, slot: 0, tenant_id: 0, per: 0, dirs: 0, pad: Buffer.alloc(6) };
  const limits = Array.from({ length: TG_RL_MAX }, (_, i) => ({ key: generation * TG_RL_MAX + i, value: cfgs[i] ?? unused }));

  const active = rules.length === 0 ? 0n : ALL >> BigInt(TG_FW_MAX_RULES - rules.length);
  let anyPort = 0n;
  let toTenant = 0n;
  let fromTenant = 0n;
  let anySide = 0n;
  const named = new Map<string, { to: bigint; from: bigint }>();
  rules.forEach((r, i) => {
    const b = bitOf(i);
    if (r.ports.length === 0) anyPort |= b;
    const to = r.direction !== 'egress';
    const from = r.direction !== 'ingress';
    if (r.tenant === undefined) {
      if (to && from) anySide |= b;
      else if (to) toTenant |= b;
      else fromTenant |= b;
    } else {
      const e = named.get(r.tenant) ?? { to: 0n, from: 0n };
      if (to) e.to |= b;
      if (from) e.from |= b;
      named.set(r.tenant, e);
    }
  });

  const tenants: MapEntry<TgFwTenantKey, TgFwMask>[] = [];
  for (const [name, e] of named) {
    const tenant_id = ctx.tenantIds.get(name)!;
    tenants.push({ key: { tenant_id, generation, side: TG_FW_TO, pad: Buffer.alloc(2) }, value: toMask(toTenant | e.to) });
    tenants.push({ key: { tenant_id, generation, side: TG_FW_FROM, pad: Buffer.alloc(2) }, value: toMask(fromTenant | e.from) });
  }
  if (tenants.length > TG_FW_MAX_TENANT_KEYS / 2) throw new FirewallCompileError([`security.rules: ${named.size} tenants named, at most ${TG_FW_MAX_TENANT_KEYS / 4}`]);

  const src = prefixEntries(rules, (r) => r.src, generation);
  const dst = prefixEntries(rules, (r) => r.dst, generation);
  for (const [what, e] of [['src', src], ['dst', dst]] as const) {
    const n = Math.max(e.v4.length, e.v6.length);
    if (n > TG_FW_MAX_PREFIXES / 2) throw new FirewallCompileError([`security.rules: ${n} distinct ${what} prefixes in one family, at most ${TG_FW_MAX_PREFIXES / 2}`]);
  }

  const ruleBits = rules.map((_, i) => bitOf(i));
  const protoMask = maskMemo(); // a few distinct rule sets over 256 protocols
  const protocols = Array.from({ length: TG_PROTOCOLS }, (_, p) => {
    let bits = 0n;
    rules.forEach((r, i) => {
      if (protocolMatches(r, p)) bits |= ruleBits[i]!;
    });
    return { key: generation * TG_PROTOCOLS + p, value: protoMask(bits) };
  });

  const portBits = new Map<number, bigint>();
  rules.forEach((r, i) => {
    const b = bitOf(i);
    for (const { from, to } of r.ports) for (let p = from; p <= to; p++) portBits.set(p, (portBits.get(p) ?? 0n) | b);
  });
  const portMask = maskMemo();
  const ports = [...portBits].sort(([a], [b]) => a - b).map(([p, bits]) => ({ key: generation * TG_PORTS + p, value: portMask(bits) }));

  // Redirect targets: one entry per distinct (interface, neighbour).
  const targets = new Map<string, number>(); // key -> 1 + index
  const honeypots: TgHoneypot[] = [];
  const honeypotAt = new Map<string, number>(); // rule name -> 1 + index
  rules.forEach((r, i) => {
    if (r.action !== 'redirect' || !r.redirectTo) return;
    const key = `${r.redirectTo} ${r.redirectVia ?? ''}`;
    let at = targets.get(key);
    if (at === undefined) {
      if (honeypots.length >= TG_HONEYPOT_MAX) throw new FirewallCompileError([`security.rules[${i}].redirectTo: more than ${TG_HONEYPOT_MAX} redirect targets`]);
      honeypots.push(honeypotOf(r.redirectTo, r.redirectVia, ctx.ifindexOf, `security.rules[${i}].redirectTo`));
      targets.set(key, (at = honeypots.length));
    }
    honeypotAt.set(r.name, at);
  });
  const none: TgHoneypot = { ifindex: 0, family: 0, via_be: Buffer.alloc(16) };
  const honeypotEntries = Array.from({ length: TG_HONEYPOT_MAX }, (_, i) => ({ key: generation * TG_HONEYPOT_MAX + i, value: honeypots[i] ?? none }));

  const ruleEntries = Array.from({ length: TG_FW_MAX_RULES }, (_, bit) => {
    const r = rules[bit];
    return {
      key: generation * TG_FW_MAX_RULES + bit,
      value: {
        slot: r ? ctx.slots.get(r.name)! : 0, action: r ? ACTION_CODES[r.action] : 0, limit: r ? limitAt.get(r.name) ?? 0 : 0,
        honeypot: r ? honeypotAt.get(r.name) ?? 0 : 0, pad: 0,
      },
    };
  });

  let flags = TG_FW_ON;
  if (tenants.length > 0) flags |= TG_FW_TENANT_KEYS;
  if (anySide !== active) flags |= TG_FW_SIDES;
  if (rules.some((r) => r.src.length > 0)) flags |= TG_FW_SRC;
  if (rules.some((r) => r.dst.length > 0)) flags |= TG_FW_DST;
  if (rules.some((r) => r.protocols.length > 0 || r.ports.length > 0)) flags |= TG_FW_PROTO;
  if (rules.some((r) => r.ports.length > 0)) flags |= TG_FW_PORTS;
  const hashed = hashTables(flags & TG_FW_SRC ? src : undefined, flags & TG_FW_DST ? dst : undefined, generation);
  flags |= hashed.flags;
  let l7: L7Plan | undefined;
  if (security.l7 && security.l7.signatures.length > 0) {
    try {
      l7 = compileL7(security.l7, generation);
    } catch (err) {
      if (err instanceof L7CompileError) throw new FirewallCompileError([err.message]);
      throw err;
    }
    flags |= TG_FW_L7;
  }
  const gen: TgFwGen = {
    active: toMask(active), any_port: toMask(anyPort), to_tenant: toMask(toTenant), from_tenant: toMask(fromTenant), any_side: toMask(anySide),
    flags, log_rate: security.events.logRate, default_action: ACTION_CODES[security.defaultAction], standing: standing.length,
    pfx_n: hashed.n, pfx_lens: hashed.lens, pad: Buffer.alloc(2),
  };
  return {
    generation, gen, src, dst, hashed: { v4: hashed.v4, v6: hashed.v6 }, protocols, ports, tenants, rules: ruleEntries,
    ruleSlots: rules.map((r) => ({ name: r.name, action: r.action, slot: ctx.slots.get(r.name)! })),
    limits,
    limitSlots: standing.map((l) => ({ name: l.name, slot: ctx.slots.get(limitSlotName(l.name))! })),
    l7,
    honeypots: honeypotEntries,
  };
}

/** A generation that filters nothing (flags 0): what an absent security section compiles to. */
export function emptyFwGen(): TgFwGen {
  const zero = toMask(0n);
  return { active: zero, any_port: zero, to_tenant: zero, from_tenant: zero, any_side: zero, flags: 0, log_rate: 0, default_action: TG_FW_ALLOW, standing: 0,
    pfx_n: Buffer.alloc(TG_FW_PFX_TABLES), pfx_lens: Buffer.alloc(TG_FW_PFX_TABLES * TG_FW_PFX_LENS), pad: Buffer.alloc(2),
  };
}
