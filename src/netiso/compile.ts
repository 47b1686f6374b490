// Network isolation, compiled: the policy's isolation scopes and the
// containers found on the host -> what the netiso maps must hold
// (bpf/progs/netiso.bpf.c). Pure.
//
//  - Connection groups: a scope with a `containers` glob limits each of its
//    containers on its own (one group per container); a scope without one
//    limits the tenant's containers it governs together (one group). Every
//    scoped container is counted, with or without maxConnections.
//  - Destination rules: each policy rule becomes one kernel rule per
//    TG_NI_RULE_PORTS port ranges (consecutive pieces with the same action
//    and CIDRs, so the first match is unchanged), at most TG_NI_MAX_RULES per
//    scope; each distinct CIDR becomes an LPM entry whose value is the mask
//    of the kernel rules with a CIDR containing it.
//
// destinationVerdict() is the reference the kernel is tested against: the
// policy's rules evaluated directly, first match wins.
import {
  TG_NI_ALLOW, TG_NI_DENY, TG_NI_DEST, TG_NI_MAX_CGROUPS, TG_NI_MAX_GROUPS, TG_NI_MAX_PREFIXES, TG_NI_MAX_RULES, TG_NI_RULE_PORTS, TG_NI_SCOPE_GEN,
  type TgNiRule, type TgNiScope, type TgNiV4Key, type TgNiV6Key,
} from '../kernel/abi.gen.js';
import { scopeContainers } from '../isolation/scopes.js';
import { CidrError, networkOf, parseAddress, parseCidr, type Family } from '../policy/cidr.js';
import type { IsolationScope, PortRange } from '../policy/index.js';
import { PORT_PROTOCOLS } from '../policy/schema.js';

/** A container as the agent finds it (src/metering/cgroup-tenants.ts TenantContainer). */
export interface NetContainer {
  id: string;
  runtime: string;
  tenant: string;
  cgroupId: bigint;
  /** Relative to the cgroup2 mount. */
  cgroupPath: string;
  /** The cgroups below the container's own: their sockets count for the container too. */
  below: readonly bigint[];
}

export type NetAction = 'allow' | 'deny';

/** One kernel rule (struct tg_ni_rule without the generation). */
export interface CompiledRule {
  /** Index in the scope's destinations.rules. */
  policyRule: number;
  action: NetAction;
  /** struct tg_ni_rule.protocols: bit p % 64 of word p / 64. */
  protocols: [bigint, bigint, bigint, bigint];
  /** At most TG_NI_RULE_PORTS; empty: any port (and protocols without ports). */
  ports: PortRange[];
}

export interface CompiledPrefix {
  family: Family;
  prefix: number;
  /** Network address, network order. */
  addr: Buffer;
  /** Kernel rules (bit = index in CompiledScope.rules) with a CIDR containing this prefix. */
  mask: bigint;
}

export interface CompiledScope {
  /** Index in policy.isolation. */
  index: number;
  /** Destinations are checked: the scope has rules or a deny default. */
  checked: boolean;
  defaultAction: NetAction;
  rules: CompiledRule[];
  prefixes: CompiledPrefix[];
  /** null: connections are counted, not limited. */
  maxConnections: number | null;
}

export interface CompiledGroup {
  /** "container:<id>" or "tenant:<name>": stable while the policy keeps the container in the same kind of scope. */
  key: string;
  kind: 'container' | 'tenant';
  tenant: string;
  /** Index of the governing scope. */
  scope: number;
  limit: number | null;
  containers: NetContainer[];
  /** The containers' cgroups and the cgroups below them. */
  cgroups: bigint[];
}

export interface NetPlan {
  scopes: CompiledScope[];
  groups: CompiledGroup[];
  /** Containers left out: more groups or cgroups than the maps hold. */
  unassigned: string[];
}

/** A policy the kernel cannot hold, or one that skipped validation; `path` names the field, e.g. isolation[2].destinations.rules[0].cidrs[1]. */
export class NetIsoCompileError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'NetIsoCompileError';
  }
}

const ALL64 = 0xffff_ffff_ffff_ffffn;
const ALL_PROTOCOLS: CompiledRule['protocols'] = [ALL64, ALL64, ALL64, ALL64];
const U32_MAX = 2 ** 32 - 1;

