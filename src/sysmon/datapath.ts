// The syscall-monitoring datapath: loads bpf/progs/sysmon.bpf.c, pins its
// maps and its raw tracepoint link under the pin root, and adopts them when
// an agent restarts, so counting goes on while no agent runs and a restarted
// agent continues the same counts. The link exists only while something is
// monitored: an attached sys_enter tracepoint sends every syscall on the
// host through the slow path, monitored or not.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfObject, type BpfProgram, TypedMap, linkInfo, progInfoById, u32, u64 } from '../kernel/index.js';
import { TgSysCounts, TgSysRef, TG_MAX_SYS_CGROUPS, TG_MAX_SYS_SLOTS, TG_SYSCALL_NR } from '../kernel/abi.gen.js';
import { bpfObjectPath } from '../paths.js';

const PINNED_MAPS = ['tg_sys_cgroup', 'tg_sys_counts'] as const;
const LINK = 'sys_enter';
const ZERO: TgSysCounts = { n: Array.from({ length: TG_SYSCALL_NR }, () => 0n) };

export type SysRef = TgSysRef;

export class SysmonDatapath {
  readonly #obj: BpfObject;
  readonly #linkPin: string;
  readonly #cgroups: TypedMap<bigint, TgSysRef>;
  readonly #counts: TypedMap<number, TgSysCounts>;
  /** What tg_sys_cgroup holds, as this process last wrote or read it. */
  #written: Map<bigint, TgSysRef>;

  private constructor(obj: BpfObject, pinRoot: string) {
    this.#obj = obj;
    this.#linkPin = join(pinRoot, 'links', LINK);
    this.#cgroups = new TypedMap(obj.map('tg_sys_cgroup'), u64, TgSysRef);
    this.#counts = new TypedMap(obj.map('tg_sys_counts'), u32, TgSysCounts);
    this.#written = new Map(this.#cgroups.entries());
  }

  /**
   * Loads the program. Pinned maps are reused (the counts go on); a pin of
   * another shape (an upgrade changed it) is replaced, since these counts
   * are observations, not billing records.
   */
  static open(opts: { pinRoot: string }): SysmonDatapath {
    const mapDir = join(opts.pinRoot, 'maps');
    mkdirSync(mapDir, { recursive: true });
    const obj = BpfObject.open(bpfObjectPath('sysmon'));
    try {
      for (const name of PINNED_MAPS) {
        const pin = join(mapDir, name);
        if (existsSync(pin) && obj.pinMismatch(name, pin).length > 0) rmSync(pin);
        if (existsSync(pin)) obj.reuseMap(name, pin);
      }
      obj.load();
      for (const name of PINNED_MAPS) {
        const pin = join(mapDir, name);
        if (!existsSync(pin)) obj.map(name).pin(pin);
      }
      return new SysmonDatapath(obj, opts.pinRoot);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** The sys_enter program (for BPF_PROG_TEST_RUN and run-time statistics). */
  get program(): BpfProgram {
    return this.#obj.program('tg_sys_enter');
  }

  /** True while the tracepoint link is pinned (attached). */
  get enabled(): boolean {
    return existsSync(this.#linkPin);
  }

  /**
   * Attaches the tracepoint, or adopts the pinned link when it runs this
   * very program (same tag). A link running another build is replaced, the
   * new one attached before the old one goes: for a moment both count (a
   * syscall counted twice), never neither.
   */
  enable(): { adopted: boolean } {
    const prog = this.program;
    let old: BpfLink | undefined;
    if (existsSync(this.#linkPin)) {
      old = BpfLink.openPinned(this.#linkPin);
      const running = progInfoById(linkInfo(old.fd).progId);
      if (running.tag === prog.info().tag) {
        old.close();
        return { adopted: true };
      }
    }
    mkdirSync(join(this.#linkPin, '..'), { recursive: true });
    const link = prog.attach();
    try {
      if (old) old.unpin();
      link.pin(this.#linkPin);
    } finally {
      link.close();
      old?.close();
    }
    return { adopted: false };
  }

  /** Detaches the tracepoint (no syscall pays for it any more); the counts stay. */
  disable(): void {
    if (!existsSync(this.#linkPin)) return;
    const link = BpfLink.openPinned(this.#linkPin);
    link.unpin();
    link.close();
  }

  /** cgroup id -> (slot, scope) as the map holds it: what an earlier agent left, or this one wrote. */
  cgroups(): ReadonlyMap<bigint, TgSysRef> {
    return this.#written;
  }

  /** Makes tg_sys_cgroup exactly `want`: new and changed entries first, then the ones no longer wanted go. */
  setCgroups(want: ReadonlyMap<bigint, TgSysRef>): void {
    if (want.size > TG_MAX_SYS_CGROUPS) throw new RangeError(`${want.size} cgroups to monitor, at most ${TG_MAX_SYS_CGROUPS}`);
    const changed = [...want].filter(([id, r]) => {
      const had = this.#written.get(id);
      return had?.slot !== r.slot || had.scope !== r.scope || had.lease !== r.lease;
    });
    if (changed.length) this.#cgroups.setMany(changed);
    for (const id of this.#written.keys()) if (!want.has(id)) this.#cgroups.delete(id);
    this.#written = new Map(want);
  }

  /** Identity of the counts map: its kernel id changes only when the pin is recreated. */
  countsId(): string {
    return String(this.#obj.map('tg_sys_counts').id);
  }

  /** Counts of one slot, summed over CPUs: index = syscall number (TG_SYSCALL_OTHER: beyond the table). */
  counts(slot: number): bigint[] {
    checkSlot(slot);
    return this.#counts.getSum(slot)?.n ?? ZERO.n.slice();
  }

  /** Zeroes a slot on every CPU, before it is given to another container. */
  zero(slot: number): void {
    checkSlot(slot);
    this.#counts.setAllCpus(slot, ZERO);
  }

  close(): void {
    this.#obj.close();
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot >= TG_MAX_SYS_SLOTS) throw new RangeError(`syscall slot must be an integer in [1, ${TG_MAX_SYS_SLOTS - 1}], got ${slot}`);
}
