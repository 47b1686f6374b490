// The isolation capability in the agent: which containers the policy's
// isolation scopes govern, their syscall monitoring and policy
// (src/sysmon), their connection limits and destination rules
// (src/netiso), their bandwidth (src/shaper), and what the API shows of
// containers. The agent hands it every policy it applies and every cgroup
// rescan.
import { discoverContainers, type Container } from '../containers/index.js';
import type { CgroupTenants } from '../metering/cgroup-tenants.js';
import { cgroupCoveringRoot, type IsolationScope, type Policy } from '../policy/index.js';
import { compileNetIsolation, NetIsolation, type GroupConnections, type NetApplyResult, type NetContainer } from '../netiso/index.js';
import { bandwidthGroups, compileBandwidth, Shaper, type GroupStats, type ShaperApplyResult } from '../shaper/index.js';
import { cgroup2Root } from '../kernel/index.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SysmonDatapath } from '../sysmon/datapath.js';
import { SyscallMonitor, type ApplyResult, type MonitoredContainer } from '../sysmon/monitor.js';
import { SyscallStore, type SeenSyscall } from '../sysmon/store.js';
import { assertSyscallArch } from '../sysmon/syscalls.js';
import { compileSysPaths, compileSysScopes } from '../sysmon/scopes.js';
import { describeSysEvent } from '../sysmon/events.js';
import { DatapathEvents, type DatapathEventsOptions } from '../events/datapath.js';
import { scopeContainers } from './scopes.js';

/** How often kernel counts move into the syscall store (and on every query, and when a container goes). */
export const SYSCALL_SYNC_MS = 10_000;

export interface ContainerView {
  id: string;
  runtime: string;
  cgroup: string;
  cgroupId: string;
  pod: Container['pod'] | null;
  tenant: string | null;
  /** The governing isolation scope, as the policy writes it (null: none). */
  isolation: (IsolationScope & { index: number }) | null;
  monitored: boolean;
  /** Outbound TCP connections open in the container's group (the container, or its tenant's scope as a whole). */
  connections: { group: string; open: number; limit: number | null } | null;
  /** Bytes and packets its bandwidth group passed and dropped, per direction (monotonic while the group lasts). */
  bandwidth: { group: string; egress: Record<string, bigint>; ingress: Record<string, bigint> } | null;
}

/** The cgroup covering every tenant's globs: where the cgroup programs attach. */
const coveringRoot = (doc: Policy): string => cgroupCoveringRoot(doc.tenants.flatMap((t) => t.selectors.cgroups)) ?? '/';

/** Where the network hooks go: the covering cgroup, when a scope limits connections or destinations. */
function netRoot(doc: Policy): string | undefined {
  if (!(doc.isolation ?? []).some((s) => s.maxConnections !== undefined || s.destinations !== undefined)) return undefined;
  return coveringRoot(doc);
}

/** The covering cgroup's nearest existing directory (absolute), when a scope limits bandwidth. */
function shaperRoot(doc: Policy): string | undefined {
  if (!(doc.isolation ?? []).some((s) => s.bandwidth !== undefined)) return undefined;
  const mount = cgroup2Root();
  let dir = join(mount, coveringRoot(doc));
  while (!existsSync(dir) && dir.length > mount.length) dir = dirname(dir);
  return dir;
}

/** The bandwidth groups of a policy's scopes over these containers. */
const shaperGroups = (doc: Policy, cgroups: CgroupTenants) =>
  bandwidthGroups(doc.isolation ?? [], scopeContainers(doc.isolation, cgroups.containers)
    .map(({ container: c, scope }) => ({ container: { id: c.id, tenant: c.tenant, cgroupId: c.cgroupId, below: c.below.map((b) => b.cgroupId) }, scope })));

const stableJson = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));

const netContainers = (cgroups: CgroupTenants): NetContainer[] =>
  cgroups.containers.map((c) => ({ ...c, below: c.below.map((b) => b.cgroupId) }));

export class Isolation {
  readonly #dp: SysmonDatapath;
  readonly #store: SyscallStore;
  readonly #monitor: SyscallMonitor;
  readonly #net: NetIsolation;
  /** Where the network hooks are attached (undefined: detached, no scope limits connections or destinations). */
  #netRoot: string | undefined;
  #netEvents: DatapathEvents | undefined;
  #netApplied = '';
  readonly #pinRoot: string;
  /** Open while a scope limits bandwidth, attached at #shaperRoot. */
  #shaper: Shaper | undefined;
  #shaperRoot: string | undefined;
  #shaperApplied = '';
  #scopes: readonly IsolationScope[] = [];
  #applied = '';
  #appliedScopes = '';
  #timer: NodeJS.Timeout | undefined;
  #events: DatapathEvents | undefined;

  private constructor(dp: SysmonDatapath, store: SyscallStore, net: NetIsolation, pinRoot: string) {
    this.#pinRoot = pinRoot;
    this.#dp = dp;
    this.#store = store;
    this.#net = net;
    this.#monitor = new SyscallMonitor(dp, store);
  }

