// Syscall monitoring in the kernel: the sys_enter program driven through
// BPF_PROG_TEST_RUN, then real processes in container cgroups counted by
// the attached tracepoint, into the store, across an agent restart.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root, RingBufReader, TypedMap, u32, u64 } from '../src/kernel/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { compileSysPaths, compileSysScopes } from '../src/sysmon/scopes.js';
import { TgSysEvent, TG_SEV_SENT, TG_SEV_SUPPRESSED, TG_SYS_ACT_KILLED, TG_SYS_ACT_REPORTED, TG_SYS_EVENTS_PER_SEC, TG_SYSCALL_OTHER, TG_SYSEV_DENIED, TG_SYSEV_FILE } from '../src/kernel/abi.gen.js';
import { SysmonDatapath } from '../src/sysmon/datapath.js';
import { SyscallMonitor, type MonitoredContainer } from '../src/sysmon/monitor.js';
import { SyscallStore } from '../src/sysmon/store.js';
import { syscallNumber } from '../src/sysmon/syscalls.js';
import { kernelReady, pinDir, tag } from './kernel/helpers.js';
import { removeCgroup } from '../lab/index.js';

const nr = (name: string): number => syscallNumber(name)!;

/** This process's own cgroup, mapped to ref (the program's test run sees the caller's cgroup). */
function own(ref: { slot: number; scope: number; lease: number }) {
  const cgroupPath = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
  const cgroupId = statSync(join(cgroup2Root(), cgroupPath), { bigint: true }).ino;
  return new Map([[cgroupId, { cgroup: { cgroupId, cgroupPath }, ref: { ...ref, pad: 0 } }]]);
}

/** raw_tp context: args[0] (struct pt_regs *, unused) and args[1], the syscall number. */
const ctx = (n: number): Buffer => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(n), 8);
  return b;
};

function open(t: TestContext, pins: string): SysmonDatapath {
  const dp = SysmonDatapath.open({ pinRoot: pins });
  t.after(() => dp.close());
  return dp;
}

test('sys_enter counts by number into the slot of the task\'s cgroup, and nothing for unmapped cgroups', (t) => {
  if (!kernelReady(t)) return;
  const dp = open(t, pinDir(t));
  const run = (n: number) => dp.program.testRun({ ctx: ctx(n) });
  dp.setCgroups(own({ slot: 3, scope: 1, lease: 7 }));
  const table: Array<[string, number, number, number]> = [
    // name, syscall number fed, index counted, expected count after the row
    ['getpid', nr('getpid'), nr('getpid'), 1],
    ['getpid again', nr('getpid'), nr('getpid'), 2],
    ['read (number 0)', 0, 0, 1],
    ['the last counted number', TG_SYSCALL_OTHER - 1, TG_SYSCALL_OTHER - 1, 1],
    ['a number beyond the table (x32 bit set)', 0x40000000 + 1, TG_SYSCALL_OTHER, 1],
    ['512', 512, TG_SYSCALL_OTHER, 2],
  ];
  for (const [name, fed, index, want] of table) {
    run(fed);
    assert.equal(dp.counts(3)[index], BigInt(want), name);
  }
  assert.equal(dp.counts(3).reduce((a, b) => a + b, 0n), 6n, 'nothing else counted');
  dp.setCgroups(new Map());
  run(nr('getpid'));
  assert.equal(dp.counts(3)[nr('getpid')], 2n, 'an unmapped cgroup is not counted');
  dp.zero(3);
  assert.equal(dp.counts(3).reduce((a, b) => a + b, 0n), 0n);
  assert.throws(() => dp.counts(0), /slot must be an integer in \[1, 1023\], got 0/);
});

