// Which container counts in which slot of tg_sys_counts, and moving the
// kernel's counts into the syscall store. The slot assignment lives in the
// kernel itself (tg_sys_cgroup: a container cgroup's storage holds its slot
// and lease),
// so a restarted agent finds every container still in its slot and goes on
// from the store's checkpoint. A slot freed by a container that went away
// is zeroed and given a new lease before another container gets it.
import { randomInt } from 'node:crypto';
import { TG_MAX_SYS_SLOTS } from '../kernel/abi.gen.js';
import type { SysCgroup, SysmonDatapath, SysRef } from './datapath.js';
import type { SeenSyscall, SyscallStore } from './store.js';

export interface MonitoredContainer {
  id: string;
  runtime: string;
  tenant: string;
  cgroupId: bigint;
  cgroupPath: string;
  /** Cgroups below the container's own: their tasks count for the container too. */
  below: readonly SysCgroup[];
  /** Index of the governing isolation scope. */
  scope: number;
}

interface Slotted {
  container: MonitoredContainer;
  slot: number;
  lease: number;
}

export interface ApplyResult {
  monitored: number;
  /** Containers beyond the slots available: not monitored. */
  unassigned: string[];
  /** The tracepoint was already attached by this build (an agent restart). */
  adopted?: boolean;
}

export class SyscallMonitor {
  readonly #dp: SysmonDatapath;
  readonly #store: SyscallStore;
  /** Container id -> its slot. */
  #slots = new Map<string, Slotted>();
  /** The same by slot. */
  #bySlot = new Map<number, Slotted>();

  constructor(datapath: SysmonDatapath, store: SyscallStore) {
    this.#dp = datapath;
    this.#store = store;
  }

  /**
   * Monitors exactly these containers: each keeps the slot the kernel map
   * gives its cgroup, new ones get free slots. Containers no longer listed
   * have their last counts stored before their slots are released. The
   * tracepoint is attached while any container is monitored, detached
   * otherwise.
   */
  apply(containers: readonly MonitoredContainer[], at = Date.now()): ApplyResult {
    const want = new Map(containers.map((c) => [c.id, c]));
    const leaving = [...this.#slots.values()].filter((s) => !want.has(s.container.id));
    if (leaving.length) this.#store.record(leaving.map((s) => this.#reading(s)), at);

    const next = new Map<string, Slotted>();
    const used = new Set<number>();
    const fresh: MonitoredContainer[] = [];
    for (const c of containers) {
      const had = this.#slots.get(c.id) ?? adopt(this.#dp.cgroupRef(c));
      if (had && !used.has(had.slot)) {
        next.set(c.id, { container: c, slot: had.slot, lease: had.lease });
        used.add(had.slot);
      } else fresh.push(c);
    }
    const unassigned: string[] = [];
    let free = 1;
    for (const c of fresh) {
      while (used.has(free)) free++;
      if (free >= TG_MAX_SYS_SLOTS) {
        unassigned.push(c.id);
        continue;
      }
      this.#dp.zero(free);
      next.set(c.id, { container: c, slot: free, lease: randomInt(1, 2 ** 32 - 1) });
      used.add(free);
    }

    const refs = new Map<bigint, { cgroup: SysCgroup; ref: SysRef }>();
    for (const s of next.values()) {
      const ref = { slot: s.slot, scope: s.container.scope + 1, lease: s.lease, pad: 0 };
      for (const cgroup of [s.container, ...s.container.below]) refs.set(cgroup.cgroupId, { cgroup, ref });
    }
    this.#dp.setCgroups(refs);
    this.#slots = next;
    this.#bySlot = new Map([...next.values()].map((s) => [s.slot, s]));
    let adopted: boolean | undefined;
    if (next.size > 0) adopted = this.#dp.enable().adopted;
    else this.#dp.disable();
    return { monitored: next.size, unassigned, ...(adopted === undefined ? {} : { adopted }) };
  }

  /** Moves every monitored container's counts into the store; returns the syscalls added. */
  sync(at = Date.now()): bigint {
    if (this.#slots.size === 0) return 0n;
    return this.#store.record([...this.#slots.values()].map((s) => this.#reading(s)), at);
  }

  /** The monitored containers with their slots. */
  monitored(): Array<MonitoredContainer & { slot: number }> {
    return [...this.#slots.values()].map((s) => ({ ...s.container, slot: s.slot }));
  }

  /** The container counting in a slot now. */
  owner(slot: number): { id: string; runtime: string; tenant: string } | undefined {
    return this.#bySlot.get(slot)?.container;
  }

  /** What a container was seen doing (synced first when it is monitored now); undefined when never seen. */
  seen(containerId: string, since = 0): SeenSyscall[] | undefined {
    if (this.#slots.has(containerId)) this.sync();
    if (!this.#store.container(containerId)) return undefined;
    return this.#store.seen(containerId, since);
  }

  #reading(s: Slotted) {
    const c = s.container;
    return {
      container: { id: c.id, runtime: c.runtime, tenant: c.tenant, cgroupPath: c.cgroupPath },
      source: `${this.#dp.countsId()}:${s.slot}:${s.lease}`,
      counts: this.#dp.counts(s.slot),
    };
  }
}

function adopt(ref: SysRef | undefined): { slot: number; lease: number } | undefined {
  return ref && ref.slot > 0 && ref.slot < TG_MAX_SYS_SLOTS ? { slot: ref.slot, lease: ref.lease } : undefined;
}