function protocolBits(protocols: readonly number[]): CompiledRule['protocols'] {
  const w: CompiledRule['protocols'] = [0n, 0n, 0n, 0n];
  for (const p of protocols) w[p >> 6] = w[p >> 6]! | (1n << BigInt(p & 63));
  return w;
}

/** Sorted, overlapping and adjacent ranges joined: the same ports in fewer kernel rules. */
function mergePorts(ports: readonly PortRange[]): PortRange[] {
  const sorted = [...ports].sort((a, b) => a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ from: r.from, to: r.to });
  }
  return out;
}

const prefixKey = (family: Family, prefix: number, addr: Buffer): string => `${family}/${prefix}/${addr.toString('hex')}`;

function compileScope(scope: IsolationScope, index: number): CompiledScope {
  const at = `isolation[${index}]`;
  const max = scope.maxConnections;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > U32_MAX))
    throw new NetIsoCompileError(`${at}.maxConnections`, `must be an integer from 1 to ${U32_MAX}, got ${max}`);
  const maxConnections = max ?? null;
  const dest = scope.destinations;
  if (!dest) return { index, checked: false, defaultAction: 'allow', rules: [], prefixes: [], maxConnections };
  if (dest.default !== 'allow' && dest.default !== 'deny')
    throw new NetIsoCompileError(`${at}.destinations.default`, `must be allow or deny, got ${JSON.stringify(dest.default)}`);

  const rules: CompiledRule[] = [];
  /** prefix key -> the prefix and the bits of the rules naming exactly it. */
  const named = new Map<string, CompiledPrefix>();
  dest.rules.forEach((r, j) => {
    const rat = `${at}.destinations.rules[${j}]`;
    if (r.action !== 'allow' && r.action !== 'deny') throw new NetIsoCompileError(`${rat}.action`, `must be allow or deny, got ${JSON.stringify(r.action)}`);
    r.protocols.forEach((p, k) => {
      if (!Number.isInteger(p) || p < 0 || p > 255) throw new NetIsoCompileError(`${rat}.protocols[${k}]`, `must be an IP protocol number 0-255, got ${p}`);
    });
    r.ports.forEach((p, k) => {
      if (!Number.isInteger(p.from) || !Number.isInteger(p.to) || p.from < 0 || p.to > 65535 || p.from > p.to)
        throw new NetIsoCompileError(`${rat}.ports[${k}]`, `must be a port range within 0-65535 with from <= to, got ${p.from}-${p.to}`);
    });
    if (r.cidrs.length === 0) throw new NetIsoCompileError(`${rat}.cidrs`, 'a destination rule needs at least one CIDR');
    const protocols = r.protocols.length > 0 ? protocolBits(r.protocols) : r.ports.length > 0 ? protocolBits([...PORT_PROTOCOLS]) : ALL_PROTOCOLS;
    const ports = mergePorts(r.ports);
    let bits = 0n;
    for (let k = 0; k === 0 || k < ports.length; k += TG_NI_RULE_PORTS) {
      if (rules.length === TG_NI_MAX_RULES) {
        throw new NetIsoCompileError(`${rat}`, `the scope's destination rules need more than ${TG_NI_MAX_RULES} kernel rules (each rule takes one per ${TG_NI_RULE_PORTS} port ranges); merge rules or port ranges`);
      }
      bits |= 1n << BigInt(rules.length);
      rules.push({ policyRule: j, action: r.action, protocols: [...protocols], ports: ports.slice(k, k + TG_NI_RULE_PORTS) });
    }
    r.cidrs.forEach((text, k) => {
      let c;
      try {
        c = parseCidr(text);
      } catch (e) {
        const hint = e instanceof CidrError && e.suggestion ? ` (did you mean ${e.suggestion}?)` : '';
        throw new NetIsoCompileError(`${rat}.cidrs[${k}]`, `${(e as Error).message}${hint}`);
      }
      const key = prefixKey(c.family, c.prefix, c.addr);
      const had = named.get(key);
      if (had) had.mask |= bits;
      else named.set(key, { family: c.family, prefix: c.prefix, addr: c.addr, mask: bits });
    });
  });

  // A longer prefix carries the bits of every shorter one containing it: the
  // trie returns only the longest match.
  // Only the lengths some CIDR of the family has can hold a containing prefix.
  const lengths = { 4: new Set<number>(), 6: new Set<number>() };
  for (const p of named.values()) lengths[p.family].add(p.prefix);
  const sorted = { 4: [...lengths[4]].sort((a, b) => a - b), 6: [...lengths[6]].sort((a, b) => a - b) };
  const prefixes = [...named.values()].map((p) => {
    let mask = 0n;
    for (const len of sorted[p.family]) {
      if (len > p.prefix) break;
      mask |= named.get(prefixKey(p.family, len, networkOf(p.addr, len)))?.mask ?? 0n;
    }
    return { ...p, mask };
  });
  return { index, checked: rules.length > 0 || dest.default === 'deny', defaultAction: dest.default, rules, prefixes, maxConnections };
}

