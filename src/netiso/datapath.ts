// The network-isolation datapath: loads bpf/progs/netiso.bpf.c, pins its
// maps under <pinRoot>/maps and its six cgroup links under
// <pinRoot>/netiso-links, and adopts both when an agent restarts: the
// connection counts, the socket marks that release them and the rules live
// in the kernel, so enforcement and counting go on while no agent runs, and
// a restarted agent continues the same counts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { attachCgroupLinks, BpfLink, type BpfObject, type CgroupLinksResult, loadPinned, TypedMap, linkInfo, s64, u32, u64, unpinLinks, type BpfMap, type BpfProgram } from '../kernel/index.js';
import {
  TgNiGroup, TgNiRef, TgNiRule, TgNiScope, TgNiV4Key, TgNiV6Key,
  TG_NI_MAX_CGROUPS, TG_NI_MAX_GROUPS, TG_NI_SCOPE_GEN,
} from '../kernel/abi.gen.js';
import { bpfObjectPath } from '../paths.js';
import type { GenerationEntries } from './compile.js';

/** Kept across agents: the assignment, the counts with their leases and socket marks, the rules, and the events waiting in the ring. */
const PINNED_MAPS = ['tg_ni_cgroup', 'tg_ni_conns', 'tg_ni_group', 'tg_ni_sk', 'tg_ni_scope', 'tg_ni_rule', 'tg_ni_v4', 'tg_ni_v6', 'tg_ni_ring', 'tg_ni_stats'] as const;
/** Counts mean something only together with the leases and the socket marks: replaced together. */
const COUNTING = new Set<string>(['tg_ni_conns', 'tg_ni_group', 'tg_ni_sk']);
/** Pinned link name -> program. */
export const NETISO_LINKS = {
  connect4: 'tg_ni_connect4',
  connect6: 'tg_ni_connect6',
  sendmsg4: 'tg_ni_sendmsg4',
  sendmsg6: 'tg_ni_sendmsg6',
  sock_release: 'tg_ni_release',
  egress: 'tg_ni_egress',
} as const;

export interface NetAttachResult extends CgroupLinksResult {
  /** The cgroup (absolute path) the hooks run at. */
  cgroup: string;
}

export type NetGroupSlot = TgNiGroup;
export type NetRef = TgNiRef;

export class NetIsoDatapath {
  readonly #obj: BpfObject;
  readonly #linkDir: string;
  readonly #cgroups: TypedMap<bigint, TgNiRef>;
  readonly #conns: TypedMap<number, bigint>;
  readonly #groups: TypedMap<number, TgNiGroup>;
  readonly #scopes: TypedMap<number, TgNiScope>;
  readonly #rules: TypedMap<number, TgNiRule>;
  readonly #v4: TypedMap<TgNiV4Key, bigint>;
  readonly #v6: TypedMap<TgNiV6Key, bigint>;
  /** What tg_ni_cgroup holds, as this process last wrote or read it. */
  #written: Map<bigint, TgNiRef>;
  /** Pins of another shape that open() replaced (an upgrade changed them). */
  readonly replaced: readonly string[];

  private constructor(obj: BpfObject, pinRoot: string, replaced: string[]) {
    this.#obj = obj;
    this.#linkDir = join(pinRoot, 'netiso-links');
    this.replaced = replaced;
    this.#cgroups = new TypedMap(obj.map('tg_ni_cgroup'), u64, TgNiRef);
    this.#conns = new TypedMap(obj.map('tg_ni_conns'), u32, s64);
    this.#groups = new TypedMap(obj.map('tg_ni_group'), u32, TgNiGroup);
    this.#scopes = new TypedMap(obj.map('tg_ni_scope'), u32, TgNiScope);
    this.#rules = new TypedMap(obj.map('tg_ni_rule'), u32, TgNiRule);
    this.#v4 = new TypedMap(obj.map('tg_ni_v4'), TgNiV4Key, u64);
    this.#v6 = new TypedMap(obj.map('tg_ni_v6'), TgNiV6Key, u64);
    this.#written = new Map(this.#cgroups.entries());
  }

  /**
   * Loads the programs over the pinned maps (reused when their shape is
   * this build's; replaced otherwise, the three counting maps together).
   * Attaches nothing: see attach().
   */
  static open(opts: { pinRoot: string }): NetIsoDatapath {
    // Counts and their leases go together: one without the other would be wrong.
    const together = (stale: string[]) => (stale.some((n) => COUNTING.has(n)) ? [...new Set([...stale, ...COUNTING])] : stale);
    const { obj, replaced } = loadPinned(bpfObjectPath('netiso'), opts.pinRoot, PINNED_MAPS, together);
    return new NetIsoDatapath(obj, opts.pinRoot, replaced);
  }

  /** A program by its link name (BPF_PROG_TEST_RUN drives `egress`; the socket hooks cannot be test-run). */
  program(link: keyof typeof NETISO_LINKS): BpfProgram {
    return this.#obj.program(NETISO_LINKS[link]);
  }

