// Bandwidth limits as the agent drives them: open (load or adopt the pinned
// datapath, attached at one cgroup above the containers), apply the groups
// the policy and the container list give, read each group's counters, close.
// Closing leaves the limits in force (fail-static); remove() lifts them.
import { existsSync } from 'node:fs';
import { compileBandwidth, groupIdent, groupKey, type BandwidthGroup, type CompiledGroup, type CompileOptions } from './compile.js';
import { ShaperDatapath, type BwStats } from './datapath.js';

export interface ShaperOptions {
  /** Pin directory in bpffs (the agent's is /sys/fs/bpf/tollgate). */
  pinRoot: string;
  /** A cgroup v2 directory above every container to limit (e.g. the cgroup2 mount itself, or <mount>/docker). */
  cgroupRoot: string;
  /** Pace TCP sockets at egress (default true): see bpf/progs/shaper.bpf.c. */
  pacing?: boolean;
}

export interface ShaperApplyResult {
  /** Groups limited, by key ("container:<id>" / "tenant:<name>"). */
  groups: number;
  /** Cgroups mapped to a group (containers and the cgroups below them). */
  cgroups: number;
  /** Slots given to a group that had none (their state and counters start at zero). */
  added: string[];
  /** Groups no longer limited. */
  removed: string[];
}

export interface GroupStats {
  key: string;
  slot: number;
  egress: BwStats;
  ingress: BwStats;
}

export class Shaper {
  readonly #dp: ShaperDatapath;
  readonly #pacing: boolean;
  /** Group key -> slot, as applied last (after open: matched by identity on the first apply). */
  #slots = new Map<string, number>();
  /** Slot -> identity of what the kernel holds in it (an earlier agent's groups until the first apply). */
  #idents: Map<number, bigint>;
  #closed = false;

  private constructor(dp: ShaperDatapath, opts: ShaperOptions) {
    this.#dp = dp;
    this.#pacing = opts.pacing ?? true;
    this.#idents = new Map([...dp.groups()].map(([slot, l]) => [slot, l.egress.ident || l.ingress.ident]));
  }

  /** Loads (or adopts) the datapath under pinRoot and attaches it at cgroupRoot. */
  static open(opts: ShaperOptions): Shaper {
    if (typeof opts?.pinRoot !== 'string' || !opts.pinRoot.startsWith('/')) throw new TypeError('Shaper.open: pinRoot must be an absolute path in bpffs');
    if (typeof opts.cgroupRoot !== 'string' || !existsSync(opts.cgroupRoot)) throw new TypeError(`Shaper.open: cgroupRoot must be an existing cgroup v2 directory, got ${String(opts.cgroupRoot)}`);
    const dp = ShaperDatapath.open({ pinRoot: opts.pinRoot });
    try {
      dp.attach(opts.cgroupRoot);
      return new Shaper(dp, opts);
    } catch (e) {
      dp.close();
      throw e;
    }
  }

  /** The datapath (tests and the bench drive its programs directly). */
  get datapath(): ShaperDatapath {
    return this.#dp;
  }

  /**
   * Limits exactly these groups; throws BandwidthError (naming the field)
   * and changes nothing when one is invalid. A group keeps its slot, its
   * policer state and its counters across applies (and across agents: the
   * kernel keeps each slot's identity); a changed limit is written in
   * place, so connections carry on at the new rate. Order: limits of new
   * and changed groups, then the cgroups pointing at them, then the slots
   * of groups that went away.
   */
  apply(groups: readonly BandwidthGroup[], opts: Pick<CompileOptions, 'pacing'> = {}): ShaperApplyResult {
    this.#open();
    // Identity first: an earlier agent's slots are kept for the same groups.
    const previous = new Map(this.#slots);
    const byIdent = new Map([...this.#idents].map(([slot, ident]) => [ident, slot]));
    for (const g of Array.isArray(groups) ? groups : []) {
      const key = keyOf(g);
      const s = key === undefined ? undefined : byIdent.get(groupIdent(key));
      if (key !== undefined && s !== undefined && !previous.has(key)) previous.set(key, s);
    }
    const out = compileBandwidth(groups, { previous, pacing: opts.pacing ?? this.#pacing });
    const added: string[] = [];
    const keep = new Set<number>();
    for (const g of out.groups) {
      keep.add(g.slot);
      if (this.#idents.get(g.slot) !== g.ident) {
        this.#dp.reset(g.slot);
        added.push(g.key);
      }
      this.#write(g);
    }
    this.#dp.setCgroups(out.cgroups);
    const removed = [...this.#slots].filter(([k, s]) => !out.slots.has(k) && !keep.has(s)).map(([k]) => k);
    for (const [slot] of this.#idents) {
      if (!keep.has(slot)) this.#dp.clearLimits(slot);
    }
    this.#idents = new Map(out.groups.map((g) => [g.slot, g.ident]));
    this.#slots = out.slots;
    return { groups: out.groups.length, cgroups: out.cgroups.size, added, removed };
  }

  #write(g: CompiledGroup): void {
    this.#dp.setLimits(g.slot, { egress: g.egress, ingress: g.ingress });
  }

  /** Passed, dropped and protected packets and bytes per group and direction (monotonic while a group keeps its slot). */
  stats(): GroupStats[] {
    this.#open();
    return [...this.#slots].map(([key, slot]) => ({ key, slot, egress: this.#dp.stats(slot, 'egress'), ingress: this.#dp.stats(slot, 'ingress') }));
  }

  /** Closes this process's handles; the pinned programs keep limiting (fail-static). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dp.close();
  }

  /** Lifts every limit: detaches the programs and removes this datapath's pins (nothing else under pinRoot). */
  remove(): void {
    this.#open();
    this.#dp.detach();
    this.#dp.unpinMaps();
    this.close();
  }

  #open(): void {
    if (this.#closed) throw new Error('Shaper is closed');
  }
}

/** The group's key when it is shaped like a group at all (compileBandwidth says what is wrong otherwise). */
function keyOf(g: unknown): string | undefined {
  if (typeof g !== 'object' || g === null) return undefined;
  const o = g as { container?: { id?: unknown }; tenant?: unknown };
  if (typeof o.container?.id === 'string' || typeof o.tenant === 'string') return groupKey(g as BandwidthGroup);
  return undefined;
}
