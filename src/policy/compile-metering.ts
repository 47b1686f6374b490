// Compiles the tenants and metering sections into the desired content of the
// metering datapath's lookup maps for ONE generation. Pure: the caller
// supplies tenant ids (from the ledger) and interface indexes (from the host).
import {
  TG_CLASS_DEFAULT, TG_CLASS_INLINE_V4, TG_CLASS_V4_INLINE, TG_MAX_CGROUPS, TG_MAX_CLASSES, TG_MAX_CLASS_RULES, TG_MAX_IFINDEX, TG_MAX_PREFIXES, TG_PORTS, TG_PROTOCOLS, TG_TENANT_UNATTRIBUTED,
  type TgCgroupKey, type TgCgroupRef, type TgClassGen, type TgIfaceKey, type TgLpmV4Key, type TgLpmV6Key, type TgTenantRef,
} from '../kernel/abi.gen.js';
import { cgroupCoveringRoot } from './cgroup-match.js';
import { cidrContains, parseCidr, type Cidr } from './cidr.js';
import { DEFAULT_CLASS, type AttachMode, type Policy } from './schema.js';

export interface MapEntry<K, V> {
  key: K;
  value: V;
}

export interface MeteringPlan {
  generation: 0 | 1;
  v4: MapEntry<TgLpmV4Key, TgTenantRef>[];
  v6: MapEntry<TgLpmV6Key, TgTenantRef>[];
  ifaces: MapEntry<TgIfaceKey, TgTenantRef>[];
  /** Cgroup id -> tenant, for the cgroups the caller found matching tenants' globs. */
  cgroups: MapEntry<TgCgroupKey, TgCgroupRef>[];
  /**
   * Where the cgroup hooks attach (relative to the cgroup2 mount): the deepest
   * cgroup covering every tenant glob; undefined when no tenant selects by cgroup.
   */
  cgroupRoot: string | undefined;
  /** Interfaces to attach, in policy order: metered ones (which are also filtered), then those only filtered (security.interfaces). */
  attach: { ifname: string; ifindex: number; mode: AttachMode; metered: boolean }[];
  tenants: { name: string; id: number }[];
  /** Every class with its ledger id; the default class (id 0) first. */
  classes: { name: string; id: number; billable: boolean }[];
  /** The traffic-class maps of this generation (see struct tg_class_gen in abi.h). */
  classMaps: ClassMaps;
  /** Things that did not stop the compile (a tenant interface that does not exist yet). */
  warnings: string[];
}

/** Array maps are given as (slot, mask) with only the non-zero slots listed. */
export interface ClassMaps {
  gen: TgClassGen;
  v4: MapEntry<TgLpmV4Key, number>[];
  v6: MapEntry<TgLpmV6Key, number>[];
  /** Slot generation * TG_PROTOCOLS + protocol. */
  protocols: MapEntry<number, number>[];
  /** Slot generation * TG_PORTS + port. */
  ports: MapEntry<number, number>[];
  /** Slot generation * TG_MAX_CLASS_RULES + bit -> class id. */
  ids: MapEntry<number, number>[];
}

export interface MeteringContext {
  /** Tenant name -> id, as the ledger assigned them; 0 is the unattributed row. */
  tenantIds: ReadonlyMap<string, number>;
  /** Class name -> id, as the ledger assigned them; the default class is 0. Absent: the policy must define no classes. */
  classIds?: ReadonlyMap<string, number>;
  /** Class capacity of the datapath's counter array; ids must be below it. */
  maxClasses?: number;
  /** Cgroup id -> tenant name: existing cgroups matching the tenants' cgroup globs (first tenant wins). */
  cgroupTenants?: ReadonlyMap<bigint, string>;
  /** Cgroup id -> container counter slot (1..TG_MAX_CONTAINERS-1) for the containers among those cgroups. */
  containerSlots?: ReadonlyMap<bigint, number>;
  ifindexOf: (ifname: string) => number | undefined;
  /** The generation to write: the one that is NOT live. */
  generation: 0 | 1;
  /** Size of the datapath's tenant counter array; ids must be below it. */
  maxTenants?: number;
}

