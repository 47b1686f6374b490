// The syscall-monitoring datapath: loads bpf/progs/sysmon.bpf.c, pins its
// maps and its tracepoint links (sys_enter: counts and denied syscalls;
// sched_process_exec: execs; the open syscalls' exits: sensitive files)
// under the pin root, and adopts them when an agent restarts, so counting
// and enforcement go on while no agent runs and a restarted agent continues
// the same counts. The links exist only while something is monitored (an
// attached sys_enter tracepoint sends every syscall on the host through the
// slow path, monitored or not), the open exits only while a scope has
// sensitive paths as well.
import { closeSync, constants as fsc, existsSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, type BpfObject, type BpfMap, type BpfProgram, cgroup2Root, ensureTracefs, loadPinned, TypedMap, linkInfo, progInfoById, u32, unpinLinks } from '../kernel/index.js';
import { TgSysCounts, TgSysPathKey, TgSysPathRule, TgSysRef, TgSysScope, TG_MAX_SYS_SCOPES, TG_MAX_SYS_SLOTS, TG_SYSCALL_NR } from '../kernel/abi.gen.js';
import { bpfObjectPath } from '../paths.js';

/** Kept across agents: the assignment, the counts, the policy the programs enforce, and the events waiting in the ring with their loss counters. */
const PINNED_MAPS = ['tg_sys_cgroup', 'tg_sys_counts', 'tg_sys_scope', 'tg_sys_paths', 'tg_sys_ring', 'tg_sys_stats'] as const;
/** Pinned link name -> program, attached while anything is monitored. */
const LINKS: Readonly<Record<string, string>> = { sys_enter: 'tg_sys_enter', sys_exec: 'tg_sys_exec' };
/** The same, attached only while a scope has sensitive paths as well. */
const PATH_LINKS: Readonly<Record<string, string>> = Object.fromEntries(
  ['open', 'openat', 'openat2', 'creat', 'open_by_handle_at'].map((sc) => [`sys_exit_${sc}`, `tg_sys_exit_${sc}`]),
);
const ZERO: TgSysCounts = { n: Array.from({ length: TG_SYSCALL_NR }, () => 0n) };
const NO_SCOPE: TgSysScope = { deny: Array.from({ length: TG_SYSCALL_NR / 64 }, () => 0n), flags: 0, pad: 0 };

export type SysRef = TgSysRef;
export type SysScope = TgSysScope;
export type SysPathKey = TgSysPathKey;
export type SysPathRule = TgSysPathRule;

/** A cgroup: its id (the directory's inode) and its path relative to the cgroup2 mount. */
export interface SysCgroup {
  cgroupId: bigint;
  cgroupPath: string;
}

export class SysmonDatapath {
  readonly #obj: BpfObject;
  readonly #linkDir: string;
  /** Cgroup local storage, keyed by an open cgroup directory's fd. */
  readonly #cgroups: TypedMap<number, TgSysRef>;
  readonly #mount: string;
  readonly #counts: TypedMap<number, TgSysCounts>;
  readonly #scopes: TypedMap<number, TgSysScope>;
  readonly #paths: TypedMap<TgSysPathKey, TgSysPathRule>;
  /** Scope entries this process wrote (the others are zero or an earlier agent's, cleared on the first write). */
  #scopesWritten: Set<number> | undefined;
  /** The entries this process gave cgroups, by cgroup id. */
  #written = new Map<bigint, { cgroup: SysCgroup; ref: TgSysRef }>();
  /** tg_sys_paths has prefixes: the open exits are attached with the rest. */
  #pathChecks = false;

  private constructor(obj: BpfObject, pinRoot: string) {
    this.#obj = obj;
    this.#linkDir = join(pinRoot, 'sysmon-links'); // apart from the interface links metering manages in links/
    this.#cgroups = new TypedMap(obj.map('tg_sys_cgroup'), u32, TgSysRef);
    this.#mount = cgroup2Root();
    this.#counts = new TypedMap(obj.map('tg_sys_counts'), u32, TgSysCounts);
    this.#scopes = new TypedMap(obj.map('tg_sys_scope'), u32, TgSysScope);
    this.#paths = new TypedMap(obj.map('tg_sys_paths'), TgSysPathKey, TgSysPathRule);
  }

  /**
   * Loads the program. Pinned maps are reused (the counts go on); a pin of
   * another shape (an upgrade changed it) is replaced, since these counts
   * are observations, not billing records.
   */
  static open(opts: { pinRoot: string }): SysmonDatapath {
    return new SysmonDatapath(loadPinned(bpfObjectPath('sysmon'), opts.pinRoot, PINNED_MAPS).obj, opts.pinRoot);
  }

  /** The sys_enter program (for BPF_PROG_TEST_RUN and run-time statistics). */
  get program(): BpfProgram {
    return this.#obj.program('tg_sys_enter');
  }

