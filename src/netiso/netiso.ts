// Network isolation as the agent drives it: open over the pins (adopting a
// running datapath), apply(scopes, containers) after every policy load and
// cgroup rescan, read connection counts and events, close (enforcement and
// counting go on without the agent).
//
// Connection groups keep their slot for as long as they exist: the slot a
// group counts in is found again from the kernel's own cgroup map after a
// restart, so counts stay exact across agents. A slot given to a new group
// gets a new lease and a zero count first (sockets counted by its previous
// group never release into it).
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cgroup2Root, type BpfMap } from '../kernel/index.js';
import { TG_NI_MAX_GROUPS, TG_NI_SCOPE_GEN } from '../kernel/abi.gen.js';
import type { NewEvent } from '../events/event.js';
import type { IsolationScope } from '../policy/index.js';
import { compileNetIsolation, generationEntries, kernelScopeId, type CompiledGroup, type NetContainer } from './compile.js';
import { NetIsoDatapath, type NetAttachResult, type NetRef } from './datapath.js';
import { describeNetEvent, type NetEventNames } from './events.js';

export interface NetIsolationOptions {
  /** Where the maps (<pinRoot>/maps) and links (<pinRoot>/netiso-links) are pinned. */
  pinRoot: string;
  /**
   * The cgroup whose subtree the hooks cover, relative to the cgroup2 mount
   * ("/" covers every cgroup; an absolute path under the mount is taken as
   * is). When it does not exist yet, its nearest existing ancestor. Absent:
   * load only, and leave any pinned hooks as they are until attach().
   */
  cgroupRoot?: string;
}

export interface NetAttachment extends NetAttachResult {
  /** Counts began again: the release hook was attached anew, so closes while it was away went unseen. */
  reset: boolean;
}

export interface NetApplyResult {
  /** Containers whose sockets are counted and checked. */
  containers: number;
  groups: number;
  /** Containers left out: the maps are full. */
  unassigned: string[];
  /** Containers outside the cgroup the hooks are attached at: nothing is checked or counted for them (attach at a cgroup covering them). */
  uncovered: string[];
  /** The live rule generation. */
  generation: 0 | 1;
  /** The destination rules were written anew and switched to (else they were unchanged). */
  switched: boolean;
}

export interface GroupConnections {
  /** "container:<id>" (a scope with a containers glob) or "tenant:<name>" (the tenant's containers together). */
  group: string;
  kind: 'container' | 'tenant';
  tenant: string;
  /** Index of the governing isolation scope. */
  scope: number;
  containers: string[];
  /** Outbound TCP connections open now (sockets that connected and are not closed). */
  open: number;
  /** null: counted, not limited. */
  limit: number | null;
  /** The kernel slot (tg_ni_conns index). */
  slot: number;
}

interface Slotted {
  group: CompiledGroup;
  slot: number;
}

const other = (g: 0 | 1): 0 | 1 => (g === 0 ? 1 : 0);
const stableJson = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

export class NetIsolation implements NetEventNames {
  readonly #dp: NetIsoDatapath;
  #attachment: NetAttachment | undefined;
  /** The attach cgroup relative to the cgroup2 mount. */
  #rootPath = '/';
  #scopes: readonly IsolationScope[] = [];
  /** The generation the cgroup entries point at, and what this process wrote there (undefined: not written by this process). */
  #live: { generation: 0 | 1; content: string | undefined };
  #groups = new Map<string, Slotted>();
  #bySlot = new Map<number, Slotted>();
  #byCgroup = new Map<bigint, NetContainer>();

  private constructor(dp: NetIsoDatapath) {
    this.#dp = dp;
    // The generation an earlier agent left live: the one most cgroup entries point at.
    const n = [0, 0];
    for (const r of dp.cgroups().values()) if (r.scope > 0) n[Math.floor(r.scope / TG_NI_SCOPE_GEN) & 1]! += 1;
    this.#live = { generation: n[1]! > n[0]! ? 1 : 0, content: undefined };
  }

