import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkBpffs,
  checkCapabilities,
  checkCgroup2,
  checkKernel,
  checkTracefs,
  findCgroup2,
  kernelAtLeast,
  missingCaps,
  parseCapEff,
  parseKernelRelease,
  parseMounts,
} from './host.js';

const HYBRID = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
tracefs /sys/kernel/tracing tracefs rw,relatime 0 0
/dev/sda1 /mnt/with\\040space ext4 rw 0 0
`;

test('parseMounts reads fields and unescapes octal', () => {
  const m = parseMounts(HYBRID);
  assert.equal(m.length, 6);
  assert.deepEqual(m[2], { source: 'cgroup2', target: '/sys/fs/cgroup/unified', fstype: 'cgroup2', options: ['rw', 'relatime'] });
  assert.equal(m[5].target, '/mnt/with space');
});

test('findCgroup2 prefers /sys/fs/cgroup, then the hybrid unified mount', () => {
  assert.equal(findCgroup2(parseMounts(HYBRID)), '/sys/fs/cgroup/unified');
  assert.equal(findCgroup2(parseMounts('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\ncgroup2 /x cgroup2 rw 0 0')), '/sys/fs/cgroup');
  assert.equal(findCgroup2(parseMounts('cgroup2 /elsewhere cgroup2 rw 0 0')), '/elsewhere');
  assert.equal(findCgroup2(parseMounts('cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0')), undefined);
});

test('parseKernelRelease', () => {
  assert.deepEqual(parseKernelRelease('6.18.44-fc-v782'), { major: 6, minor: 18, patch: 44 });
  assert.deepEqual(parseKernelRelease('6.6'), { major: 6, minor: 6, patch: 0 });
  assert.throws(() => parseKernelRelease('linux'), /kernel release: cannot parse "linux"/);
  assert.ok(kernelAtLeast({ major: 6, minor: 6, patch: 0 }, 6, 6));
  assert.ok(!kernelAtLeast({ major: 6, minor: 5, patch: 9 }, 6, 6));
  assert.ok(kernelAtLeast({ major: 7, minor: 0, patch: 0 }, 6, 6));
});

test('checkKernel flags kernels without tcx', () => {
  assert.equal(checkKernel('6.18.44').ok, true);
  const old = checkKernel('5.15.0-91-generic');
  assert.equal(old.ok, false);
  assert.match(old.detail, /no tcx/);
  assert.equal(checkKernel('garbage').ok, false);
});

test('capabilities from CapEff', () => {
  const full = 'Name:\tx\nCapEff:\t000001fffeffffff\n';
  assert.equal(parseCapEff(full), 0x1fffeffffffn);
  assert.deepEqual(missingCaps(0x1fffeffffffn), []);
  // only CAP_NET_ADMIN (bit 12)
  assert.deepEqual(missingCaps(1n << 12n), ['CAP_SYS_ADMIN', 'CAP_PERFMON', 'CAP_BPF']);
  assert.throws(() => parseCapEff('Name: x\n'), /CapEff/);
  const c = checkCapabilities('CapEff:\t0000000000001000\n');
  assert.equal(c.ok, false);
  assert.match(c.detail, /missing CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF/);
  assert.ok(c.fix);
  assert.equal(checkCapabilities('nothing').ok, false);
});

test('mount checks name the fix', () => {
  const none = parseMounts('proc /proc proc rw 0 0');
  const b = checkBpffs(none);
  assert.equal(b.ok, false);
  assert.equal(b.fix, 'mount -t bpf bpf /sys/fs/bpf');
  assert.equal(checkBpffs(parseMounts(HYBRID)).ok, true);
  assert.equal(checkTracefs(none).ok, false);
  assert.match(checkTracefs(none).fix ?? '', /mount -t tracefs/);
  assert.equal(checkCgroup2(none).ok, false);
  const cg = checkCgroup2(parseMounts(HYBRID));
  assert.equal(cg.ok, true);
  assert.match(cg.detail, /\/sys\/fs\/cgroup\/unified.*hybrid/);
});
