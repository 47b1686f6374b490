// Bringing a lab up, down and reporting what exists. Everything goes through
// iproute2 and the file system; the state file only speeds things up and
// records pids: `labDown` finds a crashed lab's leftovers by name without it.

import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  computeTopology,
  endpoints,
  isLabNetns,
  relativeCgroup,
  validatePrefix,
  CGROUP_DIR,
  LAB_TENANT_V4,
  LAB_TENANT_V6,
  type EndpointNode,
  type Topology,
} from './topology.js';
import { cgroupOfPid, findCgroup2Mount, httpFromNetns, ip, pidAlive, spawnInNetns, sysctlInNetns } from './exec.js';

export const DEFAULT_STATE_DIR = '/run/tollgate';
export const BPF_PIN_ROOT = '/sys/fs/bpf/tollgate';
const STATE_VERSION = 1;

export interface LabUpOptions {
  prefix?: string;
  tenants?: number;
  servicePort?: number;
  /** Where lab-<prefix>.json and service logs live; default /run/tollgate. */
  stateDir?: string;
  /** Bound for each service to answer /health; default 20 s. */
  serviceTimeoutMs?: number;
}

export interface ServiceRecord {
  node: string;
  netns: string;
  cgroup: string;
  pid: number;
  port: number;
  log: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  createdAt: string;
  /** 'starting' while labUp runs, 'up' once every service answered. */
  phase: 'starting' | 'up';
  topology: Topology;
  services: ServiceRecord[];
}

export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}

export function stateFilePath(prefix: string, stateDir = DEFAULT_STATE_DIR): string {
  return join(stateDir, `lab-${validatePrefix(prefix)}.json`);
}

function logDirPath(prefix: string, stateDir: string): string {
  return join(stateDir, `lab-${prefix}.d`);
}

export function pinDirPath(prefix: string): string {
  return join(BPF_PIN_ROOT, `lab-${validatePrefix(prefix)}`);
}

/** The service script, next to this module in the source tree; from dist/lab it is ../../lab. */
export function serviceScriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'service.mjs'), join(here, '..', '..', 'lab', 'service.mjs')]) {
    if (existsSync(p)) return p;
  }
  throw new LabError(`lab/service.mjs not found next to ${here}`);
}

function writeState(file: string, state: LabState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, file);
}

/** The lab's state file, or null when absent or unreadable (a crash may leave either). */
export function readLabState(prefix: string, stateDir = DEFAULT_STATE_DIR): LabState | null {
  try {
    const s = JSON.parse(readFileSync(stateFilePath(prefix, stateDir), 'utf8')) as LabState;
    if (s?.version !== STATE_VERSION || s.prefix !== prefix || !s.topology || !Array.isArray(s.services)) return null;
    return s;
  } catch {
    return null;
  }
}

/** Topology of a running lab (for tests and benchmarks that attach to it). */
export function loadTopology(prefix: string, stateDir = DEFAULT_STATE_DIR): Topology {
  const s = readLabState(prefix, stateDir);
  if (!s || s.phase !== 'up') throw new LabError(`lab ${prefix} is not up (no complete state in ${stateFilePath(prefix, stateDir)})`);
  return s.topology;
}

async function listNetns(): Promise<string[]> {
  const r = await ip(['-j', 'netns', 'list'], { timeoutMs: 10_000 });
  const text = r.stdout.trim();
  if (!text) return [];
  return (JSON.parse(text) as { name: string }[]).map((n) => n.name);
}

async function labNetnsPresent(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => isLabNetns(prefix, n));
}