  /** Loads (or adopts) the datapath and attaches it at cgroupRoot, when given. */
  static open(opts: NetIsolationOptions): NetIsolation {
    const dp = NetIsoDatapath.open({ pinRoot: opts.pinRoot });
    try {
      const n = new NetIsolation(dp);
      if (opts.cgroupRoot !== undefined) n.attach(opts.cgroupRoot);
      return n;
    } catch (err) {
      dp.close();
      throw err;
    }
  }

  /** The low-level datapath (tests, diagnostics). */
  get datapath(): NetIsoDatapath {
    return this.#dp;
  }

  /** Where the hooks run, and what open()/attach() found there. */
  get attachment(): NetAttachment | undefined {
    return this.#attachment;
  }

  /**
   * Attaches the hooks at cgroupRoot (see NetIsolationOptions), adopting
   * links already there. Moving to another cgroup replaces the links
   * (attach first, then the old ones go).
   */
  attach(cgroupRoot: string): NetAttachment {
    const mount = cgroup2Root();
    let path = (cgroupRoot === mount || cgroupRoot.startsWith(`${mount}/`) ? cgroupRoot : join(mount, cgroupRoot)).replace(/\/+$/, '') || '/';
    while (!existsSync(path) && path.length > mount.length) path = dirname(path);
    this.#rootPath = path.slice(mount.length) || '/';
    const r = this.#dp.attach(path);
    const reset = r.attached.includes('sock_release') && this.#restartCounts();
    this.#attachment = { ...r, reset };
    return this.#attachment;
  }

  /** Detaches every hook: nothing is checked or counted until attach(); counts begin again then. */
  detach(): void {
    this.#dp.detach();
    this.#attachment = undefined;
  }

  /** New leases and zero counts for every slot in use (sockets counted before never release into them). */
  #restartCounts(): boolean {
    const slots = new Set([...this.#dp.counts().keys(), ...[...this.#dp.cgroups().values()].map((r) => r.group).filter((s) => s > 0)]);
    for (const slot of slots) this.#dp.lease(slot, this.#dp.group(slot).limit, this.#newLease(slot));
    return slots.size > 0;
  }

  #newLease(slot: number): number {
    const old = this.#dp.group(slot).lease;
    for (;;) {
      const l = randomInt(1, 2 ** 32 - 1);
      if (l !== old) return l;
    }
  }

