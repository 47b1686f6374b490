// Isolation benchmarks, side by side in one run: the syscall-monitoring
// overhead. A tiny C workload (compiled here) makes N syscalls of one kind
// (raw getpid; 1-byte writes to /dev/null; 64-byte pwrites to a tmpfs file;
// 64-byte UDP datagrams sent on loopback; open and close a file) in a
// docker-style container cgroup the bench creates, in configurations
// interleaved round by round:
//  - off: no sys_enter tracepoint attached;
//  - monitored: SyscallMonitor.apply([the container]): the tracepoint is
//    attached and the workload's syscalls are counted (checked: the slot
//    grows by at least N for that syscall, or the bench fails);
//  - monitored, sensitive paths: the same with a sensitive path in the
//    container's scope (/etc/shadow, which the workloads never open), so
//    the open syscalls' exits are attached and resolve every opened file;
//  - attached, other cgroup: the tracepoint attached, the workload in a
//    cgroup outside the monitored container (what every other process on
//    the host pays while anything is monitored);
//  - empty program (floor): a raw_tp/sys_enter program that returns 0,
//    compiled here, instead of ours: what any sys_enter program costs on
//    this host, the least a tracepoint-based monitor can pay;
//  - empty per-syscall tracepoints: empty programs on the tracepoints of
//    the four syscalls the workloads make (tp/syscalls/sys_enter_*), the
//    other way to see syscalls: what counting through them would cost at
//    least (counting needs one on every syscall).
// Each workload runs bare and under the seccomp profile tollgate generated
// for it (learned by the monitor first, applied with libseccomp through
// lab/seccomp-exec.py): containers run under a profile (docker's default,
// Kubernetes' RuntimeDefault, or a generated one), and a task with a
// seccomp filter already enters every syscall through the kernel's slow
// path that a tracepoint forces on everyone else.
// Reported as medians of ns per syscall, overhead in ns and as a ratio to
// off (target <= 10%); then the program's own ns per run (bpf_stats).
// Absolute times on a shared VM are noise; the ratios are the result.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BPFFS, BpfObject, type BpfLink, cgroup2Root, enableBpfStats, ensureBpffs, progInfo, removePins } from '../src/kernel/index.js';
import { SysmonDatapath } from '../src/sysmon/datapath.js';
import { SyscallMonitor, type MonitoredContainer } from '../src/sysmon/monitor.js';
import { SyscallStore } from '../src/sysmon/store.js';
import type { IsolationScope } from '../src/policy/index.js';
import { compileSysPaths, compileSysScopes } from '../src/sysmon/scopes.js';
import { seccompProfile } from '../src/sysmon/seccomp.js';
import { syscallNumber } from '../src/sysmon/syscalls.js';
import { bandwidthBench } from './isolation-bandwidth.js';

