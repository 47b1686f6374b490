import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TG_SYSCALL_NR, TG_SYSCALL_OTHER } from '../kernel/abi.gen.js';
import { seccompProfile } from './seccomp.js';
import { SECCOMP_ARCH, syscallName, syscallNames, syscallNumber } from './syscalls.js';

const nr = (name: string): number => syscallNumber(name)!;

test('the observed syscalls are allowed by name, sorted, each once; everything else gets EPERM on x86_64', () => {
  const seen = [nr('write'), nr('read'), nr('execve'), nr('read'), nr('exit_group'), nr('mmap')].map((n) => ({ nr: n, count: 3n }));
  assert.deepEqual(seccompProfile(seen), {
    profile: {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['execve', 'exit_group', 'mmap', 'read', 'write'], action: 'SCMP_ACT_ALLOW' }],
    },
    unnamed: [],
  });
  assert.equal(SECCOMP_ARCH, 'SCMP_ARCH_X86_64');
});

test('numbers without a name are left out of the profile and returned, ascending and once each', () => {
  const table: Array<[string, number]> = [
    ['TG_SYSCALL_OTHER (beyond the table)', TG_SYSCALL_OTHER],
    ['a number the table lacks (after the last)', 470],
    ['a gap in the x86_64 numbering (335-423 are unused)', 400],
    ['negative', -1],
    ['not an integer', 1.5],
  ];
  for (const [what, n] of table) {
    assert.equal(syscallName(n), undefined, `${what}: precondition, no name`);
    const { profile, unnamed } = seccompProfile([{ nr: nr('getpid') }, { nr: n }]);
    assert.deepEqual(unnamed, [n], what);
    assert.deepEqual(profile.syscalls, [{ names: ['getpid'], action: 'SCMP_ACT_ALLOW' }], what);
  }
  const { unnamed } = seccompProfile([TG_SYSCALL_OTHER, 470, 400, TG_SYSCALL_OTHER, 0].map((n) => ({ nr: n })));
  assert.deepEqual(unnamed, [400, 470, TG_SYSCALL_OTHER]);
});

test('nothing observed: a profile without rules (it denies everything)', () => {
  assert.deepEqual(seccompProfile([]), {
    profile: { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: ['SCMP_ARCH_X86_64'], syscalls: [] },
    unnamed: [],
  });
  assert.deepEqual(seccompProfile([{ nr: TG_SYSCALL_OTHER }]).profile.syscalls, []);
});

test('the profile is plain JSON, the input is not changed, and results do not share arrays', () => {
  const seen = Object.freeze([Object.freeze({ nr: nr('openat') }), Object.freeze({ nr: nr('close') })]);
  const a = seccompProfile(seen);
  assert.deepEqual(JSON.parse(JSON.stringify(a.profile)), a.profile);
  a.profile.syscalls[0]!.names.push('ptrace');
  a.profile.architectures.push('SCMP_ARCH_X86');
  assert.deepEqual(seccompProfile(seen).profile.syscalls[0]!.names, ['close', 'openat']);
  assert.deepEqual(seccompProfile(seen).profile.architectures, ['SCMP_ARCH_X86_64']);
});

test('property: every number below TG_SYSCALL_NR ends up allowed by its name or listed as unnamed, never both, nothing else', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: TG_SYSCALL_NR - 1 }), { maxLength: 600 }), (nrs) => {
      const { profile, unnamed } = seccompProfile(nrs.map((n) => ({ nr: n })));
      const allowed = profile.syscalls.flatMap((r) => r.names);
      assert.deepEqual(allowed, [...allowed].sort(), 'sorted');
      assert.equal(new Set(allowed).size, allowed.length, 'unique');
      const fromProfile = [...allowed.map((name) => syscallNumber(name)!), ...unnamed].sort((a, b) => a - b);
      assert.deepEqual(fromProfile, [...new Set(nrs)].sort((a, b) => a - b));
      for (const n of unnamed) assert.equal(syscallName(n), undefined);
    }),
  );
});

test('the whole table: every name round-trips and is allowed', () => {
  const all = syscallNames().map((name) => ({ nr: nr(name) }));
  const { profile, unnamed } = seccompProfile(all);
  assert.deepEqual(unnamed, []);
  assert.deepEqual(profile.syscalls[0]!.names, [...syscallNames()].sort());
});