  /**
   * Makes the kernel enforce these scopes on these containers (the governing
   * scope of each is the first that selects it, src/isolation/scopes.ts).
   * Throws NetIsoCompileError, naming the policy field, before changing
   * anything when the policy does not fit. Destination rules change by a
   * generation switch (a cgroup sees the old rules or the new, never half);
   * groups keep their slots and counts; new groups start at zero.
   */
  apply(scopes: readonly IsolationScope[] | undefined, containers: readonly NetContainer[]): NetApplyResult {
    const plan = compileNetIsolation(scopes, containers);
    // Limits live in the group slots: only what the rule maps hold decides a switch.
    const content = stableJson(plan.scopes.map(({ maxConnections: _limit, ...rules }) => rules));
    let generation = this.#live.generation;
    let switched = false;
    if (this.#live.content !== content) {
      generation = other(this.#live.generation);
      this.#dp.clearGeneration(generation); // what a crash mid-switch may have left there
      this.#dp.writeGeneration(generationEntries(plan.scopes, generation));
      switched = true;
    }

    const kernel = this.#dp.cgroups();
    const used = new Set<number>();
    const next = new Map<string, Slotted>();
    const fresh: CompiledGroup[] = [];
    for (const g of plan.groups) {
      let slot = this.#groups.get(g.key)?.slot;
      if (slot === undefined || used.has(slot)) {
        // After a restart: the slot the kernel map gives the group's cgroups.
        slot = undefined;
        for (const id of g.cgroups) {
          const s = kernel.get(id)?.group;
          if (s !== undefined && s > 0 && s < TG_NI_MAX_GROUPS && !used.has(s)) {
            slot = s;
            break;
          }
        }
      }
      if (slot === undefined) {
        fresh.push(g);
        continue;
      }
      used.add(slot);
      this.#dp.setLimit(slot, g.limit ?? 0);
      next.set(g.key, { group: g, slot });
    }
    // A new group never gets a slot some cgroup still counts in (until the entries below are written).
    const referenced = new Set([...kernel.values()].map((r) => r.group));
    const unassigned = [...plan.unassigned];
    let free = 1;
    for (const g of fresh) {
      while (free < TG_NI_MAX_GROUPS && (used.has(free) || referenced.has(free))) free++;
      if (free >= TG_NI_MAX_GROUPS) {
        unassigned.push(...g.containers.map((c) => c.id));
        continue;
      }
      this.#dp.lease(free, g.limit ?? 0, this.#newLease(free));
      used.add(free);
      next.set(g.key, { group: g, slot: free });
    }

    const refs = new Map<bigint, NetRef>();
    const byCgroup = new Map<bigint, NetContainer>();
    for (const s of next.values()) {
      const ref = { group: s.slot, scope: kernelScopeId(generation, s.group.scope) };
      for (const id of s.group.cgroups) refs.set(id, ref);
      for (const c of s.group.containers) for (const id of [c.cgroupId, ...c.below]) if (!byCgroup.has(id)) byCgroup.set(id, c);
    }
    this.#dp.setCgroups(refs);
    if (switched) this.#dp.clearGeneration(other(generation)); // nothing points there any more
    this.#live = { generation, content };
    this.#scopes = scopes ?? [];
    this.#groups = next;
    this.#bySlot = new Map([...next.values()].map((s) => [s.slot, s]));
    this.#byCgroup = byCgroup;
    const root = this.#rootPath;
    const covered = (c: NetContainer): boolean => this.#attachment !== undefined && (root === '/' || c.cgroupPath === root || c.cgroupPath.startsWith(`${root}/`));
    const uncovered = [...next.values()].flatMap((s) => s.group.containers).filter((c) => !covered(c)).map((c) => c.id);
    return { containers: [...next.values()].reduce((n, s) => n + s.group.containers.length, 0), groups: next.size, unassigned, uncovered, generation, switched };
  }

  /** Open outbound TCP connections per group, as the kernel counts them now. */
  connections(): GroupConnections[] {
    return [...this.#groups.values()].map(({ group: g, slot }) => ({
      group: g.key, kind: g.kind, tenant: g.tenant, scope: g.scope, containers: g.containers.map((c) => c.id),
      open: Number(this.#dp.count(slot)), limit: g.limit, slot,
    }));
  }

  /** The event ring (struct tg_ni_event records) and its enum tg_sev_stat counters, for src/events/datapath.ts DatapathEvents. */
  events(): { ring: BpfMap; stats: BpfMap } {
    return this.#dp.events();
  }

  /** A ring record as a security event, with this instance's names (DatapathEvents' describe). */
  describe(record: Buffer, taiOffsetMs: number): NewEvent {
    return describeNetEvent(record, this, taiOffsetMs);
  }

  container(cgroupId: bigint): { id: string; runtime: string; tenant: string } | undefined {
    const c = this.#byCgroup.get(cgroupId);
    return c && { id: c.id, runtime: c.runtime, tenant: c.tenant };
  }

  group(slot: number): { key: string; kind: 'container' | 'tenant'; tenant: string } | undefined {
    const s = this.#bySlot.get(slot);
    return s && { key: s.group.key, kind: s.group.kind, tenant: s.group.tenant };
  }

  scopes(): readonly IsolationScope[] {
    return this.#scopes;
  }

  /** Closes this process's handles; the pinned hooks keep enforcing and counting. */
  close(): void {
    this.#dp.close();
  }
}
