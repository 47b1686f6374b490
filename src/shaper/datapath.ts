// The bandwidth-limit datapath: loads bpf/progs/shaper.bpf.c, pins its maps
// and its three cgroup links (cgroup_skb egress and ingress, sockops) under
// the pin root, and adopts them when an agent restarts, so limits hold while
// no agent runs and a restarted agent finds every group's state, counters
// and slot where it left them. Links are attached at one cgroup above the
// containers and swapped atomically (bpf_link_update) when a new build of
// the programs comes along, never detached and attached again.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { attachCgroupLinks, BpfLink, type BpfObject, type BpfProgram, loadPinned, TypedMap, linkInfo, u32, u64, unpinLinks } from '../kernel/index.js';
import {
  TgBwCfg,
  TgBwRef,
  TgBwState,
  TgBwStats,
  TG_BW_MAX_CGROUPS,
  TG_BW_MAX_GROUPS,
  TG_DIR_EGRESS,
  TG_DIR_INGRESS,
  TG_DIR_MAX,
} from '../kernel/abi.gen.js';
import { bpfObjectPath } from '../paths.js';

/**
 * Kept across agents: the assignment, the limits, the policers' state, the
 * counters, and the per-socket storage (without it, sockets established
 * under an earlier agent's programs would lose their pacing updates).
 */
const PINNED_MAPS = ['tg_bw_cgroup', 'tg_bw_cfg', 'tg_bw_state', 'tg_bw_stats', 'tg_bw_sock'] as const;
/** Pinned link name -> program. */
const LINKS = { bw_egress: 'tg_bw_egress', bw_ingress: 'tg_bw_ingress', bw_sockops: 'tg_bw_sockops' } as const;
export type ShaperProgram = (typeof LINKS)[keyof typeof LINKS];

const ZERO_STATE: TgBwState = { lock: Buffer.alloc(4), pad: 0, tat_ns: 0n, epoch_ns: 0n, prev_epoch_ns: 0n, active_now: 0, active_before: 0 };
const ZERO_STATS: TgBwStats = { passed_packets: 0n, passed_bytes: 0n, dropped_packets: 0n, dropped_bytes: 0n, protected_packets: 0n, pacing_updates: 0n };
const NO_LIMIT: TgBwCfg = { rate_bps: 0n, burst_ns: 0n, burst_bytes: 0n, ident: 0n, flags: 0, pad: 0 };

export type BwDirection = 'egress' | 'ingress';
const DIRS: Record<BwDirection, number> = { egress: TG_DIR_EGRESS, ingress: TG_DIR_INGRESS };

export type BwStats = TgBwStats;
export type BwCfg = TgBwCfg;

const index = (slot: number, dir: BwDirection): number => slot * TG_DIR_MAX + DIRS[dir];

export class ShaperDatapath {
  readonly #obj: BpfObject;
  readonly #linkDir: string;
  readonly #mapDir: string;
  readonly #cgroups: TypedMap<bigint, TgBwRef>;
  readonly #cfg: TypedMap<number, TgBwCfg>;
  readonly #state: TypedMap<number, TgBwState>;
  readonly #stats: TypedMap<number, TgBwStats>;
  /** What tg_bw_cgroup holds (cgroup id -> slot), as this process last wrote or read it. */
  #written: Map<bigint, number>;

  private constructor(obj: BpfObject, pinRoot: string) {
    this.#obj = obj;
    this.#linkDir = join(pinRoot, 'shaper-links');
    this.#mapDir = join(pinRoot, 'maps');
    this.#cgroups = new TypedMap(obj.map('tg_bw_cgroup'), u64, TgBwRef);
    this.#cfg = new TypedMap(obj.map('tg_bw_cfg'), u32, TgBwCfg);
    this.#state = new TypedMap(obj.map('tg_bw_state'), u32, TgBwState);
    this.#stats = new TypedMap(obj.map('tg_bw_stats'), u32, TgBwStats);
    this.#written = new Map(this.#cgroups.entries().map(([id, r]) => [id, r.group]));
  }

  /**
   * Loads the programs. Pinned maps are reused (limits, state and counters
   * go on); a pin of another shape (an upgrade changed it) is replaced.
   */
  static open(opts: { pinRoot: string }): ShaperDatapath {
    return new ShaperDatapath(loadPinned(bpfObjectPath('shaper'), opts.pinRoot, PINNED_MAPS).obj, opts.pinRoot);
  }

  /** One of the programs (for BPF_PROG_TEST_RUN and run-time statistics). */
  program(name: ShaperProgram): BpfProgram {
    return this.#obj.program(name);
  }