/**
 * The desired netiso state for these scopes and containers. Throws
 * NetIsoCompileError (naming the field) when the policy does not fit the
 * kernel maps; containers beyond the maps' capacity are listed in unassigned.
 */
export function compileNetIsolation(scopes: readonly IsolationScope[] | undefined, containers: readonly NetContainer[]): NetPlan {
  const compiled = (scopes ?? []).map((s, i) => compileScope(s, i));
  if (compiled.length >= TG_NI_SCOPE_GEN) throw new NetIsoCompileError('isolation', `${compiled.length} scopes, at most ${TG_NI_SCOPE_GEN - 1}`);
  for (const family of [4, 6] as const) {
    const n = compiled.reduce((sum, s) => sum + s.prefixes.filter((p) => p.family === family).length, 0);
    // Both generations share a trie during a switch: one may use half.
    if (n > TG_NI_MAX_PREFIXES / 2) throw new NetIsoCompileError('isolation', `${n} IPv${family} destination prefixes over all scopes, at most ${TG_NI_MAX_PREFIXES / 2}`);
  }

  const groups = new Map<string, CompiledGroup>();
  const unassigned: string[] = [];
  const seen = new Set<bigint>();
  let cgroups = 0;
  for (const { container: c, scope } of scopeContainers(scopes, containers)) {
    const s = scopes![scope]!;
    const perContainer = s.containers !== undefined;
    const key = perContainer ? `container:${c.id}` : `tenant:${s.tenant}`;
    const own = [c.cgroupId, ...c.below].filter((id) => !seen.has(id));
    let g = groups.get(key);
    if ((!g && groups.size >= TG_NI_MAX_GROUPS - 1) || cgroups + own.length > TG_NI_MAX_CGROUPS) {
      unassigned.push(c.id);
      continue;
    }
    if (!g) {
      g = { key, kind: perContainer ? 'container' : 'tenant', tenant: s.tenant, scope, limit: compiled[scope]!.maxConnections, containers: [], cgroups: [] };
      groups.set(key, g);
    }
    g.containers.push(c);
    for (const id of own) {
      seen.add(id);
      g.cgroups.push(id);
    }
    cgroups += own.length;
  }
  return { scopes: compiled, groups: [...groups.values()], unassigned };
}

/** The kernel scope id of a policy scope in a generation. */
export function kernelScopeId(generation: 0 | 1, index: number): number {
  return generation * TG_NI_SCOPE_GEN + index + 1;
}

/** The policy scope index of a kernel scope id; undefined for 0 and ids no generation uses. */
export function policyScopeIndex(scopeId: number): number | undefined {
  const i = (scopeId % TG_NI_SCOPE_GEN) - 1;
  return scopeId > 0 && i >= 0 ? i : undefined;
}

export interface GenerationEntries {
  scopes: Array<[number, TgNiScope]>;
  rules: Array<[number, TgNiRule]>;
  v4: Array<[TgNiV4Key, bigint]>;
  v6: Array<[TgNiV6Key, bigint]>;
}

const action = (a: NetAction): number => (a === 'deny' ? TG_NI_DENY : TG_NI_ALLOW);