/** Runs fn over items with at most `limit` in flight. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function ipBatch(netns: string, lines: string[]): Promise<void> {
  await ip(['-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 30_000 });
}

const NS_SYSCTLS: Record<string, number> = {
  // Addresses usable at once and no router solicitations: nothing but the
  // traffic a test sends crosses the lab (see also the permanent neighbours).
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
  'net.ipv6.conf.all.accept_ra': 0,
  'net.ipv6.conf.default.accept_ra': 0,
  // MLD reports for the groups an interface joins go out at link-up, and by
  // default again up to 1 s later; 0 sends all of them at once during labUp
  // instead of into the first measurement.
  'net.ipv6.conf.all.mldv1_unsolicited_report_interval': 0,
  'net.ipv6.conf.default.mldv1_unsolicited_report_interval': 0,
  'net.ipv6.conf.all.mldv2_unsolicited_report_interval': 0,
  'net.ipv6.conf.default.mldv2_unsolicited_report_interval': 0,
};

async function setupNetns(topology: Topology): Promise<void> {
  const all = [topology.hostNetns, ...endpoints(topology).map((n) => n.netns)];
  for (const ns of all) await ip(['netns', 'add', ns], { timeoutMs: 10_000 });
  await eachLimited(all, 8, async (ns) => {
    const extra: Record<string, number> =
      ns === topology.hostNetns
        ? {
            'net.ipv4.ip_forward': 1,
            'net.ipv6.conf.all.forwarding': 1,
            // Spoofed-source floods from the attacker must reach the tenants'
            // veths (that is what DDoS tests measure); replies die here because
            // the host has no route out of the lab.
            'net.ipv4.conf.all.rp_filter': 0,
            'net.ipv4.conf.default.rp_filter': 0,
          }
        : {};
    await sysctlInNetns(ns, { ...NS_SYSCTLS, ...extra });
    await ip(['-n', ns, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
  });
}

async function setupLinks(topology: Topology): Promise<void> {
  const nodes = endpoints(topology);
  const host = topology.hostNetns;
  // Both veth ends are created in lab namespaces at once: no interface ever
  // appears in the machine's root namespace.
  await ipBatch(
    host,
    nodes.map(
      (n) => `link add ${n.hostIface} address ${n.gatewayMac} type veth peer name eth0 address ${n.mac} netns ${n.netns}`,
    ),
  );
  const hostLines: string[] = [];
  for (const n of nodes) {
    hostLines.push(
      `addr add ${n.gatewayIpv4}/${n.prefixLenV4} dev ${n.hostIface}`,
      `addr add ${n.gatewayIpv6}/${n.prefixLenV6} dev ${n.hostIface} nodad`,
      `link set ${n.hostIface} up`,
      // Permanent neighbours: no ARP/NDP exchanges interleave with measured traffic.
      `neigh replace ${n.ipv4} lladdr ${n.mac} dev ${n.hostIface} nud permanent`,
      `neigh replace ${n.ipv6} lladdr ${n.mac} dev ${n.hostIface} nud permanent`,
    );
  }
  await ipBatch(host, hostLines);
  await eachLimited(nodes, 8, async (n) => {
    await ipBatch(n.netns, [
      `addr add ${n.ipv4}/${n.prefixLenV4} dev eth0`,
      `addr add ${n.ipv6}/${n.prefixLenV6} dev eth0 nodad`,
      'link set eth0 up',
      `neigh replace ${n.gatewayIpv4} lladdr ${n.gatewayMac} dev eth0 nud permanent`,
      `neigh replace ${n.gatewayIpv6} lladdr ${n.gatewayMac} dev eth0 nud permanent`,
      `route add default via ${n.gatewayIpv4} dev eth0`,
      `route add ::/0 via ${n.gatewayIpv6} dev eth0`,
      // The honeypot answers for every tenant address ("AnyIP"): traffic the firewall redirects to it
      // completes under the address the attacker used (docs/security.md, "Honeypot").
      ...(n.role === 'honeypot' ? [`route add local ${LAB_TENANT_V4} dev lo`, `route add local ${LAB_TENANT_V6} dev lo`] : []),
    ]);
  });
  // operstate follows carrier through the kernel's linkwatch, which may lag
  // by up to a second: wait for both ends.
  await waitLinksUp(host, nodes.map((n) => n.hostIface), 10_000);
  await eachLimited(nodes, 8, (n) => waitLinksUp(n.netns, ['eth0'], 10_000));
}

async function waitLinksUp(netns: string, ifaces: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let down: string[] = ifaces;
  while (Date.now() < deadline) {
    const r = await ip(['-n', netns, '-j', 'link', 'show'], { timeoutMs: 10_000 });
    const links = JSON.parse(r.stdout) as { ifname: string; operstate: string }[];
    const up = new Set(links.filter((l) => l.operstate === 'UP').map((l) => l.ifname));
    down = ifaces.filter((i) => !up.has(i));
    if (down.length === 0) return;
    await sleep(20);
  }
  throw new LabError(`links not up after ${timeoutMs} ms in ${netns}: ${down.join(', ')}`);
}

async function startService(topology: Topology, n: EndpointNode, logDir: string): Promise<ServiceRecord> {
  if (!n.cgroup) throw new LabError(`node ${n.name} has no cgroup for its service`);
  mkdirSync(n.cgroup, { recursive: true });
  const log = join(logDir, `${n.name}.log`);
  const fd = openSync(log, 'a');
  try {
    const child = spawnInNetns(
      n.netns,
      process.execPath,
      [serviceScriptPath(), '--port', String(topology.servicePort), '--name', n.name],
      { cgroup: n.cgroup, detached: true, stdio: ['ignore', fd, fd] },
    );
    if (child.pid === undefined) throw new LabError(`could not spawn the service of ${n.name}`);
    child.unref();
    return { node: n.name, netns: n.netns, cgroup: n.cgroup, pid: child.pid, port: topology.servicePort, log };
  } finally {
    closeSync(fd);
  }
}

/** Polls /health from the host netns until the service answers from the right cgroup. */
async function waitService(topology: Topology, n: EndpointNode, svc: ServiceRecord, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const expectCgroup = relativeCgroup(topology, n.cgroup!);
  let last = '';
  while (Date.now() < deadline) {
    if (!pidAlive(svc.pid)) {
      let tail = '';
      try {
        tail = readFileSync(svc.log, 'utf8').slice(-1000);
      } catch {}
      throw new LabError(`service of ${n.name} (pid ${svc.pid}) exited during start: ${tail.trim()}`);
    }
    try {
      const r = await httpFromNetns(topology.hostNetns, `http://${n.ipv4}:${svc.port}/health`, { timeoutMs: 1000, keepBody: true });
      if (r.status === 200) {
        const h = JSON.parse(r.body) as { pid: number; cgroup: string | null };
        if (h.pid !== svc.pid || h.cgroup !== expectCgroup) {
          throw new LabError(`service of ${n.name} answers as pid ${h.pid} in cgroup ${h.cgroup}, expected pid ${svc.pid} in ${expectCgroup}`);
        }
        return;
      }
      last = `HTTP ${r.status}`;
    } catch (e) {
      if (e instanceof LabError) throw e;
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new LabError(`service of ${n.name} did not answer /health within ${timeoutMs} ms (${last})`);
}

/**
 * Creates the lab: host netns, one netns + veth per node, cgroups, and the
 * HTTP service on every tenant and the honeypot. Resolves once every service
 * answers; on any failure removes what it made and rethrows.
 */
export async function labUp(opts: LabUpOptions = {}): Promise<Topology> {
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const topology = computeTopology({
    prefix: opts.prefix,
    tenants: opts.tenants,
    servicePort: opts.servicePort,
    cgroupMount: findCgroup2Mount(),
  });
  const { prefix } = topology;
  const present = await labNetnsPresent(prefix);
  const file = stateFilePath(prefix, stateDir);
  if (present.length > 0 || existsSync(file) || existsSync(topology.cgroupRoot)) {
    throw new LabError(
      `lab ${prefix} already exists (netns: ${present.join(', ') || 'none'}; state ${existsSync(file) ? file : 'none'}); run "tollgate lab down ${prefix}" first`,
    );
  }

  const state: LabState = {
    version: STATE_VERSION,
    prefix,
    createdAt: new Date().toISOString(),
    phase: 'starting',
    topology,
    services: [],
  };
  try {
    writeState(file, state);
    await setupNetns(topology);
    await setupLinks(topology);
    const logDir = logDirPath(prefix, stateDir);
    mkdirSync(logDir, { recursive: true });
    mkdirSync(topology.cgroupRoot, { recursive: true });
    const served = endpoints(topology).filter((n) => n.cgroup !== null);
    for (const n of served) {
      state.services.push(await startService(topology, n, logDir));
      writeState(file, state);
    }
    const timeoutMs = opts.serviceTimeoutMs ?? 20_000;
    await Promise.all(served.map((n, i) => waitService(topology, n, state.services[i], timeoutMs)));
    state.phase = 'up';
    writeState(file, state);
    return topology;
  } catch (err) {
    try {
      await labDown(prefix, { stateDir });
    } catch (downErr) {
      throw new AggregateError([err, downErr], `lab up ${prefix} failed and so did the cleanup: ${(err as Error).message}`);
    }
    throw err;
  }
}

export interface LabDownReport {
  prefix: string;
  killedPids: number[];
  removedNetns: string[];
  removedCgroups: string[];
  removedPins: boolean;
  removedStateFile: boolean;
}

/**
 * Removes a cgroup directory whose processes may still be exiting: EBUSY is
 * retried every 20 ms, at most `tries` times; one already gone is fine.
 */
export function removeCgroup(dir: string, tries = 50): void {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= tries) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** Directories of a cgroup subtree, deepest first (rmdir order). */
function cgroupSubtree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name));
    out.push(dir);
  };
  if (existsSync(root)) walk(root);
  return out;
}