export class CompileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`metering policy cannot be compiled (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'CompileError';
  }
}

// Both generations live in the same maps during a switch, so one generation
// may use at most half of each map.
const MAX_PREFIXES_PER_GEN = TG_MAX_PREFIXES / 2;

/** Slot of an interface entry in tg_tenant_iface (an array: ifindex * 2 + generation). */
export function ifaceSlot(k: TgIfaceKey): number {
  return k.ifindex * 2 + k.generation;
}

/** LPM key bytes: [prefixlen u32][generation u8][address]; prefixlen counts the generation byte. */
export function lpmKey(generation: 0 | 1, addr: Buffer, prefix: number): TgLpmV4Key | TgLpmV6Key {
  return { prefixlen: 8 + prefix, generation, addr_be: Buffer.from(addr), pad: Buffer.alloc(3) };
}

const byAddr = (a: MapEntry<{ addr_be: Buffer; prefixlen: number }, unknown>, b: MapEntry<{ addr_be: Buffer; prefixlen: number }, unknown>): number =>
  Buffer.compare(a.key.addr_be, b.key.addr_be) || a.key.prefixlen - b.key.prefixlen;

export function compileMetering(policy: Policy, ctx: MeteringContext): MeteringPlan {
  const problems: string[] = [];
  const warnings: string[] = [];
  const { generation } = ctx;
  if (generation !== 0 && generation !== 1) throw new RangeError(`generation must be 0 or 1, got ${String(generation)}`);

  const tenants: { name: string; id: number }[] = [];
  const idOwner = new Map<number, string>();
  for (const t of policy.tenants) {
    const id = ctx.tenantIds.get(t.name);
    if (id === undefined) {
      problems.push(`tenant "${t.name}" has no tenant id`);
      continue;
    }
    if (!Number.isInteger(id) || id <= TG_TENANT_UNATTRIBUTED || id > 0xffff_ffff) {
      problems.push(`tenant "${t.name}" has id ${id}; ids are 1..4294967295 (0 is the unattributed row)`);
      continue;
    }
    if (ctx.maxTenants !== undefined && id >= ctx.maxTenants) {
      problems.push(`tenant "${t.name}" has id ${id}, beyond the datapath's ${ctx.maxTenants} tenant counters`);
      continue;
    }
    const other = idOwner.get(id);
    if (other !== undefined) {
      problems.push(`tenants "${other}" and "${t.name}" have the same id ${id}`);
      continue;
    }
    idOwner.set(id, t.name);
    tenants.push({ name: t.name, id });
  }

  const v4: MeteringPlan['v4'] = [];
  const v6: MeteringPlan['v6'] = [];
  const ifaces: MeteringPlan['ifaces'] = [];
  const seenIf = new Map<number, string>();
  for (const t of policy.tenants) {
    const id = ctx.tenantIds.get(t.name);
    if (id === undefined || idOwner.get(id) !== t.name) continue;
    const value: TgTenantRef = { tenant_id: id, flags: 0 };
    for (const text of t.selectors.cidrs) {
      const c = parseCidr(text); // validated by the schema; throws only on a hand-built policy
      const key = lpmKey(generation, c.addr, c.prefix);
      (c.family === 4 ? v4 : v6).push({ key, value: { ...value } });
    }
    for (const ifname of t.selectors.interfaces) {
      const ifindex = ctx.ifindexOf(ifname);
      if (ifindex === undefined) {
        warnings.push(`interface "${ifname}" of tenant "${t.name}" does not exist; its traffic is not attributed by interface until it does and the policy is re-applied`);
        continue;
      }
      if (ifindex >= TG_MAX_IFINDEX) {
        problems.push(`interface "${ifname}" of tenant "${t.name}" has ifindex ${ifindex}; the meter attributes by interface only below ${TG_MAX_IFINDEX}: select this tenant by CIDR instead`);
        continue;
      }
      const prev = seenIf.get(ifindex);
      if (prev !== undefined) {
        problems.push(`interface "${ifname}" of tenant "${t.name}" has ifindex ${ifindex}, already used by ${prev}`);
        continue;
      }
      seenIf.set(ifindex, `"${ifname}" of tenant "${t.name}"`);
      ifaces.push({ key: { ifindex, generation }, value: { ...value } });
    }
  }

  const cgroups: MeteringPlan['cgroups'] = [];
  for (const [cgroupId, name] of ctx.cgroupTenants ?? []) {
    const id = ctx.tenantIds.get(name);
    if (id === undefined || idOwner.get(id) !== name) problems.push(`cgroup ${cgroupId} is mapped to tenant "${name}", which has no usable id`);
    else cgroups.push({ key: { cgroup_id: cgroupId, generation, pad: 0 }, value: { tenant_id: id, container_slot: ctx.containerSlots?.get(cgroupId) ?? 0 } });
  }
  if (cgroups.length > TG_MAX_CGROUPS / 2) problems.push(`${cgroups.length} cgroups map to tenants; at most ${TG_MAX_CGROUPS / 2} fit one generation`);
  const cgroupRoot = cgroupCoveringRoot(policy.tenants.flatMap((t) => t.selectors.cgroups));

  const attach: MeteringPlan['attach'] = [];
  for (const i of policy.metering.interfaces) {
    const ifindex = ctx.ifindexOf(i.name);
    if (ifindex === undefined) problems.push(`metering interface "${i.name}" does not exist`);
    else attach.push({ ifname: i.name, ifindex, mode: i.mode, metered: true });
  }
  (policy.security?.interfaces ?? []).forEach((i, n) => {
    const metered = policy.metering.interfaces.find((m) => m.name === i.name);
    if (metered) {
      if (metered.mode !== i.mode) problems.push(`security.interfaces[${n}]: "${i.name}" is metered in mode ${metered.mode} (metered interfaces are filtered there); drop it here or give the same mode`);
      return;
    }
    const ifindex = ctx.ifindexOf(i.name);
    if (ifindex === undefined) problems.push(`security interface "${i.name}" does not exist`);
    else attach.push({ ifname: i.name, ifindex, mode: i.mode, metered: false });
  });

  const { classes, classMaps } = compileClasses(policy, ctx, problems);
  if (classMaps.v4.length > MAX_PREFIXES_PER_GEN) problems.push(`${classMaps.v4.length} IPv4 class prefixes; at most ${MAX_PREFIXES_PER_GEN} fit one generation`);
  if (classMaps.v6.length > MAX_PREFIXES_PER_GEN) problems.push(`${classMaps.v6.length} IPv6 class prefixes; at most ${MAX_PREFIXES_PER_GEN} fit one generation`);
  if (v4.length > MAX_PREFIXES_PER_GEN) problems.push(`${v4.length} IPv4 prefixes; at most ${MAX_PREFIXES_PER_GEN} fit one generation`);
  if (v6.length > MAX_PREFIXES_PER_GEN) problems.push(`${v6.length} IPv6 prefixes; at most ${MAX_PREFIXES_PER_GEN} fit one generation`);
  if (problems.length > 0) throw new CompileError(problems);

  v4.sort(byAddr);
  v6.sort(byAddr);
  ifaces.sort((a, b) => a.key.ifindex - b.key.ifindex);
  cgroups.sort((a, b) => (a.key.cgroup_id < b.key.cgroup_id ? -1 : a.key.cgroup_id > b.key.cgroup_id ? 1 : 0));
  return { generation, v4, v6, ifaces, cgroups, cgroupRoot, attach, tenants, classes, classMaps, warnings };
}

