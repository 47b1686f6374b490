// The metering datapath: loads bpf/progs/meter.bpf.c, pins its maps and
// links under the pin root, adopts them when an agent restarts (counters go
// on counting, programs are swapped atomically with bpf_link_update), applies
// compiled tenant maps with a generation switch, and reads the counters back.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfObject, TypedMap, type BpfProgram } from '../kernel/index.js';
import { TgCounter, TgMeterConfig, TG_DIR_MAX, TG_MAX_CLASSES, TG_MAX_TENANTS, TgMeterReason } from '../kernel/abi.gen.js';
import { u32, u64 } from '../kernel/codec.js';
import type { MeteringPlan } from '../policy/index.js';
import { PolicyMaps } from './policy-maps.js';
import { bpfObjectPath } from '../paths.js';

/** Maps that carry state across agent restarts and are therefore pinned. */
const PINNED_MAPS = [
  'tg_meter_counters', 'tg_meter_reasons', 'tg_meter_config',
  'tg_tenant_v4', 'tg_tenant_v6', 'tg_tenant_iface',
  'tg_class_gen', 'tg_class_v4', 'tg_class_v6', 'tg_class_proto', 'tg_class_port', 'tg_class_ids',
] as const;

const FILL_MAPS = ['tg_tenant_v4', 'tg_tenant_v6', 'tg_class_v4', 'tg_class_v6', 'tg_frag_ports'] as const;

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
  hooks: string[];
  adopted: boolean;
}

export interface DatapathOptions {
  /** Directory under bpffs for this agent's pins, e.g. /sys/fs/bpf/tollgate */
  pinRoot: string;
  maxTenants?: number;
  /** Class capacity of the counter array (class ids 0..maxClasses-1). */
  maxClasses?: number;
}

const reasonNames: Record<number, string> = Object.fromEntries(
  Object.entries(TgMeterReason)
    .filter(([k]) => k !== 'TG_REASON_MAX')
    .map(([k, v]) => [v, k.replace(/^TG_REASON_/, '').toLowerCase()]),
);

export class MeteringDatapath {
  readonly pinRoot: string;
  readonly maxTenants: number;
  readonly maxClasses: number;
  private obj: BpfObject;
  private readonly counters: TypedMap<number, ReturnType<typeof TgCounter.decode>>;
  private readonly reasons: TypedMap<number, bigint>;
  private readonly config: TypedMap<number, ReturnType<typeof TgMeterConfig.decode>>;
  private readonly policyMaps: PolicyMaps;
  /** True when the counter map was adopted from a pin (a restarted agent). */
  readonly adopted: boolean;
  private readonly attachments = new Map<string, Attachment>();

  private constructor(obj: BpfObject, opts: Required<DatapathOptions>, adopted: boolean) {
    this.obj = obj;
    this.pinRoot = opts.pinRoot;
    this.maxTenants = opts.maxTenants;
    this.maxClasses = opts.maxClasses;
    this.adopted = adopted;
    this.counters = new TypedMap(obj.map('tg_meter_counters'), u32, TgCounter);
    this.reasons = new TypedMap(obj.map('tg_meter_reasons'), u32, u64);
    this.config = new TypedMap(obj.map('tg_meter_config'), u32, TgMeterConfig);
    this.policyMaps = new PolicyMaps(obj);
  }