test('a denied syscall is reported from the scope the production compiler wrote, within the per-CPU budget; others are not', async (t) => {
  if (!kernelReady(t)) return;
  const dp = open(t, pinDir(t));
  const ring = new RingBufReader(dp.events().ring);
  const records: Buffer[] = [];
  ring.on('records', (r) => records.push(...r));
  t.after(() => ring.stop());
  await ring.ready;
  // Audit mode only: in enforce mode the test run would SIGKILL this process.
  const scope = { tenant: 'acme', syscalls: { mode: 'audit' as const, deny: ['getpid', 'ptrace'] }, execs: { log: false, alert: [] } };
  dp.setScopes(compileSysScopes([{ tenant: 'acme', execs: { log: false, alert: [] } }, scope]));
  dp.setCgroups(own({ slot: 5, scope: 2, lease: 1 }));
  const stats = new TypedMap(dp.events().stats, u32, u64);
  const stat = (i: number) => stats.getSum(i) ?? 0n;
  for (const n of [nr('getppid'), nr('getpid'), nr('read'), nr('ptrace'), 600]) dp.program.testRun({ ctx: ctx(n) });
  for (let i = 0; i < 100 && records.length < 2; i++) await sleep(20);
  const got = records.map((r) => TgSysEvent.decode(r));
  assert.deepEqual(got.map((e) => [e.type, e.nr, e.action, e.slot, e.scope]), [
    [TG_SYSEV_DENIED, nr('getpid'), TG_SYS_ACT_REPORTED, 5, 2],
    [TG_SYSEV_DENIED, nr('ptrace'), TG_SYS_ACT_REPORTED, 5, 2],
  ]);
  assert.equal(got[0]!.pid, process.pid);
  assert.equal(got[0]!.ppid, process.ppid);
  assert.equal(Buffer.from(got[0]!.comm.map((c) => c & 0xff)).toString().replace(/\0.*$/s, ''), 'node');
  assert.equal(stat(TG_SEV_SENT), 2n);

  // scope 1 of the same policy denies nothing
  dp.setCgroups(own({ slot: 5, scope: 1, lease: 1 }));
  dp.program.testRun({ ctx: ctx(nr('getpid')) });
  assert.equal(stat(TG_SEV_SENT), 2n);

  // A loop on a denied syscall: TG_SYS_EVENTS_PER_SEC per CPU and second are sent, the rest counted.
  dp.setCgroups(own({ slot: 5, scope: 2, lease: 1 }));
  const runs = 2 * TG_SYS_EVENTS_PER_SEC + 500;
  for (let i = 0; i < runs; i++) dp.program.testRun({ ctx: ctx(nr('getpid')) });
  assert.equal(stat(TG_SEV_SENT) - 2n + stat(TG_SEV_SUPPRESSED), BigInt(runs));
  assert.ok(stat(TG_SEV_SUPPRESSED) >= 500n, `suppressed ${stat(TG_SEV_SUPPRESSED)}`);
  assert.equal(dp.counts(5)[nr('getpid')], BigInt(runs + 2), 'every one counted');
});

/** A docker-style container cgroup (`tgsm-<tag>/docker/<id>`) with a payload cgroup below it, removed at the end. */
function containerCgroup(t: TestContext, id: string): { container: string; payload: string; path: string } {
  const root = join(cgroup2Root(), `tgsm-${tag()}`);
  const container = join(root, 'docker', id);
  const payload = join(container, 'payload');
  mkdirSync(payload, { recursive: true });
  t.after(() => {
    for (const d of [payload, container, join(root, 'docker'), root]) removeCgroup(d);
  });
  return { container, payload, path: container.slice(cgroup2Root().length) };
}