/** A generation without classes (also what a retired generation is reset to). */
export function emptyClassGen(): TgClassGen {
  return {
    active: 0, any_cidr: 0, any_port: 0, flags: 0, n_v4: 0,
    v4: Array.from({ length: TG_CLASS_INLINE_V4 }, () => ({ addr_be: 0, mask_be: 0, classes: 0 })),
  };
}

/*
 * Classes become bits of a mask in policy order (bit 0 = the first class
 * with a match), so the datapath's "lowest bit" is "first match in document
 * order". Each condition the policy leaves out sets the bit everywhere: in
 * any_cidr, in every protocol slot, in any_port.
 */
function compileClasses(policy: Policy, ctx: MeteringContext, problems: string[]): Pick<MeteringPlan, 'classes' | 'classMaps'> {
  const { generation } = ctx;
  const declared = policy.classes ?? [];
  const fallback = declared.find((c) => c.name === DEFAULT_CLASS);
  const classes: MeteringPlan['classes'] = [{ name: DEFAULT_CLASS, id: TG_CLASS_DEFAULT, billable: fallback?.billable ?? true }];
  const gen = emptyClassGen();
  const maps: ClassMaps = { gen, v4: [], v6: [], protocols: [], ports: [], ids: [] };
  const rules = declared.filter((c) => c.name !== DEFAULT_CLASS);
  if (rules.length === 0) return { classes, classMaps: maps };
  if (rules.length > TG_MAX_CLASS_RULES) {
    problems.push(`${rules.length} classes besides "${DEFAULT_CLASS}"; at most ${TG_MAX_CLASS_RULES} fit one policy`);
    return { classes, classMaps: maps };
  }
  const maxClasses = ctx.maxClasses ?? TG_MAX_CLASSES;
  const protocols = new Uint32Array(TG_PROTOCOLS);
  const ports = new Uint32Array(TG_PORTS);
  const prefixes: Array<{ cidr: Cidr; bit: number }> = [];
  rules.forEach((c, i) => {
    const bit = 2 ** i; // not 1 << i: bit 31 would come out negative
    const id = ctx.classIds?.get(c.name);
    if (id === undefined) problems.push(`class "${c.name}" has no class id`);
    else if (!Number.isInteger(id) || id <= TG_CLASS_DEFAULT || id >= maxClasses) {
      problems.push(`class "${c.name}" has id ${id}; the datapath counts classes 1..${maxClasses - 1} besides the default (raise --max-classes)`);
    } else {
      classes.push({ name: c.name, id, billable: c.billable });
      maps.ids.push({ key: generation * TG_MAX_CLASS_RULES + i, value: id });
    }
    const m = c.match!; // the schema requires a match on every class but the default
    gen.active += bit;
    if (m.cidrs.length === 0) gen.any_cidr += bit;
    for (const text of m.cidrs) prefixes.push({ cidr: parseCidr(text), bit });
    if (m.protocols.length === 0) for (let p = 0; p < TG_PROTOCOLS; p++) protocols[p] |= bit;
    for (const p of m.protocols) protocols[p] |= bit;
    if (m.ports.length === 0) gen.any_port += bit;
    for (const r of m.ports) for (let p = r.from; p <= r.to; p++) ports[p] |= bit;
  });

  // A few IPv4 CIDRs go inline, each with the classes listing exactly it: the
  // program ORs the classes of every CIDR containing the peer.
  const inline = new Map<string, { cidr: Cidr; bits: number }>();
  for (const { cidr, bit } of prefixes) {
    if (cidr.family !== 4) continue;
    const id = `${cidr.addr.toString('hex')}/${cidr.prefix}`;
    const e = inline.get(id) ?? { cidr, bits: 0 };
    e.bits = (e.bits | bit) >>> 0;
    inline.set(id, e);
  }
  const v4Inline = inline.size <= TG_CLASS_INLINE_V4;
  if (v4Inline) {
    gen.flags |= TG_CLASS_V4_INLINE;
    gen.n_v4 = inline.size;
    [...inline.values()].sort((a, b) => Buffer.compare(a.cidr.addr, b.cidr.addr) || a.cidr.prefix - b.cidr.prefix).forEach(({ cidr, bits }, i) => {
      const mask = Buffer.alloc(4);
      mask.writeUInt32BE(cidr.prefix === 0 ? 0 : (0xffff_ffff << (32 - cidr.prefix)) >>> 0);
      // __be32 fields go through a little-endian codec: these give the bytes in network order.
      gen.v4[i] = { addr_be: cidr.addr.readUInt32LE(0), mask_be: mask.readUInt32LE(0), classes: bits };
    });
  }

  // A trie lookup returns only the longest matching prefix, so each prefix
  // carries every class that has it or a shorter prefix covering it.
  const seen = new Set<string>();
  for (const { cidr } of prefixes) {
    if (cidr.family === 4 && v4Inline) continue;
    const id = `${cidr.family}/${cidr.addr.toString('hex')}/${cidr.prefix}`;
    if (seen.has(id)) continue;
    seen.add(id);
    let mask = gen.any_cidr;
    for (const q of prefixes) if (cidrContains(q.cidr, cidr)) mask |= q.bit;
    const e = { key: lpmKey(generation, cidr.addr, cidr.prefix), value: mask >>> 0 };
    (cidr.family === 4 ? maps.v4 : maps.v6).push(e as MapEntry<TgLpmV4Key & TgLpmV6Key, number>);
  }
  maps.v4.sort(byAddr);
  maps.v6.sort(byAddr);
  protocols.forEach((m, p) => m && maps.protocols.push({ key: generation * TG_PROTOCOLS + p, value: m }));
  ports.forEach((m, p) => m && maps.ports.push({ key: generation * TG_PORTS + p, value: m }));
  return { classes, classMaps: maps };
}

