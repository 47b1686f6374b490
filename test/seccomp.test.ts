// Seccomp profiles generated from what a container was seen doing, applied:
// a workload in a docker-style container cgroup is learned by the syscall
// monitor, a profile is generated from the store, and the workload runs
// under it (libseccomp, lab/seccomp-exec.py): its normal run works as it
// did, and a syscall it never made fails with EPERM while the rest works.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root, removePins } from '../src/kernel/index.js';
import { SysmonDatapath } from '../src/sysmon/datapath.js';
import { SyscallMonitor, type MonitoredContainer } from '../src/sysmon/monitor.js';
import { seccompProfile, type SeccompProfile } from '../src/sysmon/seccomp.js';
import { SyscallStore } from '../src/sysmon/store.js';
import { syscallName } from '../src/sysmon/syscalls.js';
import { kernelReady, tag } from './kernel/helpers.js';
import { removeCgroup } from '../lab/index.js';

/** Debian's Python: python3-seccomp is a module of it (a python3 earlier on PATH, e.g. pyenv's, lacks it). */
const PYTHON = '/usr/bin/python3';
const SECCOMP_EXEC = join(import.meta.dirname, '../lab/seccomp-exec.py');

/**
 * The workload: copies a file upper-cased and reports on it; with the
 * argument `getpriority` it also calls getpriority(2), which its normal
 * run never does, and prints the errno name it fails with.
 */
const WORKLOAD = `
import errno, os, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, 'rb') as f:
    data = f.read()
with open(dst, 'wb') as f:
    f.write(data.upper())
print('read', len(data), 'bytes,', data.count(b'\\n'), 'lines')
if sys.argv[3:] == ['getpriority']:
    try:
        os.getpriority(os.PRIO_PROCESS, 0)
        print('getpriority ok')
    except OSError as e:
        print('getpriority', errno.errorcode[e.errno])
with open(dst, 'rb') as f:
    print('wrote', f.read().splitlines()[0].decode())
`;

/** A profile that allows everything: the learning run goes through the same applier (filter built, loaded, exec) as the enforcing one. */
const ALLOW_ALL: SeccompProfile = { defaultAction: 'SCMP_ACT_ALLOW', architectures: [], syscalls: [] };