  /**
   * Attaches every hook at the cgroup directory `path` (absolute), adopting
   * pinned links already there: same build kept, another build swapped in
   * place. A link pinned at another cgroup is replaced, the new one attached
   * before the old one goes (for a moment both run; the socket marks keep a
   * socket from being counted or released twice).
   */
  attach(path: string): NetAttachResult {
    const programs = Object.fromEntries(Object.entries(NETISO_LINKS).map(([name, prog]) => [name, this.#obj.program(prog)]));
    return { cgroup: path, ...attachCgroupLinks(this.#linkDir, path, programs) };
  }

  /** The cgroup id the hooks are attached at; undefined when they are not (all pinned links must agree). */
  attachedAt(): bigint | undefined {
    let at: bigint | undefined;
    for (const name of Object.keys(NETISO_LINKS)) {
      const pin = join(this.#linkDir, name);
      if (!existsSync(pin)) return undefined;
      const link = BpfLink.openPinned(pin);
      try {
        const id = linkInfo(link.fd).cgroupId;
        if (id === undefined || (at !== undefined && id !== at)) return undefined;
        at = id;
      } finally {
        link.close();
      }
    }
    return at;
  }

  /** Detaches every hook (nothing is enforced or counted any more); the maps stay pinned. */
  detach(): void {
    unpinLinks(this.#linkDir, Object.keys(NETISO_LINKS));
  }

  /** The ring of struct tg_ni_event records and its per-CPU enum tg_sev_stat counters. */
  events(): { ring: BpfMap; stats: BpfMap } {
    return { ring: this.#obj.map('tg_ni_ring'), stats: this.#obj.map('tg_ni_stats') };
  }

  // ---- cgroups ----

  /** cgroup id -> (group slot, kernel scope id) as the map holds it: what an earlier agent left, or this one wrote. */
  cgroups(): ReadonlyMap<bigint, TgNiRef> {
    return this.#written;
  }

  /** Makes tg_ni_cgroup exactly `want`: new and changed entries first, then the ones no longer wanted go. */
  setCgroups(want: ReadonlyMap<bigint, TgNiRef>): void {
    if (want.size > TG_NI_MAX_CGROUPS) throw new RangeError(`${want.size} cgroups to isolate, at most ${TG_NI_MAX_CGROUPS}`);
    const changed = [...want].filter(([id, r]) => {
      const had = this.#written.get(id);
      return had?.group !== r.group || had.scope !== r.scope;
    });
    if (changed.length) this.#cgroups.setMany(changed);
    for (const id of this.#written.keys()) if (!want.has(id)) this.#cgroups.delete(id);
    this.#written = new Map(want);
  }

  // ---- connection groups ----

  /** A slot's limit and lease (zeros when never given). */
  group(slot: number): TgNiGroup {
    checkSlot(slot);
    return this.#groups.get(slot) ?? { limit: 0, lease: 0 };
  }

  /** Changes a slot's limit, keeping its lease (its count goes on). */
  setLimit(slot: number, limit: number): void {
    checkSlot(slot);
    const g = this.group(slot);
    if (g.limit !== limit) this.#groups.set(slot, { limit, lease: g.lease });
  }

  /**
   * Gives a slot to a new group: a new lease first (sockets counted under the
   * old one no longer release into it), then a zero count.
   */
  lease(slot: number, limit: number, lease: number): void {
    checkSlot(slot);
    this.#groups.set(slot, { limit, lease });
    this.#conns.set(slot, 0n);
  }

  /** Open connections counted in a slot. */
  count(slot: number): bigint {
    checkSlot(slot);
    return this.#conns.get(slot) ?? 0n;
  }

  /** Every slot with a non-zero count. */
  counts(): Map<number, bigint> {
    return new Map(this.#conns.entries().filter(([slot, n]) => slot > 0 && n !== 0n));
  }

  // ---- destination rules, by generation ----

  /** Writes a generation's entries: tries and rules first, then the scopes that point at them. */
  writeGeneration(e: GenerationEntries): void {
    if (e.v4.length) this.#v4.setMany(e.v4);
    if (e.v6.length) this.#v6.setMany(e.v6);
    if (e.rules.length) this.#rules.setMany(e.rules);
    if (e.scopes.length) this.#scopes.setMany(e.scopes);
  }

  /** Removes everything of a generation (its scopes off first, so nothing points at half a policy). */
  clearGeneration(generation: 0 | 1): void {
    const mine = (scope: number) => scope > 0 && Math.floor(scope / TG_NI_SCOPE_GEN) === generation && scope % TG_NI_SCOPE_GEN !== 0;
    const ids = Array.from({ length: TG_NI_SCOPE_GEN - 1 }, (_, i) => generation * TG_NI_SCOPE_GEN + i + 1);
    const scopes = new Map(this.#scopes.entries());
    const off: Array<[number, TgNiScope]> = ids.filter((id) => (scopes.get(id)?.flags ?? 0) !== 0 || (scopes.get(id)?.n_rules ?? 0) !== 0)
      .map((id) => [id, { flags: 0, default_action: 0, n_rules: 0, pad: 0 }]);
    if (off.length) this.#scopes.setMany(off);
    for (const k of this.#v4.keys()) if (mine(k.scope)) this.#v4.delete(k);
    for (const k of this.#v6.keys()) if (mine(k.scope)) this.#v6.delete(k);
    // Rule entries stay: nothing reaches them without an LPM entry, and the next write of the generation overwrites them.
  }

  /** The generation's scope entries as the map holds them (for tests and diagnostics). */
  scopeEntry(id: number): TgNiScope | undefined {
    return this.#scopes.get(id);
  }

  /** LPM entries of a kernel scope id (for tests and diagnostics). */
  prefixes(scope: number): { v4: Array<[TgNiV4Key, bigint]>; v6: Array<[TgNiV6Key, bigint]> } {
    return { v4: this.#v4.entries().filter(([k]) => k.scope === scope), v6: this.#v6.entries().filter(([k]) => k.scope === scope) };
  }

  close(): void {
    this.#obj.close();
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot >= TG_NI_MAX_GROUPS) throw new RangeError(`connection group slot must be an integer in [1, ${TG_NI_MAX_GROUPS - 1}], got ${slot}`);
}