  /**
   * Loads the syscall and network datapaths (adopting their pins; the
   * bandwidth one is loaded when a policy limits bandwidth). The network
   * hooks are attached where the first policy needs them (apply), and stay
   * where an earlier agent left them until then: counts are exact only
   * while the socket release hook stays attached.
   */
  static open(opts: { pinRoot: string; syscallsDb: string }): Isolation {
    assertSyscallArch();
    const dp = SysmonDatapath.open({ pinRoot: opts.pinRoot });
    let net: NetIsolation | undefined;
    try {
      net = NetIsolation.open({ pinRoot: opts.pinRoot });
      return new Isolation(dp, SyscallStore.open(opts.syscallsDb), net, opts.pinRoot);
    } catch (err) {
      net?.close();
      dp.close();
      throw err;
    }
  }

  /** Throws (naming the field) when the policy's network or bandwidth rules do not fit the datapaths; changes nothing. */
  check(doc: Policy, cgroups: CgroupTenants): void {
    compileNetIsolation(doc.isolation, netContainers(cgroups));
    compileBandwidth(shaperGroups(doc, cgroups));
  }

  /**
   * Monitors the containers the policy's isolation scopes govern, and
   * enforces their network rules (hooks attached at the cgroup covering the
   * tenants' globs while any scope has them). Returns what changed: nothing
   * when the same policy and containers come again (the agent calls it on
   * every cgroup rescan).
   */
  apply(doc: Policy, cgroups: CgroupTenants): { syscalls?: ApplyResult; network?: NetApplyResult & { root: string | null }; bandwidth?: ShaperApplyResult & { root: string | null } } {
    const network = this.#applyNet(doc, cgroups);
    const bandwidth = this.#applyShaper(doc, cgroups);
    const syscalls = this.#applySys(doc, cgroups);
    return { ...(syscalls ? { syscalls } : {}), ...(network ? { network } : {}), ...(bandwidth ? { bandwidth } : {}) };
  }