  /** True while the tracepoint links are pinned (attached). */
  get enabled(): boolean {
    return existsSync(join(this.#linkDir, 'sys_enter'));
  }

  /** True while the open syscalls' exits are attached (sensitive paths are checked). */
  get checkingPaths(): boolean {
    return existsSync(join(this.#linkDir, Object.keys(PATH_LINKS)[0]!));
  }

  /**
   * Attaches the tracepoints (the open exits only while there are sensitive
   * paths), or adopts a pinned link when it runs this very program (same
   * tag). A link running another build is replaced, the new one attached
   * before the old one goes: for a moment both count (a syscall counted
   * twice), never neither.
   */
  enable(): { adopted: boolean } {
    const adopted = this.#attach(LINKS);
    if (!this.#pathChecks) {
      unpinLinks(this.#linkDir, Object.keys(PATH_LINKS));
      return { adopted };
    }
    ensureTracefs(); // per-syscall tracepoints are found by their ids in tracefs
    return { adopted: this.#attach(PATH_LINKS) && adopted };
  }

  #attach(links: Readonly<Record<string, string>>): boolean {
    mkdirSync(this.#linkDir, { recursive: true });
    let adopted = true;
    for (const [name, progName] of Object.entries(links)) {
      const pin = join(this.#linkDir, name);
      const prog = this.#obj.program(progName);
      let old: BpfLink | undefined;
      if (existsSync(pin)) {
        old = BpfLink.openPinned(pin);
        if (progInfoById(linkInfo(old.fd).progId).tag === prog.info().tag) {
          old.close();
          continue;
        }
      }
      adopted = false;
      const link = prog.attach();
      try {
        if (old) old.unpin();
        link.pin(pin);
      } finally {
        link.close();
        old?.close();
      }
    }
    return adopted;
  }

  /** Detaches the tracepoints (no syscall pays for them any more); the counts stay. */
  disable(): void {
    unpinLinks(this.#linkDir, [...Object.keys(PATH_LINKS), ...Object.keys(LINKS)]);
  }

  /** The ring of struct tg_sys_event records and its per-CPU enum tg_sev_stat counters. */
  events(): { ring: BpfMap; stats: BpfMap } {
    return { ring: this.#obj.map('tg_sys_ring'), stats: this.#obj.map('tg_sys_stats') };
  }

  /**
   * Makes tg_sys_scope hold exactly these scopes (by tg_sys_ref.scope, 1 up);
   * every other entry is zero (denies nothing). Written before the cgroup
   * entries that point at them.
   */
  setScopes(scopes: ReadonlyMap<number, TgSysScope>): void {
    for (const i of scopes.keys()) if (!Number.isInteger(i) || i < 1 || i >= TG_MAX_SYS_SCOPES) throw new RangeError(`syscall scope must be in [1, ${TG_MAX_SYS_SCOPES - 1}], got ${i}`);
    const stale = this.#scopesWritten ?? new Set(Array.from({ length: TG_MAX_SYS_SCOPES - 1 }, (_, i) => i + 1));
    const entries: Array<[number, TgSysScope]> = [...scopes];
    for (const i of stale) if (!scopes.has(i)) entries.push([i, NO_SCOPE]);
    if (entries.length) this.#scopes.setMany(entries);
    this.#scopesWritten = new Set(scopes.keys());
  }

  /**
   * Makes tg_sys_paths hold exactly these prefixes: new ones first, then the
   * ones no longer wanted go (also an earlier agent's). Write before the
   * scopes that turn the checks on. While the tracepoints are attached, the
   * open exits follow at once (attached when there are prefixes, detached
   * when none are left).
   */
  setPaths(entries: ReadonlyArray<readonly [TgSysPathKey, TgSysPathRule]>): void {
    const id = (k: TgSysPathKey) => `${k.scope}:${k.prefixlen}:${Buffer.from(k.path).toString('hex')}`;
    const want = new Set(entries.map(([k]) => id(k)));
    for (const [k, v] of entries) this.#paths.set(k, v);
    for (const k of this.#paths.keys()) if (!want.has(id(k))) this.#paths.delete(k);
    this.#pathChecks = entries.length > 0;
    if (this.enabled) this.enable();
  }

  /** The entry a cgroup has (an earlier agent gave it); undefined when none, or the cgroup is gone. */
  cgroupRef(cg: SysCgroup): TgSysRef | undefined {
    return this.#withCgroup(cg, (fd) => this.#cgroups.get(fd));
  }

  /**
   * Gives exactly these cgroups (by id) an entry: new and changed ones
   * first, then the entries of cgroups no longer wanted go. A cgroup that is
   * gone (or was re-created under its path: another id) is skipped; its
   * storage went with it.
   */
  setCgroups(want: ReadonlyMap<bigint, { cgroup: SysCgroup; ref: TgSysRef }>): void {
    for (const [id, w] of want) {
      const had = this.#written.get(id)?.ref;
      if (had?.slot === w.ref.slot && had.scope === w.ref.scope && had.lease === w.ref.lease) continue;
      this.#withCgroup(w.cgroup, (fd) => this.#cgroups.set(fd, w.ref));
    }
    for (const [id, w] of this.#written) if (!want.has(id)) this.#withCgroup(w.cgroup, (fd) => this.#cgroups.delete(fd));
    this.#written = new Map(want);
  }

  /** Runs fn with an fd of the cgroup's directory, when it still is that cgroup. */
  #withCgroup<T>(cg: SysCgroup, fn: (fd: number) => T): T | undefined {
    let fd: number;
    try {
      fd = openSync(join(this.#mount, cg.cgroupPath), fsc.O_RDONLY | fsc.O_DIRECTORY);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw e;
    }
    try {
      return fstatSync(fd, { bigint: true }).ino === cg.cgroupId ? fn(fd) : undefined;
    } finally {
      closeSync(fd);
    }
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