function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function killCgroupTree(root: string): Promise<number[]> {
  const dirs = cgroupSubtree(root);
  if (dirs.length === 0) return [];
  const killed = new Set<number>();
  const deadline = Date.now() + 10_000;
  // Kill again on every pass: a process that was still on its way into the
  // cgroup (a service spawned just before labDown) joins after a one-shot kill.
  for (;;) {
    const pids = dirs.flatMap(cgroupPids);
    if (pids.length === 0) break;
    if (Date.now() > deadline) throw new LabError(`processes in ${root} survived SIGKILL for 10 s: ${pids.join(', ')}`);
    pids.forEach((p) => killed.add(p));
    if (existsSync(join(root, 'cgroup.kill'))) writeFileSync(join(root, 'cgroup.kill'), '1');
    else {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }
    await sleep(20);
  }
  return [...killed];
}

async function killNetnsProcesses(netns: string): Promise<number[]> {
  const list = async () =>
    (await ip(['netns', 'pids', netns], { timeoutMs: 10_000, allowFail: true })).stdout
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((p) => p !== process.pid);
  const pids = await list();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  const deadline = Date.now() + 10_000;
  while ((await list()).some(pidAlive)) {
    if (Date.now() > deadline) throw new LabError(`processes in netns ${netns} survived SIGKILL for 10 s`);
    await sleep(20);
  }
  return pids;
}

