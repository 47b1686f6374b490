// The metering datapath: loads bpf/progs/meter.bpf.c, pins its maps and
// links under the pin root, adopts them when an agent restarts (counters go
// on counting, programs are swapped atomically with bpf_link_update), applies
// compiled tenant maps with a generation switch, and reads the counters back.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BpfLink, BpfObject, TypedMap, type BpfMap, findCgroup2, linkInfo, readMounts, type BpfProgram } from '../kernel/index.js';
import { TgCounter, TgMeterConfig, TgMeterReasons, TG_DIR_MAX, TG_IFACE_FILTERED, TG_IFACE_METERED, TG_MAX_CLASSES, TG_MAX_FLOWS, TG_MAX_TENANTS, TG_METER_FLOWS, TG_REASON_MAX, TgMeterReason } from '../kernel/abi.gen.js';
import { u32, u64 } from '../kernel/codec.js';
import type { MeteringPlan } from '../policy/index.js';
import { PolicyMaps } from './policy-maps.js';
import { QuotaMaps } from './quota-maps.js';
import { FirewallMaps } from '../firewall/maps.js';
import { bpfObjectPath } from '../paths.js';
import { FLOW_COUNTER_INDEX, type FlowCounters } from '../flows/counters.js';
import { nonZeroCounters } from './counters.js';
import { KEY_SIZE, VALUE_SIZE, monotonicNs, type FlowBuffers, type FlowSnapshot } from '../flows/snapshot.js';

/** Maps that carry state across agent restarts and are therefore pinned. */
const PINNED_MAPS = [
  'tg_meter_counters', 'tg_meter_reasons', 'tg_meter_config',
  'tg_tenant_v4', 'tg_tenant_v6', 'tg_tenant_iface',
  'tg_class_gen', 'tg_class_v4', 'tg_class_v6', 'tg_class_proto', 'tg_class_port', 'tg_class_ids',
  'tg_flows', 'tg_flow_stats', 'tg_tenant_cgroup', 'tg_metered_iface', 'tg_container_counters',
  // A budget's bytes and period survive the agent (fail-static enforcement).
  'tg_quota_refs', 'tg_quota_cfg', 'tg_quota_state', 'tg_quota_drops',
  // The firewall goes on filtering with the last rules (fail-static); its counters stay monotonic.
  'tg_fw_live', 'tg_fw_gen', 'tg_fw_src_v4', 'tg_fw_src_v6', 'tg_fw_dst_v4', 'tg_fw_dst_v6', 'tg_fw_pfx_v4', 'tg_fw_pfx_v6', 'tg_fw_proto', 'tg_fw_port',
  'tg_fw_tenant', 'tg_fw_rules', 'tg_fw_hits', 'tg_fw_stats',
  // Security events wait in the ring for the next agent; their loss counters stay monotonic.
  'tg_sev_ring', 'tg_sev_stats',
  // SYN-flood mitigation goes on (and verified sources stay verified) while the agent restarts.
  'tg_syn_cfg', 'tg_syn_dst', 'tg_syn_guard', 'tg_syn_verified',
  // Automatic blocks keep their time to live without an agent.
  'tg_refl_port', 'tg_block_src', 'tg_block_refl',
] as const;

/** Flows per batch call when reading tg_flows. */
const FLOW_READ_CHUNK = 65_536;

const FILL_MAPS = ['tg_tenant_v4', 'tg_tenant_v6', 'tg_class_v4', 'tg_class_v6', 'tg_frag_ports', 'tg_fw_src_v4', 'tg_fw_src_v6', 'tg_fw_dst_v4', 'tg_fw_dst_v6'] as const;

export type Direction = 'ingress' | 'egress';

export type AttachMode = 'tc' | 'xdp-generic' | 'xdp-native';

export interface CounterReading {
  tenantId: number;
  classId: number;
  direction: Direction;
  packets: bigint;
  bytes: bigint;
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  mode: AttachMode;
  /** false: only filtered (security.interfaces). */
  metered: boolean;
  hooks: string[];
  adopted: boolean;
}

export interface DatapathOptions {
  /** Directory under bpffs for this agent's pins, e.g. /sys/fs/bpf/tollgate */
  pinRoot: string;
  maxTenants?: number;
  /** Class capacity of the counter array (class ids 0..maxClasses-1). */
  maxClasses?: number;
  /** Capacity of the flow LRU (preallocated, even while flows are off; docs/flows.md). */
  maxFlows?: number;
}

