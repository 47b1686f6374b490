// Bandwidth limits -> the datapath's map entries (bpf/progs/shaper.bpf.c).
// Pure: validates the groups, gives each a slot (keeping the slots of an
// earlier compile, so a group's policer state and counters go on), and
// says which cgroup belongs to which slot. A group is one container, or all
// the containers of a tenant, whose traffic is limited together.
import { TG_BW_MAX_CGROUPS, TG_BW_MAX_GROUPS, TG_BW_PACE, TG_DIR_EGRESS, TG_DIR_INGRESS, type TgBwCfg } from '../kernel/abi.gen.js';

/** A token bucket as the policy parses it: rate in bits per second, burst in bytes. */
export interface BandwidthLimit {
  rate: number;
  burst: number;
}

/** A container: its cgroup (the directory's inode) and the cgroups below it, whose sockets count for it too. */
export interface ShaperContainer {
  id: string;
  tenant: string;
  cgroupId: bigint;
  below: readonly bigint[];
}

interface Limits {
  /** What the containers send. */
  egress?: BandwidthLimit;
  /** What they receive. */
  ingress?: BandwidthLimit;
}

/** One container limited on its own. */
export interface ContainerGroup extends Limits {
  container: ShaperContainer;
}

/** The containers of a tenant limited together: their traffic sums against one limit. */
export interface TenantGroup extends Limits {
  tenant: string;
  containers: readonly ShaperContainer[];
}

export type BandwidthGroup = ContainerGroup | TenantGroup;

export interface CompileOptions {
  /** Slots an earlier compile gave, by group key ("container:<id>" / "tenant:<name>"); kept for the same groups. */
  previous?: ReadonlyMap<string, number>;
  /** Pace the groups' TCP sockets at egress (default true); false leaves the policer alone, as the bench compares. */
  pacing?: boolean;
}

export interface CompiledGroup {
  /** "container:<id>" or "tenant:<name>": the group's identity across compiles and agents. */
  key: string;
  slot: number;
  /** tg_bw_cfg.ident: a hash of the key, kept in the kernel so a restarted agent finds the slot. */
  ident: bigint;
  egress: TgBwCfg;
  ingress: TgBwCfg;
  /** Container ids in the group. */
  containers: string[];
}

export interface CompiledBandwidth {
  groups: CompiledGroup[];
  /** Every cgroup of every group (containers and the cgroups below them) -> its group's slot. */
  cgroups: Map<bigint, number>;
  /** Group key -> slot, for the next compile's `previous`. */
  slots: Map<string, number>;
}

/** A limit the datapath cannot take; `field` names it, e.g. "groups[2].egress.rate". */
export class BandwidthError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'BandwidthError';
    this.field = field;
  }
}

/** Rates and bursts the policy accepts (src/policy/schema.ts, bandwidthLimit). */
export const MIN_RATE = 8_000;
export const MAX_RATE = 100e9;
export const MIN_BURST = 1514;
export const MAX_BURST = 1024 ** 3;

/**
 * The least burst, as time at the rate, an ingress limit is given. At
 * ingress the policer can only drop, and a TCP sender that lost a segment
 * may wait out its minimum retransmission timeout (200 ms) before it sends
 * again; a bucket that refills in less than that goes unused meanwhile and
 * the rate is never reached. Measured with iperf3 -R on a veth pair
 * (bench/isolation-bandwidth.ts): 0.27-0.5 of the rate with 20-50 ms
 * bursts, 0.94-1.0 with 250 ms. The packet has crossed the host already, so
 * a larger ingress burst costs no link bandwidth.
 */
export const INGRESS_MIN_BURST_NS = 250_000_000n;

const UNLIMITED: TgBwCfg = { rate_bps: 0n, burst_ns: 0n, burst_bytes: 0n, ident: 0n, flags: 0, pad: 0 };