// ---- diff -----------------------------------------------------------------

export interface EntryDiff<K, V> {
  /** Keys absent from old. */
  add: MapEntry<K, V>[];
  /** Keys in both whose value changed. */
  update: MapEntry<K, V>[];
  /** Keys absent from next. */
  delete: K[];
}

/** A stable identity for plain keys and values (Buffers by their bytes, objects by sorted fields). */
export function entryId(x: unknown): string {
  if (Buffer.isBuffer(x)) return `0x${x.toString('hex')}`;
  if (typeof x === 'bigint') return `${x}n`;
  if (Array.isArray(x)) return `[${x.map(entryId).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    return `{${Object.keys(x).sort().map((k) => `${k}:${entryId((x as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(x) ?? 'undefined';
}

/**
 * Which keys to add, update and delete to turn the entries old into next.
 * With a generation switch old and next never share a key, so everything old
 * is deleted once next is live.
 */
export function diffEntries<K, V>(
  old: readonly MapEntry<K, V>[],
  next: readonly MapEntry<K, V>[],
  keyId: (k: K) => string = entryId,
): EntryDiff<K, V> {
  const before = new Map(old.map((e) => [keyId(e.key), e]));
  const after = new Set<string>();
  const out: EntryDiff<K, V> = { add: [], update: [], delete: [] };
  for (const e of next) {
    const id = keyId(e.key);
    after.add(id);
    const prev = before.get(id);
    if (!prev) out.add.push(e);
    else if (entryId(prev.value) !== entryId(e.value)) out.update.push(e);
  }
  for (const [id, e] of before) if (!after.has(id)) out.delete.push(e.key);
  return out;
}