/** `node -e code` run inside a cgroup (the shell moves itself there, then execs). */
function runIn(cgroup: string | undefined, code: string): void {
  const node = `exec ${JSON.stringify(process.execPath)} -e ${JSON.stringify(code)}`;
  const r = spawnSync('sh', ['-c', cgroup ? `echo $$ > ${join(cgroup, 'cgroup.procs')} && ${node}` : node], { timeout: 20_000, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

const GETPPID_1000 = 'for (let i = 0; i < 1000; i++) process.ppid';

test('a monitored container\'s processes are counted, in its payload cgroup too; others are not; a restarted agent goes on from the store', (t) => {
  if (!kernelReady(t)) return;
  const pins = pinDir(t);
  const dir = mkdtempSync(join(tmpdir(), 'tgsm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const id = 'a1'.repeat(32);
  const cg = containerCgroup(t, id);
  const ino = (p: string) => statSync(p, { bigint: true }).ino;
  const container: MonitoredContainer = {
    id, runtime: 'docker', tenant: 'acme', cgroupId: ino(cg.container), cgroupPath: cg.path, below: [{ cgroupId: ino(cg.payload), cgroupPath: cg.path + '/payload' }], scope: 0,
  };

  const start = () => {
    const dp = SysmonDatapath.open({ pinRoot: pins });
    const store = SyscallStore.open(join(dir, 'syscalls.db'));
    return { dp, store, monitor: new SyscallMonitor(dp, store), close: () => (store.close(), dp.close()) };
  };
  const a = start();
  assert.deepEqual(a.monitor.apply([container]), { monitored: 1, unassigned: [], adopted: false });
  assert.equal(a.dp.enabled, true);
  const getppid = () => a.monitor.seen(id)!.find((s) => s.nr === nr('getppid'))?.count ?? 0n;

  runIn(cg.container, GETPPID_1000);
  runIn(cg.payload, GETPPID_1000);
  assert.equal(getppid(), 2000n, 'the container and the cgroup below it');
  runIn(undefined, GETPPID_1000);
  assert.equal(getppid(), 2000n, 'a process outside the container is not counted');
  const seen = a.monitor.seen(id)!;
  for (const name of ['execve', 'mmap', 'openat', 'exit_group']) assert.ok(seen.some((s) => s.nr === nr(name)), `${name} seen`);
  const slot = a.monitor.monitored()[0]!.slot;
  a.close();

  // A restarted agent: the same pins and store; the pinned link and the slot are adopted.
  runIn(cg.container, GETPPID_1000); // while no agent runs: counted in the kernel
  const b = start();
  t.after(() => b.close());
  assert.deepEqual(b.monitor.apply([container]), { monitored: 1, unassigned: [], adopted: true });
  assert.equal(b.monitor.monitored()[0]!.slot, slot);
  assert.equal(b.monitor.seen(id)!.find((s) => s.nr === nr('getppid'))!.count, 3000n, 'nothing lost or counted twice across the restart');

  // The container goes away: its last counts are stored, the tracepoint is detached.
  runIn(cg.container, GETPPID_1000);
  assert.deepEqual(b.monitor.apply([]), { monitored: 0, unassigned: [] });
  assert.equal(b.dp.enabled, false);
  assert.equal(b.store.seen(id).find((s) => s.nr === nr('getppid'))!.count, 4000n);
  assert.equal(b.monitor.seen('ff'.repeat(32)), undefined);
});

test('a sensitive file is caught by the path the kernel resolved: relative, through symlinks, .., /proc/self/root and a directory fd; enforce kills before the descriptor returns', async (t) => {
  if (!kernelReady(t)) return;
  const dp = open(t, pinDir(t));
  t.after(() => dp.disable());
  const ring = new RingBufReader(dp.events().ring);
  const records: Buffer[] = [];
  ring.on('records', (r) => records.push(...r));
  t.after(() => ring.stop());
  await ring.ready;
  // On tmpfs at /dev/shm: the walk up crosses two mounts (/dev/shm, /dev) to the root.
  const dir = mkdtempSync('/dev/shm/tgsp-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'secret'));
  mkdirSync(join(dir, 'open'));
  for (const f of ['secret/key', 'open/file']) writeFileSync(join(dir, f), 'x');
  symlinkSync(join(dir, 'secret/key'), join(dir, 'link'));
  const key = join(dir, 'secret/key');
  const cg = containerCgroup(t, 'd5'.repeat(32));
  const policy = (mode: 'audit' | 'enforce') => [{ tenant: 'acme', execs: { log: false, alert: [] }, sensitivePaths: { mode, paths: [`${dir}/secret/`] } }];
  const apply = (mode: 'audit' | 'enforce') => {
    dp.setPaths(compileSysPaths(policy(mode)));
    dp.setScopes(compileSysScopes(policy(mode)));
  };
  apply('audit');
  dp.setCgroups(new Map([[statSync(cg.container, { bigint: true }).ino, { cgroup: { cgroupId: statSync(cg.container, { bigint: true }).ino, cgroupPath: cg.path }, ref: { slot: 1, scope: 1, lease: 1, pad: 0 } }]]));
  dp.enable();
  assert.equal(dp.checkingPaths, true, 'the open exits are attached with sensitive paths');
  const events = async (n: number) => {
    for (let i = 0; i < 100 && records.length < n; i++) await sleep(20);
    await sleep(100); // and nothing more
    return records.splice(0).map((r) => TgSysEvent.decode(r)).filter((e) => e.type === TG_SYSEV_FILE);
  };
  const text = (chars: number[]) => Buffer.from(chars.map((c) => c & 0xff)).toString().replace(/\0.*$/s, '');
  const python = (cgroup: string | undefined, code: string) => spawnSync('sh', ['-c', `${cgroup ? `echo $$ > ${join(cgroup, 'cgroup.procs')} && ` : ''}exec /usr/bin/python3 -c "${code}"`], { timeout: 20_000, encoding: 'utf8' });

  const OPENS = [
    `open('${key}').close()`, // absolute
    `os.chdir('${dir}'); open('secret/key').close()`, // relative to the working directory
    `open('${dir}/link').close()`, // a symbolic link to it
    `open('${dir}/open/../secret/key').close()`,
    `open('/proc/self/root${key}').close()`,
    `os.close(os.open('key', os.O_RDONLY, dir_fd=os.open('${dir}/secret', os.O_RDONLY)))`, // relative to a directory fd
  ];
  const NOT = [
    `open('${dir}/open/file').close()`, // another file
    `os.close(os.open('${dir}/secret', os.O_RDONLY))`, // the directory itself is not under '<dir>/secret/'
    `exec('try: open(\\'${dir}/secret/missing\\')\\nexcept FileNotFoundError: pass')`, // a failed open opened nothing
  ];
  const run = python(cg.container, ['import os', ...OPENS, ...NOT].join('; '));
  assert.equal(run.status, 0, run.stderr);
  const got = await events(OPENS.length);
  assert.deepEqual(got.map((e) => [text(e.path), e.nr, e.action, e.pid, e.scope]), OPENS.map(() => [key, nr('openat'), TG_SYS_ACT_REPORTED, run.pid, 1]));
  const outside = python(undefined, `open('${key}').close()`);
  assert.equal(outside.status, 0, outside.stderr);
  assert.deepEqual(await events(1), [], 'a process outside the container is not checked');

  // enforce: killed on the way out of openat, before it could read the file
  apply('enforce');
  const killed = python(cg.container, `import os; os.chdir('${dir}/open'); print('before', flush=True); f = open('../link'); print('after', f.read())`);
  assert.equal(killed.signal, 'SIGKILL', JSON.stringify(killed));
  assert.equal(killed.stdout, 'before\n');
  assert.deepEqual((await events(1)).map((e) => [text(e.path), e.action, e.pid]), [[key, TG_SYS_ACT_KILLED, killed.pid]]);

  // no sensitive paths left: the open exits go, monitoring stays
  dp.setPaths([]);
  assert.deepEqual([dp.checkingPaths, dp.enabled], [false, true]);
});