/** What the plan's scopes put in the maps in one generation. */
export function generationEntries(scopes: readonly CompiledScope[], generation: 0 | 1): GenerationEntries {
  const out: GenerationEntries = { scopes: [], rules: [], v4: [], v6: [] };
  for (const s of scopes) {
    const id = kernelScopeId(generation, s.index);
    out.scopes.push([id, { flags: s.checked ? TG_NI_DEST : 0, default_action: action(s.defaultAction), n_rules: s.rules.length, pad: 0 }]);
    s.rules.forEach((r, i) => {
      const lo = Array.from({ length: TG_NI_RULE_PORTS }, (_, k) => r.ports[k]?.from ?? 0);
      const hi = Array.from({ length: TG_NI_RULE_PORTS }, (_, k) => r.ports[k]?.to ?? 0);
      out.rules.push([id * TG_NI_MAX_RULES + i, { protocols: [...r.protocols], port_lo: lo, port_hi: hi, policy_rule: r.policyRule, action: action(r.action), n_ports: r.ports.length, pad: 0 }]);
    });
    for (const p of s.prefixes) {
      if (p.family === 4) out.v4.push([{ prefixlen: 32 + p.prefix, scope: id, addr_be: Buffer.from(p.addr) }, p.mask]);
      else out.v6.push([{ prefixlen: 32 + p.prefix, scope: id, addr_be: Buffer.from(p.addr) }, p.mask]);
    }
  }
  return out;
}

// ---- evaluation -------------------------------------------------------------

/** A destination as a hook sees it. dport undefined: unknown (a later fragment, a cut header) or none. */
export interface NetDestination {
  family: Family;
  /** Network order: 4 or 16 bytes. */
  addr: Buffer;
  protocol: number;
  dport?: number;
}

export interface NetVerdict {
  action: NetAction;
  /** Index of the deciding rule in destinations.rules; null: the default (or the scope checks no destinations). */
  rule: number | null;
}

/** A destination from text; a v4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 destination it stands for, as the hooks see it. */
export function netDestination(address: string, protocol: number, dport?: number): NetDestination {
  const a = parseAddress(address);
  if (!a) throw new Error(`netDestination: ${JSON.stringify(address)} is not an IPv4 or IPv6 address`);
  if (a.family === 6 && a.addr.subarray(0, 10).every((b) => b === 0) && a.addr[10] === 0xff && a.addr[11] === 0xff)
    return { family: 4, addr: Buffer.from(a.addr.subarray(12)), protocol, dport };
  return { family: a.family, addr: a.addr, protocol, dport };
}

const inCidr = (d: NetDestination, text: string): boolean => {
  const c = parseCidr(text);
  return c.family === d.family && networkOf(d.addr, c.prefix).equals(c.addr);
};

/** Whether a rule's port condition holds (an unknown port matches deny rules only: it can be refused more, never let through more). */
function portsHold(ports: readonly PortRange[], action: NetAction, d: NetDestination): boolean {
  if (ports.length === 0) return true;
  if (!PORT_PROTOCOLS.has(d.protocol)) return false;
  if (d.dport === undefined) return action === 'deny';
  return ports.some((r) => d.dport! >= r.from && d.dport! <= r.to);
}

/** The reference: the scope's destination rules on one destination, first match wins. */
export function destinationVerdict(scope: IsolationScope, d: NetDestination): NetVerdict {
  const dest = scope.destinations;
  if (!dest) return { action: 'allow', rule: null };
  for (let j = 0; j < dest.rules.length; j++) {
    const r = dest.rules[j]!;
    if (!r.cidrs.some((c) => inCidr(d, c))) continue;
    const protocolOk = r.protocols.length > 0 ? r.protocols.includes(d.protocol) : r.ports.length === 0 || PORT_PROTOCOLS.has(d.protocol);
    if (!protocolOk || !portsHold(r.ports, r.action, d)) continue;
    return { action: r.action, rule: j };
  }
  return { action: dest.default, rule: null };
}

/** What the kernel computes from a compiled scope (the same steps as ni_decide in netiso.bpf.c). */
export function compiledVerdict(scope: CompiledScope, d: NetDestination): NetVerdict {
  if (!scope.checked) return { action: 'allow', rule: null };
  let best: CompiledPrefix | undefined;
  for (const p of scope.prefixes) {
    if (p.family === d.family && networkOf(d.addr, p.prefix).equals(p.addr) && (!best || p.prefix > best.prefix)) best = p;
  }
  const mask = best?.mask ?? 0n;
  for (let i = 0; i < scope.rules.length; i++) {
    if (!((mask >> BigInt(i)) & 1n)) continue;
    const r = scope.rules[i]!;
    if (!((r.protocols[d.protocol >> 6]! >> BigInt(d.protocol & 63)) & 1n)) continue;
    if (!portsHold(r.ports, r.action, d)) continue;
    return { action: r.action, rule: r.policyRule };
  }
  return { action: scope.defaultAction, rule: null };
}