/** tg_meter_reasons summed over CPUs: packets per enum tg_meter_reason. */
export function reasonTotals(map: TypedMap<number, TgMeterReasons>): bigint[] {
  const total = Array.from({ length: TG_REASON_MAX }, () => 0n);
  for (const cpu of map.getPerCpu(0) ?? []) for (let i = 0; i < TG_REASON_MAX; i++) total[i]! += cpu.n[i]!;
  return total;
}

const reasonNames: Record<number, string> = Object.fromEntries(
  Object.entries(TgMeterReason)
    .filter(([k]) => k !== 'TG_REASON_MAX')
    .map(([k, v]) => [v, k.replace(/^TG_REASON_/, '').toLowerCase()]),
);

/**
 * Billing truth: a pinned counter map whose shape differs from this build's
 * (another --max-tenants, another struct) is refused on load, never
 * replaced, so no counter is ever lost silently.
 */
const COUNTER_MAPS: ReadonlySet<string> = new Set(['tg_meter_counters', 'tg_container_counters']);

/** Maps that live and die together: tg_flow_stats counts what happened to tg_flows. */
const DROPPED_WITH: Readonly<Record<string, string>> = { tg_flows: 'tg_flow_stats', tg_flow_stats: 'tg_flows' };

/**
 * Every other pinned map is policy (rewritten by the next install), flow
 * analytics or diagnostics: when an upgrade or a new capacity changed its
 * shape, the pin is removed so load creates and pins a fresh one, rather
 * than refusing to start. Programs still attached keep the old map until
 * install replaces them. Returns the names removed.
 */
function dropIncompatiblePins(obj: BpfObject, mapDir: string): string[] {
  const dropped = new Set<string>();
  for (const name of PINNED_MAPS) {
    const pin = join(mapDir, name);
    if (COUNTER_MAPS.has(name) || !existsSync(pin) || obj.pinMismatch(name, pin).length === 0) continue;
    dropped.add(name);
    if (DROPPED_WITH[name]) dropped.add(DROPPED_WITH[name]);
  }
  for (const name of dropped) rmSync(join(mapDir, name), { force: true });
  return [...dropped];
}

export class MeteringDatapath {
  readonly pinRoot: string;
  readonly maxTenants: number;
  readonly maxClasses: number;
  /**
   * Tenant ids below which billing counters can be non-zero: 1 + the highest
   * id a plan of this process installed, and what the first read (of the
   * whole array: pins an earlier agent counted into) found.
   */
  #tenantsInstalled = 1;
  #tenantsFound: number | undefined;
  readonly maxFlows: number;
  private obj: BpfObject;
  private readonly counters: TypedMap<number, ReturnType<typeof TgCounter.decode>>;
  private readonly containerCounters: TypedMap<number, ReturnType<typeof TgCounter.decode>>;
  private readonly reasons: TypedMap<number, TgMeterReasons>;
  private readonly flowStats: TypedMap<number, bigint>;
  private readonly config: TypedMap<number, ReturnType<typeof TgMeterConfig.decode>>;
  private readonly policyMaps: PolicyMaps;
  private readonly metered: TypedMap<number, number>;
  /** Quota budgets the programs consume (written by src/billing's enforcer). */
  readonly quotas: QuotaMaps;
  /** The firewall's rules and counters (written by src/firewall). */
  readonly firewall: FirewallMaps;
  /** True when the counter map was adopted from a pin (a restarted agent). */
  readonly adopted: boolean;
  /** Pinned maps whose shape this build or these options changed: removed and created afresh (never the counters). */
  readonly replacedPins: readonly string[];
  private readonly attachments = new Map<string, Attachment>();

  private constructor(obj: BpfObject, opts: Required<DatapathOptions>, adopted: boolean, replacedPins: string[]) {
    this.obj = obj;
    this.replacedPins = replacedPins;
    this.pinRoot = opts.pinRoot;
    this.maxTenants = opts.maxTenants;
    this.maxClasses = opts.maxClasses;
    this.maxFlows = opts.maxFlows;
    this.adopted = adopted;
    this.counters = new TypedMap(obj.map('tg_meter_counters'), u32, TgCounter);
    this.containerCounters = new TypedMap(obj.map('tg_container_counters'), u32, TgCounter);
    this.reasons = new TypedMap(obj.map('tg_meter_reasons'), u32, TgMeterReasons);
    this.flowStats = new TypedMap(obj.map('tg_flow_stats'), u32, u64);
    this.config = new TypedMap(obj.map('tg_meter_config'), u32, TgMeterConfig);
    this.policyMaps = new PolicyMaps(obj);
    this.metered = new TypedMap(obj.map('tg_metered_iface'), u32, u32);
    this.quotas = new QuotaMaps(obj, opts.maxClasses);
    this.firewall = new FirewallMaps(obj);
  }