  /** The cgroup id the links are attached at, or undefined while detached. */
  attachedAt(): bigint | undefined {
    const pin = join(this.#linkDir, 'bw_egress');
    if (!existsSync(pin)) return undefined;
    const link = BpfLink.openPinned(pin);
    try {
      return linkInfo(link.fd).cgroupId;
    } finally {
      link.close();
    }
  }

  /**
   * Attaches the three programs at the cgroup directory cgroupPath (every
   * container below it is covered), or adopts the pinned links: a link at
   * that cgroup running this very program is kept, one running another
   * build is updated in place (bpf_link_update: no packet goes unpoliced).
   * Links at another cgroup are replaced, the new one attached before the
   * old one goes (for a moment a packet may be counted by both).
   */
  attach(cgroupPath: string): { adopted: boolean } {
    const programs = Object.fromEntries(Object.entries(LINKS).map(([name, prog]) => [name, this.#obj.program(prog)]));
    const r = attachCgroupLinks(this.#linkDir, cgroupPath, programs);
    return { adopted: r.updated.length === 0 && r.attached.length === 0 };
  }

  /** Detaches the programs: nothing is limited any more (maps and counters stay). */
  detach(): void {
    unpinLinks(this.#linkDir, Object.keys(LINKS));
  }

  /** Removes the pins of this datapath's maps (after detach: the maps go when the last program using them does). */
  unpinMaps(): void {
    for (const name of PINNED_MAPS) {
      const pin = join(this.#mapDir, name);
      if (existsSync(pin)) rmSync(pin);
    }
    rmSync(this.#linkDir, { recursive: true, force: true });
  }

  /** Every slot's limits with a group identity (what an earlier agent left, or this one wrote): slot -> [egress, ingress]. */
  groups(): Map<number, { egress: TgBwCfg; ingress: TgBwCfg }> {
    const out = new Map<number, { egress: TgBwCfg; ingress: TgBwCfg }>();
    const all = new Map(this.#cfg.entries());
    for (let slot = 1; slot < TG_BW_MAX_GROUPS; slot++) {
      const egress = all.get(index(slot, 'egress')) ?? NO_LIMIT;
      const ingress = all.get(index(slot, 'ingress')) ?? NO_LIMIT;
      if (egress.ident !== 0n || ingress.ident !== 0n) out.set(slot, { egress, ingress });
    }
    return out;
  }

  /**
   * Writes a group's limits in place: the policer's state and every
   * connection carry on, so a limit changes at run time without a reset.
   */
  setLimits(slot: number, limits: { egress: TgBwCfg; ingress: TgBwCfg }): void {
    checkSlot(slot);
    this.#cfg.set(index(slot, 'egress'), limits.egress);
    this.#cfg.set(index(slot, 'ingress'), limits.ingress);
  }

  /** Frees a slot: no limits, no identity. */
  clearLimits(slot: number): void {
    this.setLimits(slot, { egress: NO_LIMIT, ingress: NO_LIMIT });
  }

  /** Zeroes a slot's policer state and counters, before it is given to another group. */
  reset(slot: number): void {
    checkSlot(slot);
    for (const dir of ['egress', 'ingress'] as const) {
      this.#state.set(index(slot, dir), ZERO_STATE);
      this.#stats.setAllCpus(index(slot, dir), ZERO_STATS);
    }
  }

  /** Counters of one slot and direction, summed over CPUs. */
  stats(slot: number, dir: BwDirection): TgBwStats {
    checkSlot(slot);
    return this.#stats.getSum(index(slot, dir)) ?? { ...ZERO_STATS };
  }

  /** cgroup id -> slot as the map holds it. */
  cgroups(): ReadonlyMap<bigint, number> {
    return this.#written;
  }

  /** Makes tg_bw_cgroup exactly `want`: new and changed entries first, then the ones no longer wanted go. */
  setCgroups(want: ReadonlyMap<bigint, number>): void {
    if (want.size > TG_BW_MAX_CGROUPS) throw new RangeError(`${want.size} cgroups to limit, at most ${TG_BW_MAX_CGROUPS}`);
    for (const s of want.values()) checkSlot(s);
    const changed = [...want].filter(([id, s]) => this.#written.get(id) !== s).map(([id, s]) => [id, { group: s, pad: 0 }] as const);
    if (changed.length) this.#cgroups.setMany(changed);
    for (const id of this.#written.keys()) if (!want.has(id)) this.#cgroups.delete(id);
    this.#written = new Map(want);
  }

  close(): void {
    this.#obj.close();
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot >= TG_BW_MAX_GROUPS) throw new RangeError(`bandwidth group slot must be an integer in [1, ${TG_BW_MAX_GROUPS - 1}], got ${slot}`);
}