const WORKLOAD_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
/* workload getpid|write|file|udp|open N [FILE]: prints ns per iteration (CLOCK_MONOTONIC).
   write: 1 byte to /dev/null; file: 64 bytes at offset 0 of FILE (tmpfs) with pwrite;
   open: open FILE read-only and close it;
   udp: a 64-byte datagram to a socket of its own on 127.0.0.1 (sendto; once its receive
   queue is full the datagrams are dropped there, after the whole send path). */
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int wr = strcmp(argv[1], "write") == 0, file = strcmp(argv[1], "file") == 0, udp = strcmp(argv[1], "udp") == 0, op = strcmp(argv[1], "open") == 0;
  long n = atol(argv[2]);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t tolen = sizeof(to);
  char c[64] = { 0 };
  int fd;
  if (udp) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    if (rx < 0 || bind(rx, (struct sockaddr *)&to, tolen) || getsockname(rx, (struct sockaddr *)&to, &tolen)) return 2;
    fd = socket(AF_INET, SOCK_DGRAM, 0);
  } else fd = file || op ? open(argc > 3 ? argv[3] : "", O_WRONLY | O_CREAT, 0600) : open("/dev/null", O_WRONLY);
  struct timespec a, b;
  if (fd < 0 || n <= 0) return 2;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    if (wr) { if (write(fd, c, 1) != 1) return 1; }
    else if (file) { if (pwrite(fd, c, sizeof(c), 0) != sizeof(c)) return 1; }
    else if (udp) { if (sendto(fd, c, sizeof(c), 0, (struct sockaddr *)&to, tolen) != sizeof(c)) return 1; }
    else if (op) { int o = open(argv[3], O_RDONLY); if (o < 0 || close(o)) return 1; }
    else syscall(SYS_getpid); /* the raw syscall, never a cached wrapper */
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.3f\n", ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n);
  return 0;
}
`;

/**
 * The floor: the same hook with nothing in it, and the per-syscall
 * tracepoints of the workloads' syscalls with nothing in them (no includes,
 * so it builds anywhere clang does).
 */
const FLOOR_C = `#define SEC(n) __attribute__((section(n), used))
char LICENSE[] SEC("license") = "GPL";
SEC("raw_tp/sys_enter") int tg_sys_enter_floor(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_getpid") int tg_tp_getpid(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_write") int tg_tp_write(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_pwrite64") int tg_tp_pwrite64(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_sendto") int tg_tp_sendto(void *ctx) { return 0; }
`;
const PER_SYSCALL_PROGS = ['tg_tp_getpid', 'tg_tp_write', 'tg_tp_pwrite64', 'tg_tp_sendto'];

const WORKLOADS = ['getpid', 'write', 'file', 'udp', 'open'] as const;
type Workload = (typeof WORKLOADS)[number];
const DESCRIBED: Record<Workload, string> = {
  getpid: 'getpid (raw syscall)', write: 'write 1 byte to /dev/null', file: 'pwrite 64 bytes to a tmpfs file', udp: 'sendto 64-byte UDP datagram on loopback',
  open: 'open and close a tmpfs file',
};
/** A workload bare, or under the seccomp profile generated for it. */
interface Case {
  name: string;
  w: Workload;
  seccomp: boolean;
}
const CASES: Case[] = [false, true].flatMap((seccomp) => WORKLOADS.map((w) => ({ name: seccomp ? `${w}, seccomp` : w, w, seccomp })));
const CONFIGS = ['off', 'monitored', 'monitored, sensitive paths', 'attached, other cgroup', 'empty program (floor)', 'empty per-syscall tracepoints'] as const;
type Config = (typeof CONFIGS)[number];
const TARGET = 0.1;
/** The container's scope: nothing denied, and for 'monitored, sensitive paths' a path none of the workloads opens. */
const scopes = (paths: boolean): IsolationScope[] => [{ tenant: 'bench', execs: { log: false, alert: [] }, ...(paths ? { sensitivePaths: { mode: 'audit', paths: ['/etc/shadow'] } } : {}) }];
/** The file workload's target: on tmpfs, so the write costs memory copies, not a disk. */
const SHM_FILE = `/dev/shm/tgbi-${process.pid}`;
/** Debian's Python, whose python3-seccomp module lab/seccomp-exec.py needs (scripts/bootstrap installs it). */
const PYTHON = '/usr/bin/python3';
const SECCOMP_EXEC = join(import.meta.dirname, '../lab/seccomp-exec.py');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (r: number): string => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)}%`;

/**
 * Runs the workload inside a cgroup (the shell moves itself there, then
 * execs it, through seccomp-exec.py under a profile when given); its ns per
 * syscall.
 */
function runWorkload(bin: string, cgroup: string, w: Workload, n: number, profile?: string): number {
  const run = `${profile ? `${PYTHON} ${SECCOMP_EXEC} ${profile} -- ` : ''}${bin} ${w} ${n} ${SHM_FILE}`;
  const r = spawnSync('sh', ['-c', `echo $$ > ${join(cgroup, 'cgroup.procs')} && exec ${run}`], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`workload ${w} ${n} in ${cgroup}${profile ? ' under its seccomp profile' : ''} failed (status ${r.status}, ${r.signal ?? 'no signal'}): ${r.stderr}`);
  const ns = Number(r.stdout.trim());
  if (!(ns > 0)) throw new Error(`workload ${w} printed '${r.stdout}'`);
  return ns;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '300' }, part: { type: 'string', default: 'all' } } });
  if (!['all', 'syscalls', 'bandwidth'].includes(values.part)) throw new RangeError(`--part must be all, syscalls or bandwidth, got ${values.part}`);
  if (values.part !== 'bandwidth') await syscallBench(values.rounds, values.ms);
  if (values.part !== 'syscalls') await bandwidthBench(); // bench/isolation-bandwidth.ts: bandwidth limits, ours against tc htb/tbf
}