  /**
   * Loads the meter program. Maps already pinned under pinRoot are reused, so
   * counters stay monotonic for the life of the pin; missing ones are created
   * and pinned.
   */
  static open(opts: DatapathOptions): MeteringDatapath {
    const full = {
      pinRoot: opts.pinRoot, maxTenants: opts.maxTenants ?? TG_MAX_TENANTS, maxClasses: opts.maxClasses ?? TG_MAX_CLASSES, maxFlows: opts.maxFlows ?? TG_MAX_FLOWS,
    };
    if (!Number.isInteger(full.maxTenants) || full.maxTenants < 2 || full.maxTenants > 1 << 20) {
      throw new RangeError(`maxTenants must be an integer in [2, 1048576], got ${full.maxTenants}`);
    }
    if (!Number.isInteger(full.maxClasses) || full.maxClasses < 1 || full.maxClasses > 256) {
      throw new RangeError(`maxClasses must be an integer in [1, 256], got ${full.maxClasses}`);
    }
    if (full.maxTenants * full.maxClasses > 1 << 22) {
      throw new RangeError(`maxTenants x maxClasses must be at most 4194304, got ${full.maxTenants} x ${full.maxClasses}`);
    }
    if (!Number.isInteger(full.maxFlows) || full.maxFlows < 1024 || full.maxFlows > 1 << 24) {
      throw new RangeError(`maxFlows must be an integer in [1024, 16777216], got ${full.maxFlows}`);
    }
    const mapDir = join(full.pinRoot, 'maps');
    mkdirSync(mapDir, { recursive: true });
    const obj = BpfObject.open(bpfObjectPath('meter'));
    try {
      obj.setMaxEntries('tg_meter_counters', full.maxTenants * full.maxClasses * TG_DIR_MAX);
      obj.setMaxEntries('tg_quota_refs', full.maxTenants * full.maxClasses * TG_DIR_MAX);
      obj.setConst('tg_cfg_max_tenants', full.maxTenants);
      obj.setConst('tg_cfg_max_classes', full.maxClasses);
      obj.setMaxEntries('tg_flows', full.maxFlows);
      const replaced = dropIncompatiblePins(obj, mapDir);
      let adopted = false;
      for (const name of PINNED_MAPS) {
        const pin = join(mapDir, name);
        if (existsSync(pin)) {
          obj.reuseMap(name, pin);
          if (name === 'tg_meter_counters') adopted = true;
        }
      }
      obj.load();
      for (const name of PINNED_MAPS) {
        const pin = join(mapDir, name);
        if (!existsSync(pin)) obj.map(name).pin(pin);
      }
      return new MeteringDatapath(obj, full, adopted, replaced);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Identity of the counter map: the kernel map id changes only when the pin is recreated. */
  counterId(): string {
    return String(this.obj.map('tg_meter_counters').id);
  }

  /** The generation the datapath currently reads tenant maps with. */
  liveGeneration(): 0 | 1 {
    return (this.config.get(0)?.generation ?? 0) === 1 ? 1 : 0;
  }

  /**
   * Applies a compiled plan atomically: the plan's entries are written under
   * the idle generation, one array update makes it live, then the previous
   * generation's entries are removed. Packets see the old or the new policy,
   * never a mix.
   */
  applyPlan(plan: MeteringPlan): void {
    const live = this.liveGeneration();
    if (plan.generation === live) {
      throw new Error(`plan was compiled for generation ${plan.generation}, which is live; compile for ${1 - live}`);
    }
    this.policyMaps.write(plan);
    for (const t of plan.tenants) this.#tenantsInstalled = Math.max(this.#tenantsInstalled, t.id + 1);
    this.config.set(0, { ...this.liveConfig(), generation: plan.generation });
    this.policyMaps.purge(live);
  }

  /**
   * Attaches ingress and egress hooks to an interface: the firewall then
   * metering (tg_meter_*), or the firewall alone (tg_filter_*) when the
   * interface is not metered. A link pinned by an earlier agent is adopted
   * and its program replaced in place (no window in which packets go
   * uncounted or unfiltered).
   */
  attach(ifname: string, ifindex: number, mode: AttachMode, metered = true): Attachment {
    const linkDir = join(this.pinRoot, 'links');
    mkdirSync(linkDir, { recursive: true });
    const prog = (hook: 'ingress' | 'egress' | 'xdp') => `${metered ? 'tg_meter' : 'tg_filter'}_${hook}` as const;
    // XDP has no egress hook: with an XDP mode, egress is still handled at tcx.
    const egress: [string, () => BpfLink, string] =
      ['egress', () => this.obj.program(prog('egress')).attachTcx(ifindex, 'egress'), prog('egress')];
    const hooks: Array<[string, () => BpfLink, string]> = mode === 'tc'
      ? [['ingress', () => this.obj.program(prog('ingress')).attachTcx(ifindex, 'ingress'), prog('ingress')], egress]
      : [['xdp', () => this.obj.program(prog('xdp')).attachXdp(ifindex, mode === 'xdp-native' ? 'native' : 'generic'), prog('xdp')], egress];
    let adopted = true;
    for (const [hook, create, progName] of hooks) {
      const pin = join(linkDir, `${ifname}:${hook}`); // bpffs refuses dots in names; ifnames cannot hold a colon
      if (existsSync(pin)) {
        const link = BpfLink.openPinned(pin);
        try {
          link.update(this.obj.program(progName));
        } catch {
          // The pinned link is defunct (its interface went away and came back): replace it.
          link.unpin();
          link.close();
          const fresh = create();
          fresh.pin(pin);
          fresh.close();
          adopted = false;
          continue;
        }
        link.close();
      } else {
        const link = create();
        link.pin(pin);
        link.close();
        adopted = false;
      }
    }
    // A mode change (tc <-> XDP) leaves the other ingress hook pinned: drop it, or ingress counts twice.
    const current = new Set(hooks.map(([h]) => `${ifname}:${h}`));
    for (const f of readdirSync(linkDir)) {
      if (f.startsWith(`${ifname}:`) && !current.has(f)) {
        const stale = BpfLink.openPinned(join(linkDir, f));
        stale.unpin();
        stale.close();
      }
    }
    const a: Attachment = { ifname, ifindex, mode, metered, hooks: hooks.map(([h]) => h), adopted };
    this.attachments.set(ifname, a);
    return a;
  }

  /**
   * Makes the datapath match a compiled plan: tenant maps by generation
   * switch, then every configured interface attached (or adopted), then the
   * links of interfaces the plan no longer names removed. Interface lookups
   * in the plan were made in the caller's network namespace; call this there.
   */
  install(plan: MeteringPlan): { attachments: Attachment[]; detached: string[]; cgroupRoot: string | undefined } {
    this.applyPlan(plan);
    const attachments = plan.attach.map((a) => this.attach(a.ifname, a.ifindex, a.mode, a.metered));
    for (const name of this.attachments.keys()) if (!plan.attach.some((a) => a.ifname === name)) this.attachments.delete(name);
    this.markMetered(attachments);
    const detached = this.detachOthers(new Set(plan.attach.map((a) => a.ifname)));
    this.attachCgroupHooks(plan.cgroupRoot);
    return { attachments, detached, cgroupRoot: plan.cgroupRoot };
  }

  /**
   * Tells the cgroup hooks which interfaces are metered here (they leave
   * packets crossing those to the interface hooks) and the firewall which
   * are filtered (a packet that entered through one is not filtered again
   * where it leaves): the interfaces' network namespace, which is the
   * caller's, and enum tg_iface_flag bits by ifindex. Marked after
   * attaching, so a packet of a newly metered interface may count at both
   * hooks for an instant, never at neither.
   */
  private markMetered(attachments: readonly Attachment[]): void {
    const c = this.liveConfig();
    this.config.set(0, { ...c, metered_netns: Number(statSync('/proc/thread-self/ns/net').ino) });
    const want = new Map(attachments.map((a) => [a.ifindex, a.metered ? TG_IFACE_METERED | TG_IFACE_FILTERED : TG_IFACE_FILTERED]));
    const stale = this.metered.entries().filter(([i, v]) => v !== 0 && !want.has(i));
    this.metered.setMany([...stale.map(([i]) => [i, 0] as const), ...want]);
  }

  /**
   * Attaches the cgroup_skb hooks at root (relative to the cgroup2 mount), or
   * removes them when root is undefined. Pinned under <pinRoot>/cgroup-links;
   * a restarted agent swaps the programs in place, a new root replaces them.
   */
  private attachCgroupHooks(root: string | undefined): void {
    const dir = join(this.pinRoot, 'cgroup-links');
    mkdirSync(dir, { recursive: true });
    const mount = root === undefined ? undefined : findCgroup2(readMounts());
    if (root !== undefined && mount === undefined) throw new Error('cgroup selectors need a cgroup2 mount: mount -t cgroup2 none /sys/fs/cgroup/unified');
    // A root that does not exist yet: its nearest existing ancestor covers it (and more, harmlessly: unmapped cgroups count as unattributed).
    let path = root === undefined ? undefined : join(mount!, root);
    while (path !== undefined && !existsSync(path) && path !== mount) path = dirname(path);
    const cgroupId = path === undefined ? undefined : statSync(path, { bigint: true }).ino;
    for (const [hook, prog] of [['ingress', 'tg_meter_cg_ingress'], ['egress', 'tg_meter_cg_egress']] as const) {
      const pin = join(dir, hook);
      if (existsSync(pin)) {
        const link = BpfLink.openPinned(pin);
        try {
          if (cgroupId !== undefined && linkInfo(link.fd).cgroupId === cgroupId) {
            link.update(this.obj.program(prog));
            continue;
          }
          link.unpin(); // detached, or attached at another root: replaced below
        } finally {
          link.close();
        }
      }
      if (path === undefined) continue;
      const link = this.obj.program(prog).attachCgroup(path);
      link.pin(pin);
      link.close();
    }
  }

  /** Removes pinned links of interfaces that are no longer configured. */
  detachOthers(keep: ReadonlySet<string>): string[] {
    const linkDir = join(this.pinRoot, 'links');
    if (!existsSync(linkDir)) return [];
    const removed: string[] = [];
    for (const f of readdirSync(linkDir)) {
      if (!f.includes(':')) continue; // not an interface's link ("<ifname>:<hook>")
      const ifname = f.slice(0, f.lastIndexOf(':'));
      if (keep.has(ifname)) continue;
      const link = BpfLink.openPinned(join(linkDir, f));
      link.unpin();
      link.close();
      removed.push(f);
    }
    return removed;
  }

  listAttachments(): Attachment[] {
    return [...this.attachments.values()];
  }

  /** Cumulative counters summed over CPUs, one reading per (tenant, class, direction) that saw traffic. */
  readCounters(): CounterReading[] {
    // Only the rows of tenants that can have counted: the whole array (4 MiB by default) took ~20 ms.
    const perTenant = this.maxClasses * TG_DIR_MAX;
    const ceiling = this.#tenantsFound === undefined ? undefined : Math.max(this.#tenantsFound, this.#tenantsInstalled);
    const found = nonZeroCounters(this.counters.map, ceiling === undefined ? undefined : ceiling * perTenant);
    if (this.#tenantsFound === undefined) this.#tenantsFound = found.reduce((m, r) => Math.max(m, Math.floor(r.index / perTenant) + 1), 1);
    return found.map(({ index, packets, bytes }) => {
      const row = Math.floor(index / TG_DIR_MAX); // tenant * maxClasses + class
      return { tenantId: Math.floor(row / this.maxClasses), classId: row % this.maxClasses, direction: index % TG_DIR_MAX === 0 ? 'ingress' : 'egress', packets, bytes };
    });
  }

  /** Cumulative per-container counters (cgroup-attributed traffic) summed over CPUs, for slots that saw traffic. */
  readContainerCounters(): Array<{ slot: number; direction: Direction; packets: bigint; bytes: bigint }> {
    return nonZeroCounters(this.containerCounters.map).map(({ index, packets, bytes }) =>
      ({ slot: Math.floor(index / TG_DIR_MAX), direction: index % TG_DIR_MAX === 0 ? 'ingress' as const : 'egress' as const, packets, bytes }));
  }

  /** Per-reason packet counts (non_ip, truncated, fragment, ...). */
  readReasons(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    reasonTotals(this.reasons).forEach((n, index) => {
      const name = reasonNames[index];
      if (name) out[name] = n;
    });
    return out;
  }

  /**
   * Fill level of the maps that can run full: the tenant and class LPM tries
   * (both generations share them, so one policy may use half) and the
   * fragment LRU. Counts keys, so it costs a syscall per entry.
   */
  fill(): Array<{ map: string; entries: number; capacity: number }> {
    return FILL_MAPS.map((name) => {
      const m = this.obj.map(name);
      let entries = 0;
      for (const _ of m.keys()) entries++;
      return { map: name, entries, capacity: m.maxEntries };
    });
  }

  /** The live tg_meter_config: one value, rewritten whole, so every writer keeps the fields it does not own. */
  private liveConfig(): ReturnType<typeof TgMeterConfig.decode> {
    return this.config.get(0) ?? TgMeterConfig.decode(Buffer.alloc(TgMeterConfig.size));
  }

  /** Whether the programs add packets to flows (tg_meter_config.flags). */
  flowsEnabled(): boolean {
    return (this.liveConfig().flags & TG_METER_FLOWS) !== 0;
  }

  /** Switches flow recording with one array update: no program is reloaded, billing is untouched. */
  setFlows(on: boolean): void {
    const c = this.liveConfig();
    this.config.set(0, { ...c, flags: on ? c.flags | TG_METER_FLOWS : c.flags & ~TG_METER_FLOWS });
  }

  /**
   * Every live flow, read with batch lookups and never deleted: the agent
   * diffs against its previous read (src/flows/delta.ts). Read the counters
   * (readFlowCounters) first: see evictedFlows. `into`: buffers of an
   * earlier snapshot that is no longer used (FlowSnapshot.storage).
   */
  readFlows(into?: FlowBuffers): FlowSnapshot {
    const map = this.obj.map('tg_flows');
    const startNs = monotonicNs();
    const packed = map.lookupBatchPacked({ chunk: FLOW_READ_CHUNK, into });
    const endNs = monotonicNs();
    return { ...packed, mapId: map.id, startNs, endNs, at: new Date() };
  }

  /** Buffers a readFlows of this map fits in, faulted in now (calloc'd memory is mapped on first write). */
  newFlowBuffers(): FlowBuffers {
    const n = this.maxFlows + FLOW_READ_CHUNK; // what the batch read asks room for
    return { keys: Buffer.alloc(n * KEY_SIZE).fill(0), values: Buffer.alloc(n * VALUE_SIZE).fill(0) };
  }

  /** tg_flow_stats summed over CPUs, since the flow map was created. */
  readFlowCounters(): FlowCounters {
    const sums = new Map(this.flowStats.entriesSum());
    const out = {} as FlowCounters;
    for (const [name, i] of Object.entries(FLOW_COUNTER_INDEX)) out[name as keyof FlowCounters] = sums.get(i) ?? 0n;
    return out;
  }

  /** The ring buffer of quota events and its lost-record counter (struct tg_quota_event). */
  quotaEvents(): { events: BpfMap; lost: BpfMap } {
    return { events: this.obj.map('tg_quota_events'), lost: this.obj.map('tg_quota_lost') };
  }

  /** The ring buffer of security events (struct tg_sev) and its counters (enum tg_sev_stat). */
  securityEvents(): { ring: BpfMap; stats: BpfMap } {
    return { ring: this.obj.map('tg_sev_ring'), stats: this.obj.map('tg_sev_stats') };
  }

  /** The SYN-flood maps (abi.h, "SYN floods"): configuration, per-destination counts, guarded destinations, verified sources. */
  synMaps(): { cfg: BpfMap; dst: BpfMap; guard: BpfMap; verified: BpfMap } {
    return { cfg: this.obj.map('tg_syn_cfg'), dst: this.obj.map('tg_syn_dst'), guard: this.obj.map('tg_syn_guard'), verified: this.obj.map('tg_syn_verified') };
  }

  /** The flood and scan maps (abi.h, "Floods and scans"). */
  guardMaps(): { reflPort: BpfMap; dst: BpfMap; src: BpfMap; blockSrc: BpfMap; blockRefl: BpfMap } {
    const m = (n: string) => this.obj.map(n);
    return { reflPort: m('tg_refl_port'), dst: m('tg_guard_dst'), src: m('tg_guard_src'), blockSrc: m('tg_block_src'), blockRefl: m('tg_block_refl') };
  }

  /** One of the loaded programs, for BPF_PROG_TEST_RUN (tests and benchmarks). */
  program(name: `${'tg_meter' | 'tg_filter'}_${'ingress' | 'egress' | 'xdp'}`): BpfProgram {
    return this.obj.program(name);
  }

  /** Closes our handles; pinned maps and links stay (fail-static datapath). */
  close(): void {
    this.obj.close();
  }
}