  /**
   * Bandwidth: the shaper is open (adopting an earlier agent's pins) while a
   * scope limits bandwidth, attached at the covering cgroup; limits change
   * in place. Without such a scope its programs and pins are removed, also
   * an earlier agent's.
   */
  #applyShaper(doc: Policy, cgroups: CgroupTenants): (ShaperApplyResult & { root: string | null }) | undefined {
    const root = shaperRoot(doc);
    const groups = shaperGroups(doc, cgroups);
    const key = stableJson([root ?? null, groups]);
    if (key === this.#shaperApplied) return undefined;
    if (this.#shaper && root !== this.#shaperRoot) {
      this.#shaper.remove(); // moving: the new attachment starts its groups afresh
      this.#shaper = undefined;
    }
    if (root === undefined) {
      if (this.#shaperApplied === '' && existsSync(join(this.#pinRoot, 'shaper-links'))) Shaper.open({ pinRoot: this.#pinRoot, cgroupRoot: cgroup2Root() }).remove();
      this.#shaperRoot = undefined;
      this.#shaperApplied = key;
      return { groups: 0, cgroups: 0, added: [], removed: [], root: null };
    }
    this.#shaper ??= Shaper.open({ pinRoot: this.#pinRoot, cgroupRoot: root });
    this.#shaperRoot = root;
    const r = this.#shaper.apply(groups);
    this.#shaperApplied = key;
    return { ...r, root };
  }

  #applyNet(doc: Policy, cgroups: CgroupTenants): (NetApplyResult & { root: string | null }) | undefined {
    const root = netRoot(doc);
    const containers = netContainers(cgroups);
    const key = stableJson([root ?? null, doc.isolation ?? [], containers]);
    if (key === this.#netApplied) return undefined;
    if (root === undefined) {
      if (this.#netRoot !== undefined || this.#netApplied === '') this.#net.detach(); // also hooks an earlier agent left
    } else if (root !== this.#netRoot) this.#net.attach(root);
    this.#netRoot = root;
    const r = this.#net.apply(doc.isolation, root === undefined ? [] : containers);
    this.#netApplied = key;
    return { ...r, root: root ?? null };
  }

  #applySys(doc: Policy, cgroups: CgroupTenants): ApplyResult | undefined {
    this.#scopes = doc.isolation ?? [];
    // The scopes' syscall policies go in before any cgroup entry points at them.
    const scopesKey = JSON.stringify(this.#scopes.map((s) => [s.syscalls ?? null, s.sensitivePaths ?? null]));
    if (scopesKey !== this.#appliedScopes) {
      this.#dp.setPaths(compileSysPaths(this.#scopes));
      this.#dp.setScopes(compileSysScopes(this.#scopes));
      this.#appliedScopes = scopesKey;
    }
    const monitored: MonitoredContainer[] = scopeContainers(this.#scopes, cgroups.containers)
      .map(({ container: c, scope }) => ({ id: c.id, runtime: c.runtime, tenant: c.tenant, cgroupId: c.cgroupId, cgroupPath: c.cgroupPath, below: c.below, scope }));
    const key = stableJson(monitored);
    if (key === this.#applied) return undefined;
    const r = this.#monitor.apply(monitored);
    this.#applied = key;
    return r;
  }

  /** Starts moving counts into the store every SYSCALL_SYNC_MS; errors go to onError. */
  start(onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => {
      try {
        this.#monitor.sync();
      } catch (err) {
        onError(err);
      }
    }, SYSCALL_SYNC_MS);
    this.#timer.unref();
  }

  /**
   * Reads the datapath's events (denied syscalls, execs) into the recorder.
   * Events wait in the pinned ring while no agent reads them.
   */
  async startEvents(opts: Omit<DatapathEventsOptions, 'ring' | 'stats' | 'describe' | 'onLost'> & {
    taiOffsetMs: number;
    /** A ring (named by its map id) was found full. */
    onLost?: (lost: bigint, total: bigint, ringId: number) => void;
  }): Promise<void> {
    const { taiOffsetMs, ...rest } = opts;
    this.#events = await DatapathEvents.start({
      ...rest,
      ...this.#dp.events(),
      describe: (r) => describeSysEvent(r, { container: (slot) => this.#monitor.owner(slot), scopes: () => this.#scopes }, taiOffsetMs),
      onLost: (lost, total) => opts.onLost?.(lost, total, this.#dp.events().ring.id),
    });
    this.#netEvents = await DatapathEvents.start({
      ...rest,
      ...this.#net.events(),
      describe: (r) => this.#net.describe(r, taiOffsetMs),
      onLost: (lost, total) => opts.onLost?.(lost, total, this.#net.events().ring.id),
    });
  }

  /** Stores the last counts; monitoring and enforcement go on in the kernel (pinned) for the next agent. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    try {
      await this.#events?.stop();
      await this.#netEvents?.stop();
      this.#monitor.sync();
    } finally {
      this.#store.close();
      this.#dp.close();
      this.#net.close();
      this.#shaper?.close(); // limits stay in force
    }
  }

  /** Every container on the host (the whole cgroup tree), with its tenant and governing scope. */
  containers(cgroups: CgroupTenants | undefined): ContainerView[] {
    const slots = new Set(this.#monitor.monitored().map((m) => m.id));
    const conns = new Map<string, GroupConnections>();
    for (const g of this.#netRoot === undefined ? [] : this.#net.connections()) for (const id of g.containers) conns.set(id, g);
    const bw = new Map<string, GroupStats>((this.#shaper?.stats() ?? []).map((g) => [g.key, g]));
    const bwOf = (c: Container, tenant: string | null): ContainerView['bandwidth'] => {
      const g = bw.get(`container:${c.id}`) ?? (tenant === null ? undefined : bw.get(`tenant:${tenant}`));
      return g ? { group: g.key, egress: { ...g.egress }, ingress: { ...g.ingress } } : null;
    };
    const found = discoverContainers();
    const tenantOf = (c: Container) => cgroups?.tenants.get(c.cgroupId) ?? null;
    const scoped = new Map(scopeContainers(this.#scopes, found.flatMap((c) => {
      const tenant = tenantOf(c);
      return tenant === null ? [] : [{ ...c, tenant }];
    })).map(({ container, scope }) => [container.cgroupId, scope]));
    return found.map((c) => {
      const scope = scoped.get(c.cgroupId);
      return {
        id: c.id, runtime: c.runtime, cgroup: c.cgroupPath, cgroupId: String(c.cgroupId), pod: c.pod ?? null, tenant: tenantOf(c),
        isolation: scope === undefined ? null : { index: scope, ...this.#scopes[scope]! },
        monitored: slots.has(c.id),
        connections: conns.has(c.id) ? { group: conns.get(c.id)!.group, open: conns.get(c.id)!.open, limit: conns.get(c.id)!.limit } : null,
        bandwidth: scope === undefined ? null : bwOf(c, tenantOf(c)),
      };
    });
  }

  /**
   * A container's id from its full id or a unique prefix, among the
   * containers monitored now and those the store has seen. Throws
   * (naming the candidates) when the prefix is ambiguous; undefined when
   * nothing matches.
   */
  resolve(idOrPrefix: string): string | undefined {
    const ids = new Set([...this.#monitor.monitored().map((m) => m.id), ...this.#store.containers().map((c) => c.id)]);
    const hits = [...ids].filter((id) => id.startsWith(idOrPrefix));
    if (hits.length > 1) throw new AmbiguousContainer(idOrPrefix, hits);
    return hits[0];
  }

  /** What a container was seen doing (since a time, ms), synced first; undefined for a container never monitored. */
  syscalls(id: string, since = 0): { container: { id: string; runtime: string; tenant: string; cgroup: string }; syscalls: SeenSyscall[] } | undefined {
    const seen = this.#monitor.seen(id, since);
    const known = this.#store.container(id);
    if (!seen || !known) return undefined;
    return { container: { id, runtime: known.runtime, tenant: known.tenant, cgroup: known.cgroupPath }, syscalls: seen };
  }
}

export class AmbiguousContainer extends Error {
  constructor(readonly prefix: string, readonly candidates: string[]) {
    super(`container "${prefix}" is ambiguous: ${candidates.map((c) => c.slice(0, 12)).join(', ')}`);
  }
}