/**
 * Removes every trace of lab `prefix`: processes (cgroup.kill, then anything
 * left in its namespaces), namespaces (veths go with them), cgroups bottom-up,
 * the pin directory and the state file. Works without a state file; idempotent.
 */
export async function labDown(prefix: string, opts: { stateDir?: string } = {}): Promise<LabDownReport> {
  validatePrefix(prefix);
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const state = readLabState(prefix, stateDir);
  const report: LabDownReport = {
    prefix,
    killedPids: [],
    removedNetns: [],
    removedCgroups: [],
    removedPins: false,
    removedStateFile: false,
  };

  const mounts = new Set<string>();
  if (state) mounts.add(state.topology.cgroupMount);
  try {
    mounts.add(findCgroup2Mount());
  } catch {}
  // Services recorded at spawn may not have reached their cgroup or netns yet.
  // Only if the pid still runs a lab service: a stale state file's pid may
  // belong to someone else by now.
  for (const svc of state?.services ?? []) {
    try {
      const cmd = readFileSync(`/proc/${svc.pid}/cmdline`, 'utf8');
      if (!cmd.includes('service.mjs') && !cmd.includes('tollgate-lab-spawn')) continue;
      process.kill(svc.pid, 'SIGKILL');
      report.killedPids.push(svc.pid);
    } catch {}
  }
  const cgroupRoots = [...mounts].map((m) => `${m === '/' ? '' : m}/${CGROUP_DIR}/${prefix}`);
  for (const root of cgroupRoots) report.killedPids.push(...(await killCgroupTree(root)));

  // Nothing may keep a namespace (and its veths) alive once its name is gone:
  // kill whatever still runs in it (traffic drivers, strays) first.
  const netns = await labNetnsPresent(prefix);
  const killed = await Promise.all(netns.map(killNetnsProcesses));
  report.killedPids.push(...killed.flat());
  await Promise.all(netns.map((ns) => ip(['netns', 'delete', ns], { timeoutMs: 10_000 })));
  report.removedNetns.push(...netns);

  for (const root of cgroupRoots) {
    for (const dir of cgroupSubtree(root)) {
      rmdirSync(dir);
      report.removedCgroups.push(dir);
    }
    try {
      rmdirSync(dirname(root)); // the shared tollgate-lab dir, once no lab uses it
    } catch {}
  }

  const pins = pinDirPath(prefix);
  if (existsSync(pins)) {
    rmSync(pins, { recursive: true, force: true });
    report.removedPins = true;
  }
  rmSync(logDirPath(prefix, stateDir), { recursive: true, force: true });
  const file = stateFilePath(prefix, stateDir);
  if (existsSync(file)) {
    rmSync(file, { force: true });
    report.removedStateFile = true;
  }
  report.killedPids = [...new Set(report.killedPids)];
  return report;
}

