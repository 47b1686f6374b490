// Which container counts in which slot of tg_container_counters. A slot is
// handed out once and never reused while its counter map lives, so a slot's
// monotonic counter always belongs to one container; the assignment
// survives agent restarts in a small JSON file next to the ledger and starts
// over when the counter map is new.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { TG_MAX_CONTAINERS } from '../kernel/abi.gen.js';

export interface SlotOwner {
  containerId: string;
  runtime: string;
  tenant: string;
}

interface SlotFile {
  counterId: string;
  slots: Array<SlotOwner & { slot: number }>;
}

export class ContainerSlots {
  readonly #path: string;
  readonly #counterId: string;
  readonly #bySlot = new Map<number, SlotOwner>();
  readonly #byContainer = new Map<string, number>();

  private constructor(path: string, counterId: string, saved: SlotFile | undefined) {
    this.#path = path;
    this.#counterId = counterId;
    if (saved?.counterId !== counterId) return; // a new counter map: every slot counts from zero again
    for (const s of saved.slots) {
      this.#bySlot.set(s.slot, { containerId: s.containerId, runtime: s.runtime, tenant: s.tenant });
      this.#byContainer.set(s.containerId, s.slot);
    }
  }

  /** Loads the assignment for the counter map counterId (a file for another map is ignored). */
  static open(path: string, counterId: string): ContainerSlots {
    let saved: SlotFile | undefined;
    if (existsSync(path)) {
      try {
        saved = JSON.parse(readFileSync(path, 'utf8')) as SlotFile;
      } catch (err) {
        throw new Error(`${path}: not a container slot file (${(err as Error).message}); remove it to start the per-container breakdown over`);
      }
    }
    return new ContainerSlots(path, counterId, saved);
  }

  /**
   * Gives every container a slot (keeping existing ones) and returns cgroup
   * id -> slot. Containers beyond the slots available get none: their traffic
   * is still billed to their tenant, only the breakdown misses them.
   */
  assign(containers: ReadonlyArray<{ id: string; runtime: string; tenant: string; cgroupId: bigint }>): { slots: Map<bigint, number>; unassigned: string[] } {
    const slots = new Map<bigint, number>();
    const unassigned: string[] = [];
    let changed = false;
    for (const c of containers) {
      let slot = this.#byContainer.get(c.id);
      if (slot === undefined) {
        slot = this.#bySlot.size + 1;
        if (slot >= TG_MAX_CONTAINERS) {
          unassigned.push(c.id);
          continue;
        }
        this.#bySlot.set(slot, { containerId: c.id, runtime: c.runtime, tenant: c.tenant });
        this.#byContainer.set(c.id, slot);
        changed = true;
      }
      slots.set(c.cgroupId, slot);
    }
    if (changed) this.#save();
    return { slots, unassigned };
  }

  owner(slot: number): SlotOwner | undefined {
    return this.#bySlot.get(slot);
  }

  #save(): void {
    const file: SlotFile = { counterId: this.#counterId, slots: [...this.#bySlot].map(([slot, o]) => ({ slot, ...o })) };
    const tmp = `${this.#path}.tmp`;
    writeFileSync(tmp, JSON.stringify(file));
    renameSync(tmp, this.#path); // a crash leaves the old file or the new one, never half
  }
}