/** A docker-style container cgroup (`tgsc-<tag>/docker/<id>`), removed at the end, also on failure. */
function containerCgroup(t: TestContext, id: string): { dir: string; path: string } {
  const root = join(cgroup2Root(), `tgsc-${tag()}`);
  const dir = join(root, 'docker', id);
  mkdirSync(dir, { recursive: true });
  t.after(() => {
    for (const d of [dir, join(root, 'docker'), root]) removeCgroup(d); // a process may still be exiting
  });
  return { dir, path: dir.slice(cgroup2Root().length) };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The workload under a profile: `seccomp-exec.py PROFILE -- python3 -c WORKLOAD ...`, moved into the
 * cgroup first when one is given (the shell moves itself, then execs the applier).
 */
function runWorkload(cgroup: string | undefined, profile: string, args: string[]): Run {
  const command = [PYTHON, SECCOMP_EXEC, profile, '--', PYTHON, '-I', '-B', '-c', WORKLOAD, ...args];
  const script = cgroup ? 'echo $$ > "$1" && shift && exec "$@"' : 'shift && exec "$@"';
  const r = spawnSync('sh', ['-c', script, 'sh', cgroup ? join(cgroup, 'cgroup.procs') : '-', ...command], {
    timeout: 20_000,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a workload runs under the seccomp profile generated from what it was seen doing; a syscall it never made fails with EPERM', (t) => {
  if (!kernelReady(t)) return;
  assert.ok(existsSync(PYTHON), `${PYTHON} missing: bash scripts/bootstrap installs python3-seccomp (and Debian's python3)`);

  const pins = `/sys/fs/bpf/tgsc-${tag()}`;
  mkdirSync(pins, { recursive: true });
  t.after(() => removePins(pins));
  const dir = mkdtempSync(join(tmpdir(), 'tgsc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const id = 'c5'.repeat(32);
  const cg = containerCgroup(t, id);

  const dp = SysmonDatapath.open({ pinRoot: pins });
  const store = SyscallStore.open(join(dir, 'syscalls.db'));
  t.after(() => (store.close(), dp.close()));
  const monitor = new SyscallMonitor(dp, store);
  const container: MonitoredContainer = {
    id, runtime: 'docker', tenant: 'acme', cgroupId: statSync(cg.dir, { bigint: true }).ino, cgroupPath: cg.path, below: [], scope: 0,
  };
  assert.deepEqual(monitor.apply([container]), { monitored: 1, unassigned: [], adopted: false });

  const input = join(dir, 'input.txt');
  writeFileSync(input, 'tollgate seccomp\nsecond line\n');
  const args = [input, join(dir, 'output.txt')];
  const allowAll = join(dir, 'allow-all.json');
  writeFileSync(allowAll, JSON.stringify(ALLOW_ALL));
  const expected = 'read 29 bytes, 2 lines\nwrote TOLLGATE SECCOMP\n';

  // Learning: the normal run, a few times, under the allow-everything profile.
  for (let i = 0; i < 3; i++) {
    const r = runWorkload(cg.dir, allowAll, args);
    assert.deepEqual(r, { status: 0, stdout: expected, stderr: '' }, `learning run ${i + 1}`);
  }
  const seen = monitor.seen(id);
  assert.ok(seen, 'the container was seen');
  const { profile, unnamed } = seccompProfile(seen);
  assert.deepEqual(unnamed, [], 'every observed number has a name');
  assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(profile.defaultErrnoRet, 1);
  assert.deepEqual(profile.architectures, ['SCMP_ARCH_X86_64']);
  const allowed = profile.syscalls.flatMap((r) => r.names);
  for (const name of ['execve', 'openat', 'read', 'write', 'exit_group', 'seccomp']) assert.ok(allowed.includes(name), `${name} observed and allowed`);
  assert.ok(!allowed.includes('getpriority'), 'the normal run never calls getpriority');
  t.diagnostic(`profile allows ${allowed.length} syscalls: ${allowed.join(' ')}`);
  const generated = join(dir, 'profile.json');
  writeFileSync(generated, JSON.stringify(profile, null, 2));

  // Control: outside the container and without a filter getpriority works.
  assert.deepEqual(runWorkload(undefined, allowAll, [...args, 'getpriority']), {
    status: 0, stdout: `read 29 bytes, 2 lines\ngetpriority ok\nwrote TOLLGATE SECCOMP\n`, stderr: '',
  });

  // Enforcing: the normal run works as it did while learning.
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(runWorkload(cg.dir, generated, args), { status: 0, stdout: expected, stderr: '' }, `enforcing run ${i + 1}`);
  }
  // The syscall it never made fails with EPERM; everything else still works.
  assert.deepEqual(runWorkload(cg.dir, generated, [...args, 'getpriority']), {
    status: 0, stdout: `read 29 bytes, 2 lines\ngetpriority EPERM\nwrote TOLLGATE SECCOMP\n`, stderr: '',
  });

  // Seccomp decides before the sys_enter tracepoint: a denied syscall is not counted, so the
  // monitor never learns (and a profile regenerated now never allows) what the profile denied.
  const after = monitor.seen(id)!;
  assert.deepEqual(after.filter((s) => syscallName(s.nr) === 'getpriority'), [], 'the denied getpriority is not counted');
  assert.deepEqual(seccompProfile(after).profile, profile, 'the enforcing runs made no syscall beyond the profile');

  assert.deepEqual(monitor.apply([]), { monitored: 0, unassigned: [] });
  assert.equal(dp.enabled, false);
});