  /**
   * Loads the meter program. Maps already pinned under pinRoot are reused, so
   * counters stay monotonic for the life of the pin; missing ones are created
   * and pinned.
   */
  static open(opts: DatapathOptions): MeteringDatapath {
    const full = { pinRoot: opts.pinRoot, maxTenants: opts.maxTenants ?? TG_MAX_TENANTS, maxClasses: opts.maxClasses ?? TG_MAX_CLASSES };
    if (!Number.isInteger(full.maxTenants) || full.maxTenants < 2 || full.maxTenants > 1 << 20) {
      throw new RangeError(`maxTenants must be an integer in [2, 1048576], got ${full.maxTenants}`);
    }
    if (!Number.isInteger(full.maxClasses) || full.maxClasses < 1 || full.maxClasses > 256) {
      throw new RangeError(`maxClasses must be an integer in [1, 256], got ${full.maxClasses}`);
    }
    if (full.maxTenants * full.maxClasses > 1 << 22) {
      throw new RangeError(`maxTenants x maxClasses must be at most 4194304, got ${full.maxTenants} x ${full.maxClasses}`);
    }
    const mapDir = join(full.pinRoot, 'maps');
    mkdirSync(mapDir, { recursive: true });
    const obj = BpfObject.open(bpfObjectPath('meter'));
    try {
      obj.setMaxEntries('tg_meter_counters', full.maxTenants * full.maxClasses * TG_DIR_MAX);
      obj.setConst('tg_cfg_max_tenants', full.maxTenants);
      obj.setConst('tg_cfg_max_classes', full.maxClasses);
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
      return new MeteringDatapath(obj, full, adopted);
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
    this.config.set(0, { generation: plan.generation, flags: 0 });
    this.policyMaps.purge(live);
  }

  /**
   * Attaches ingress and egress metering to an interface. A link pinned by an
   * earlier agent is adopted and its program replaced in place (no window in
   * which packets go uncounted).
   */
  attach(ifname: string, ifindex: number, mode: AttachMode): Attachment {
    const linkDir = join(this.pinRoot, 'links');
    mkdirSync(linkDir, { recursive: true });
    // XDP has no egress hook: with an XDP mode, egress is still metered at tcx.
    const egress: [string, () => BpfLink, string] =
      ['egress', () => this.obj.program('tg_meter_egress').attachTcx(ifindex, 'egress'), 'tg_meter_egress'];
    const hooks: Array<[string, () => BpfLink, string]> = mode === 'tc'
      ? [['ingress', () => this.obj.program('tg_meter_ingress').attachTcx(ifindex, 'ingress'), 'tg_meter_ingress'], egress]
      : [['xdp', () => this.obj.program('tg_meter_xdp').attachXdp(ifindex, mode === 'xdp-native' ? 'native' : 'generic'), 'tg_meter_xdp'], egress];
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
    const a: Attachment = { ifname, ifindex, mode, hooks: hooks.map(([h]) => h), adopted };
    this.attachments.set(ifname, a);
    return a;
  }

  /**
   * Makes the datapath match a compiled plan: tenant maps by generation
   * switch, then every configured interface attached (or adopted), then the
   * links of interfaces the plan no longer names removed. Interface lookups
   * in the plan were made in the caller's network namespace; call this there.
   */
  install(plan: MeteringPlan): { attachments: Attachment[]; detached: string[] } {
    this.applyPlan(plan);
    const attachments = plan.attach.map((a) => this.attach(a.ifname, a.ifindex, a.mode));
    for (const name of this.attachments.keys()) if (!plan.attach.some((a) => a.ifname === name)) this.attachments.delete(name);
    const detached = this.detachOthers(new Set(plan.attach.map((a) => a.ifname)));
    return { attachments, detached };
  }

  /** Removes pinned links of interfaces that are no longer configured. */
  detachOthers(keep: ReadonlySet<string>): string[] {
    const linkDir = join(this.pinRoot, 'links');
    if (!existsSync(linkDir)) return [];
    const removed: string[] = [];
    for (const f of readdirSync(linkDir)) {
      const ifname = f.slice(0, f.lastIndexOf(":"));
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
    const out: CounterReading[] = [];
    for (const [index, c] of this.counters.entriesSum()) {
      if (c.packets === 0n && c.bytes === 0n) continue;
      const row = Math.floor(index / TG_DIR_MAX); // tenant * maxClasses + class
      out.push({
        tenantId: Math.floor(row / this.maxClasses),
        classId: row % this.maxClasses,
        direction: index % TG_DIR_MAX === 0 ? 'ingress' : 'egress',
        packets: c.packets,
        bytes: c.bytes,
      });
    }
    return out;
  }

  /** Per-reason packet counts (non_ip, truncated, fragment, ...). */
  readReasons(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    for (const [index, n] of this.reasons.entriesSum()) {
      const name = reasonNames[index];
      if (name) out[name] = n;
    }
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

  /** One of the loaded programs, for BPF_PROG_TEST_RUN (tests and benchmarks). */
  program(name: 'tg_meter_ingress' | 'tg_meter_egress' | 'tg_meter_xdp'): BpfProgram {
    return this.obj.program(name);
  }

  /** Closes our handles; pinned maps and links stay (fail-static datapath). */
  close(): void {
    this.obj.close();
  }
}