async function syscallBench(roundsFlag: string, msFlag: string): Promise<void> {
  const rounds = Number(roundsFlag);
  const ms = Number(msFlag);
  for (const [name, v, lo, hi] of [['--rounds', rounds, 1, 100], ['--ms', ms, 50, 5000]] as const) {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer from ${lo} to ${hi}, got ${v}`);
  }
  if (spawnSync(PYTHON, ['-c', 'import seccomp']).status !== 0) throw new Error(`${PYTHON} with python3-seccomp is needed to apply seccomp profiles: bash scripts/bootstrap installs it`);
  const prefix = `tgbi-${process.pid}`;
  const nr: Record<Workload, number> = { getpid: syscallNumber('getpid')!, write: syscallNumber('write')!, file: syscallNumber('pwrite64')!, udp: syscallNumber('sendto')!, open: syscallNumber('openat')! };

  ensureBpffs();
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const pinRoot = join(BPFFS, prefix);
  const cgRoot = join(cgroup2Root(), prefix);
  const id = randomBytes(32).toString('hex');
  const container = join(cgRoot, 'docker', id);
  const other = join(cgRoot, 'other');
  const cgDirs = [container, join(cgRoot, 'docker'), other, cgRoot]; // removal order
  let dp: SysmonDatapath | undefined;
  let store: SyscallStore | undefined;
  let monitor: SyscallMonitor | undefined;
  let disableStats: (() => void) | undefined;
  let floorObj: BpfObject | undefined;
  let floorLinks: BpfLink[] = [];
  const detachFloor = (): void => {
    for (const l of floorLinks.splice(0)) l.close();
  };
  try {
    const bin = join(dir, 'workload');
    writeFileSync(`${bin}.c`, WORKLOAD_C);
    writeFileSync(join(dir, 'floor.bpf.c'), FLOOR_C);
    for (const args of [['-O2', '-o', bin, `${bin}.c`], ['-O2', '-target', 'bpf', '-c', '-o', join(dir, 'floor.bpf.o'), join(dir, 'floor.bpf.c')]]) {
      const built = spawnSync('clang', args, { encoding: 'utf8' });
      if (built.status !== 0) throw new Error(`clang ${args.join(' ')} failed: ${built.error?.message ?? built.stderr}`);
    }
    floorObj = BpfObject.open(join(dir, 'floor.bpf.o'));
    floorObj.load();
    const floor = floorObj;
    const floorProg = floor.program('tg_sys_enter_floor');
    mkdirSync(container, { recursive: true });
    mkdirSync(other, { recursive: true });

    dp = SysmonDatapath.open({ pinRoot });
    store = SyscallStore.open(join(dir, 'syscalls.db'));
    monitor = new SyscallMonitor(dp, store);
    const c: MonitoredContainer = {
      id, runtime: 'docker', tenant: 'bench', cgroupId: statSync(container, { bigint: true }).ino, cgroupPath: container.slice(cgroup2Root().length), below: [], scope: 0,
    };
    const mon = monitor;
    const datapath = dp;
    const ours = (cfg: Config): boolean => cfg.startsWith('monitored') || cfg === 'attached, other cgroup';
    const setup = (cfg: Config): void => {
      const paths = cfg === 'monitored, sensitive paths';
      datapath.setPaths(compileSysPaths(scopes(paths)));
      datapath.setScopes(compileSysScopes(scopes(paths)));
      mon.apply(ours(cfg) ? [c] : []);
      if (datapath.checkingPaths !== paths) throw new Error(`the open exits ${paths ? 'detached' : 'attached'} in configuration '${cfg}'`);
      if (datapath.enabled !== ours(cfg)) throw new Error(`our tracepoint ${datapath.enabled ? 'attached' : 'detached'} in configuration '${cfg}'`);
      detachFloor();
      if (cfg === 'empty program (floor)') floorLinks = [floorProg.attach()];
      if (cfg === 'empty per-syscall tracepoints') floorLinks = PER_SYSCALL_PROGS.map((p) => floor.program(p).attach());
    };
    const slot = (): number => mon.monitored()[0]!.slot;

    // The seccomp profile, as a user gets it: every workload learned once in the container
    // (through the applier with a profile allowing everything, so its own syscalls are seen
    // too), then `tollgate seccomp generate`'s profile from the store.
    const allowAll = join(dir, 'allow-all.json');
    const profile = join(dir, 'profile.json');
    writeFileSync(allowAll, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [] }));
    setup('monitored');
    for (const w of WORKLOADS) runWorkload(bin, container, w, 1000, allowAll);
    const learned = seccompProfile(mon.seen(id) ?? []);
    writeFileSync(profile, JSON.stringify(learned.profile));
    const allowed = learned.profile.syscalls.reduce((k, r) => k + r.names.length, 0);
    const run = (k: Case, cgroup: string, n: number): number => runWorkload(bin, cgroup, k.w, n, k.seccomp ? profile : undefined);

    // Iterations: what takes about --ms with monitoring off (after a warm-up run).
    setup('off');
    const iters = {} as Record<Workload, number>;
    for (const w of WORKLOADS) {
      runWorkload(bin, container, w, 100_000);
      const ns = runWorkload(bin, container, w, 200_000);
      iters[w] = Math.min(50_000_000, Math.max(100_000, Math.round((ms * 1e6) / ns / 1000) * 1000));
    }
    console.log(`isolation bench: syscall-monitoring overhead; workload in ${c.cgroupPath} (or ${other.slice(cgroup2Root().length)} for the other cgroup), ${rounds} rounds, configuration order rotating`);
    console.log(`  iterations per run: ${WORKLOADS.map((w) => `${DESCRIBED[w]} ${iters[w]}`).join(', ')} (about ${ms} ms each with monitoring off)`);
    console.log(`  ', seccomp': the same under the profile generated for the workloads after learning them (${allowed} syscalls allowed, the rest EPERM), applied with libseccomp`);

    const ns = Object.fromEntries(CASES.map((k) => [k.name, Object.fromEntries(CONFIGS.map((cfg) => [cfg, [] as number[]]))])) as Record<string, Record<Config, number[]>>;
    for (let i = 0; i < rounds; i++) {
      const order = CONFIGS.map((_, k) => CONFIGS[(i + k) % CONFIGS.length]!);
      for (const cfg of order) {
        setup(cfg);
        for (const k of CASES) {
          const before = ours(cfg) ? datapath.counts(slot())[nr[k.w]]! : 0n;
          ns[k.name]![cfg].push(run(k, cfg === 'attached, other cgroup' ? other : container, iters[k.w]));
          if (!ours(cfg)) continue;
          const counted = datapath.counts(slot())[nr[k.w]]! - before;
          if (cfg.startsWith('monitored') && counted < BigInt(iters[k.w])) throw new Error(`monitoring did not happen: ${counted} ${k.w} syscalls counted for the container, the workload made ${iters[k.w]}`);
          if (!cfg.startsWith('monitored') && counted !== 0n) throw new Error(`${counted} ${k.w} syscalls counted for the container while the workload ran outside it`);
        }
      }
      console.log(`  round ${i + 1}: ${CASES.map((k) => `${k.name} ${CONFIGS.map((cfg) => ns[k.name]![cfg][i]!.toFixed(1)).join('/')}`).join('; ')} ns (${CONFIGS.join('/')})`);
    }

    // The program's own cost per run (bpf_stats adds its own timing to every run, so measured apart).
    const progNs = {} as Record<Workload, Partial<Record<Config, number>>>;
    const STATS = ['monitored', 'attached, other cgroup', 'empty program (floor)'] as const;
    disableStats = enableBpfStats();
    for (const w of WORKLOADS) {
      progNs[w] = {};
      for (const cfg of STATS) {
        setup(cfg);
        const fd = cfg === 'empty program (floor)' ? floorProg.fd : datapath.program.fd;
        const s0 = progInfo(fd);
        runWorkload(bin, cfg === 'attached, other cgroup' ? other : container, w, iters[w]);
        const s1 = progInfo(fd);
        progNs[w][cfg] = Number(s1.runTimeNs - s0.runTimeNs) / Number(s1.runCnt - s0.runCnt);
      }
    }
    disableStats();
    setup('off'); // records the container's last counts in the store
    const stored = store.seen(id).find((s) => s.nr === nr.getpid)?.count ?? 0n;
    const minStored = BigInt(iters.getpid * (2 * rounds + 1)); // bare and under the profile each round, and the stats run
    if (stored < minStored) throw new Error(`the store holds ${stored} getpid syscalls for the container, at least ${minStored} were made while monitored`);

    console.log('');
    console.log('| workload | configuration | ns/syscall (median) | overhead ns | ratio to off (median) | paired median ratio | within 10% |');
    console.log('|---|---|---|---|---|---|---|');
    for (const k of CASES) {
      const off = median(ns[k.name]!.off);
      for (const cfg of CONFIGS) {
        const m = median(ns[k.name]![cfg]);
        if (cfg === 'off') {
          console.log(`| ${k.name} | ${cfg} | ${m.toFixed(1)} | | | | |`);
          continue;
        }
        const ratio = m / off;
        const paired = median(ns[k.name]![cfg].map((v, j) => v / ns[k.name]!.off[j]!));
        console.log(`| ${k.name} | ${cfg} | ${m.toFixed(1)} | ${(m - off).toFixed(1)} | **${ratio.toFixed(3)}** (${pct(ratio)}) | ${paired.toFixed(3)} | ${ratio <= 1 + TARGET ? 'yes' : '**no**'} |`);
      }
    }
    const beyond = (k: Case, cfg: Config) => (median(ns[k.name]![cfg]) - median(ns[k.name]!['empty program (floor)'])).toFixed(1);
    console.log(`\nours beyond the empty program (medians): ${CASES.map((k) => `${k.name} ${beyond(k, 'monitored')} ns monitored, ${beyond(k, 'attached, other cgroup')} ns other cgroup`).join('; ')}`);
    console.log('');
    console.log(`| program ns per run (bpf_stats, one run each, bare; includes the stats' own timing) | ${WORKLOADS.join(' | ')} |`);
    console.log(`|---|${WORKLOADS.map(() => '---|').join('')}`);
    const label: Record<(typeof STATS)[number], string> = {
      monitored: 'tg_sys_enter, monitored: counted', 'attached, other cgroup': 'tg_sys_enter, other cgroup: lookup miss', 'empty program (floor)': 'empty program (floor)',
    };
    for (const cfg of STATS) console.log(`| ${label[cfg]} | ${WORKLOADS.map((w) => progNs[w][cfg]!.toFixed(1)).join(' | ')} |`);
    console.log(`\ncorrectness: every monitored run counted >= N of its syscall in the container's slot, no run outside it counted; every run under the generated profile worked; the store holds ${stored} getpid syscalls for the container`);
  } finally {
    // Every step, even when an earlier one failed; nothing of the bench's is left behind.
    const steps: Array<() => void> = [
      () => disableStats?.(),
      () => monitor?.apply([]),
      () => dp?.disable(),
      () => detachFloor(),
      () => floorObj?.close(),
      () => store?.close(),
      () => dp?.close(),
      () => removePins(pinRoot),
      ...cgDirs.map((d) => () => rmdirIfPresent(d)),
      () => rmSync(dir, { recursive: true, force: true }),
      () => rmSync(SHM_FILE, { force: true }),
    ];
    for (const step of steps) {
      try {
        step();
      } catch (e) {
        console.error(`cleanup: ${(e as Error).message}`);
      }
    }
  }
}

function rmdirIfPresent(d: string): void {
  try {
    rmdirSync(d);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