export interface ServiceStatus {
  node: string;
  pid: number;
  alive: boolean;
  /** The pid is alive and inside the node's cgroup. */
  inCgroup: boolean;
  /** Answered /health (only with { probe: true }). */
  healthy?: boolean;
}

export interface LabStatus {
  prefix: string;
  /** State file present and complete, every namespace present, every service alive in its cgroup. */
  up: boolean;
  stateFile: string | null;
  phase: LabState['phase'] | null;
  topology: Topology | null;
  netns: string[];
  missingNetns: string[];
  cgroups: string[];
  services: ServiceStatus[];
  pinsDir: string | null;
}

export async function labStatus(prefix: string, opts: { stateDir?: string; probe?: boolean } = {}): Promise<LabStatus> {
  validatePrefix(prefix);
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const state = readLabState(prefix, stateDir);
  const netns = await labNetnsPresent(prefix);
  const expected = state ? [state.topology.hostNetns, ...endpoints(state.topology).map((n) => n.netns)] : [];
  const missingNetns = expected.filter((n) => !netns.includes(n));
  let mount: string | null = state?.topology.cgroupMount ?? null;
  if (!mount) {
    try {
      mount = findCgroup2Mount();
    } catch {}
  }
  const cgroups = mount ? cgroupSubtree(`${mount === '/' ? '' : mount}/${CGROUP_DIR}/${prefix}`).reverse() : [];
  const services: ServiceStatus[] = [];
  for (const s of state?.services ?? []) {
    const alive = pidAlive(s.pid);
    const rel = mount && s.cgroup.startsWith(mount) ? s.cgroup.slice(mount === '/' ? 0 : mount.length) : null;
    const st: ServiceStatus = { node: s.node, pid: s.pid, alive, inCgroup: alive && cgroupOfPid(s.pid) === rel };
    if (opts.probe && state) {
      const node = endpoints(state.topology).find((n) => n.name === s.node);
      try {
        st.healthy =
          !!node && (await httpFromNetns(state.topology.hostNetns, `http://${node.ipv4}:${s.port}/health`, { timeoutMs: 2000 })).status === 200;
      } catch {
        st.healthy = false;
      }
    }
    services.push(st);
  }
  const pins = pinDirPath(prefix);
  return {
    prefix,
    up:
      state !== null &&
      state.phase === 'up' &&
      missingNetns.length === 0 &&
      services.every((s) => s.inCgroup && s.healthy !== false),
    stateFile: state ? stateFilePath(prefix, stateDir) : null,
    phase: state?.phase ?? null,
    topology: state?.topology ?? null,
    netns,
    missingNetns,
    cgroups,
    services,
    pinsDir: existsSync(pins) ? pins : null,
  };
}