/** FNV-1a, 64 bits, never 0 (0 marks a free slot). */
export function groupIdent(key: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(key, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h === 0n ? 1n : h;
}

export function groupKey(g: BandwidthGroup): string {
  return 'container' in g ? `container:${g.container.id}` : `tenant:${g.tenant}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkLimit(field: string, l: unknown): BandwidthLimit {
  if (!isObject(l)) throw new BandwidthError(field, `must be { rate, burst }, got ${JSON.stringify(l)}`);
  const { rate, burst } = l;
  if (typeof rate !== 'number' || !Number.isSafeInteger(rate) || rate < MIN_RATE || rate > MAX_RATE)
    throw new BandwidthError(`${field}.rate`, `must be a whole number of bits per second from ${MIN_RATE} (8kbit) to ${MAX_RATE} (100gbit), got ${String(rate)}`);
  if (typeof burst !== 'number' || !Number.isSafeInteger(burst) || burst < MIN_BURST || burst > MAX_BURST)
    throw new BandwidthError(`${field}.burst`, `must be a whole number of bytes from ${MIN_BURST} (one full-size frame) to ${MAX_BURST} (1GiB), got ${String(burst)}`);
  return { rate, burst };
}

function checkContainer(field: string, c: unknown): ShaperContainer {
  if (!isObject(c)) throw new BandwidthError(field, 'must be a container { id, tenant, cgroupId, below }');
  if (typeof c.id !== 'string' || c.id === '') throw new BandwidthError(`${field}.id`, 'must be a non-empty string');
  if (typeof c.tenant !== 'string' || c.tenant === '') throw new BandwidthError(`${field}.tenant`, 'must be a non-empty string');
  if (typeof c.cgroupId !== 'bigint' || c.cgroupId <= 0n || c.cgroupId >= 1n << 64n) throw new BandwidthError(`${field}.cgroupId`, `must be a cgroup id (a positive 64-bit bigint), got ${String(c.cgroupId)}`);
  if (!Array.isArray(c.below)) throw new BandwidthError(`${field}.below`, 'must be an array of cgroup ids');
  c.below.forEach((b: unknown, i) => {
    if (typeof b !== 'bigint' || b <= 0n || b >= 1n << 64n) throw new BandwidthError(`${field}.below[${i}]`, `must be a cgroup id (a positive 64-bit bigint), got ${String(b)}`);
  });
  return c as unknown as ShaperContainer;
}

/** The datapath's entry for one direction: the burst as time at the rate (ingress: at least INGRESS_MIN_BURST_NS). */
export function limitCfg(limit: BandwidthLimit | undefined, dir: number, ident: bigint, pacing: boolean): TgBwCfg {
  if (!limit) return { ...UNLIMITED, ident };
  const rate = BigInt(limit.rate);
  let burstNs = (BigInt(limit.burst) * 8_000_000_000n + rate - 1n) / rate;
  if (dir === TG_DIR_INGRESS && burstNs < INGRESS_MIN_BURST_NS) burstNs = INGRESS_MIN_BURST_NS;
  return { rate_bps: rate, burst_ns: burstNs, burst_bytes: BigInt(limit.burst), ident, flags: dir === TG_DIR_EGRESS && pacing ? TG_BW_PACE : 0, pad: 0 };
}

/** What bandwidthGroups needs of an isolation scope of the policy (src/policy/schema.ts). */
export interface BandwidthScope {
  tenant: string;
  /** Set: each container the scope governs is limited on its own; absent: the tenant's containers together. */
  containers?: string;
  bandwidth?: Limits;
}

/**
 * The groups a policy's isolation scopes ask for, given the containers and
 * the scope governing each (src/isolation/scopes.ts): a scope with a
 * `containers` glob limits each of its containers on its own, a scope
 * without one limits the containers it governs together (a tenant group).
 * Scopes without bandwidth limits, and tenant scopes governing no
 * container, give no group.
 */
export function bandwidthGroups(scopes: readonly BandwidthScope[], governed: ReadonlyArray<{ container: ShaperContainer; scope: number }>): BandwidthGroup[] {
  const out: BandwidthGroup[] = [];
  scopes.forEach((scope, i) => {
    const bw = scope.bandwidth;
    if (!bw || (!bw.egress && !bw.ingress)) return;
    const limits: Limits = { ...(bw.egress ? { egress: bw.egress } : {}), ...(bw.ingress ? { ingress: bw.ingress } : {}) };
    const mine = governed.filter((g) => g.scope === i).map((g) => g.container);
    if (scope.containers !== undefined) for (const container of mine) out.push({ container, ...limits });
    else if (mine.length > 0) out.push({ tenant: scope.tenant, containers: mine, ...limits });
  });
  return out;
}

/**
 * Validates the groups and compiles them. Throws BandwidthError naming the
 * first field in error; nothing is partial.
 */
export function compileBandwidth(groups: readonly BandwidthGroup[], opts: CompileOptions = {}): CompiledBandwidth {
  if (!Array.isArray(groups)) throw new BandwidthError('groups', 'must be an array');
  const pacing = opts.pacing ?? true;
  if (groups.length > TG_BW_MAX_GROUPS - 1) throw new BandwidthError('groups', `at most ${TG_BW_MAX_GROUPS - 1} groups, got ${groups.length}`);

  const keys = new Map<string, number>();
  const owner = new Map<bigint, string>(); // cgroup -> field that claimed it
  const containerAt = new Map<string, string>(); // container id -> field
  const checked = groups.map((g, i) => {
    const field = `groups[${i}]`;
    if (!isObject(g)) throw new BandwidthError(field, 'must be { container, egress?, ingress? } or { tenant, containers, egress?, ingress? }');
    const byContainer = 'container' in g;
    if (byContainer === 'tenant' in g || byContainer === 'containers' in g)
      throw new BandwidthError(field, 'give either container (one container) or tenant and containers (the tenant\'s containers together)');
    const egress = g.egress === undefined ? undefined : checkLimit(`${field}.egress`, g.egress);
    const ingress = g.ingress === undefined ? undefined : checkLimit(`${field}.ingress`, g.ingress);
    if (!egress && !ingress) throw new BandwidthError(field, 'give an egress limit, an ingress limit or both');
    let members: Array<[string, ShaperContainer]>;
    if (byContainer) {
      members = [[`${field}.container`, checkContainer(`${field}.container`, (g as unknown as ContainerGroup).container)]];
    } else {
      const t = g as unknown as TenantGroup;
      if (typeof t.tenant !== 'string' || t.tenant === '') throw new BandwidthError(`${field}.tenant`, 'must be a non-empty string');
      if (!Array.isArray(t.containers)) throw new BandwidthError(`${field}.containers`, 'must be an array of containers');
      members = t.containers.map((c, j) => [`${field}.containers[${j}]`, checkContainer(`${field}.containers[${j}]`, c)]);
      for (const [f, c] of members) {
        if (c.tenant !== t.tenant) throw new BandwidthError(`${f}.tenant`, `container ${c.id} belongs to tenant "${c.tenant}", not to the group's tenant "${t.tenant}"`);
      }
    }
    const key = groupKey(g as unknown as BandwidthGroup);
    const dup = keys.get(key);
    if (dup !== undefined) throw new BandwidthError(field, `the same group as groups[${dup}] (${key})`);
    keys.set(key, i);
    for (const [f, c] of members) {
      const other = containerAt.get(c.id);
      if (other !== undefined) throw new BandwidthError(`${f}.id`, `container ${c.id} is already limited by ${other}: a container belongs to one group`);
      containerAt.set(c.id, f);
      for (const [cf, id] of [[`${f}.cgroupId`, c.cgroupId], ...c.below.map((b, k) => [`${f}.below[${k}]`, b] as const)] as const) {
        const prev = owner.get(id);
        if (prev !== undefined) throw new BandwidthError(cf, `cgroup ${id} is already ${prev}`);
        owner.set(id, cf);
      }
    }
    return { key, egress, ingress, members: members.map(([, c]) => c) };
  });
  if (owner.size > TG_BW_MAX_CGROUPS) throw new BandwidthError('groups', `${owner.size} cgroups in all, at most ${TG_BW_MAX_CGROUPS}`);

  // Slots: a group keeps its earlier slot; new groups take the lowest slots nobody holds.
  const previous = opts.previous ?? new Map<string, number>();
  const slots = new Map<string, number>();
  const taken = new Set<number>();
  for (const g of checked) {
    const s = previous.get(g.key);
    if (s !== undefined && Number.isInteger(s) && s >= 1 && s < TG_BW_MAX_GROUPS && !taken.has(s)) {
      slots.set(g.key, s);
      taken.add(s);
    }
  }
  // Slots of groups that went away are not reused while another slot is free, so their counters can still be read once.
  const held = new Set([...previous.values()]);
  let next = 1;
  const free = (avoid: Set<number>): number => {
    while (next < TG_BW_MAX_GROUPS && (taken.has(next) || avoid.has(next))) next++;
    return next;
  };
  for (const g of checked) {
    if (slots.has(g.key)) continue;
    let s = free(held);
    if (s >= TG_BW_MAX_GROUPS) {
      next = 1;
      s = free(new Set());
    }
    slots.set(g.key, s);
    taken.add(s);
  }

  const cgroups = new Map<bigint, number>();
  const out = checked.map((g) => {
    const slot = slots.get(g.key)!;
    const ident = groupIdent(g.key);
    for (const c of g.members) for (const id of [c.cgroupId, ...c.below]) cgroups.set(id, slot);
    return {
      key: g.key,
      slot,
      ident,
      egress: limitCfg(g.egress, TG_DIR_EGRESS, ident, pacing),
      ingress: limitCfg(g.ingress, TG_DIR_INGRESS, ident, pacing),
      containers: g.members.map((c) => c.id),
    };
  });
  return { groups: out, cgroups, slots };
}
