// Attach paths with real traffic: XDP (generic and native) and tcx on a veth
// pair between two tgk namespaces, cgroup_skb on a tgk cgroup, tracepoints,
// and the pinned-link life cycle tollgate's fail-static datapath relies on.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  AttachType, BpfLink, BpfObject, KernelError, LinkType, TypedMap, enterNetns, ensureTracefs, ifindexOf, struct, u32, u64, withNetns,
} from '../../src/kernel/index.js';
import { cgroupDir, fixture, kernelReady, ping, pinDir, vethPair } from './helpers.js';

const Counter = struct<{ packets: bigint; bytes: bigint }>(16, [
  ['packets', 0, u64],
  ['bytes', 8, u64],
]);
const SLOT = { XDP: 0, TC_INGRESS: 1, TC_EGRESS: 2, CGROUP_EGRESS: 3, TP: 4, XDP_A: 5, XDP_B: 6, RAW_TP: 7 };

function setup(t: TestContext, configure?: (o: BpfObject) => void) {
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  configure?.(obj);
  obj.load();
  const counts = new TypedMap(obj.map('kt_counts'), u32, Counter);
  const packets = (slot: number) => counts.getSum(slot)!.packets;
  return { obj, packets };
}

function links(t: TestContext): (l: BpfLink) => BpfLink {
  const all: BpfLink[] = [];
  t.after(() => all.forEach((l) => l.close()));
  return (l) => {
    all.push(l);
    return l;
  };
}

for (const mode of ['generic', 'native'] as const) {
  test(`XDP ${mode} on a veth counts real packets; closing the link detaches`, (t) => {
    if (!kernelReady(t, 'kernel_maps')) return;
    const { obj, packets } = setup(t);
    const net = vethPair(t);
    const keep = links(t);
    const ifindex = withNetns(net.nsA, () => ifindexOf(net.ifA));
    // link_create resolves the ifindex in the caller's namespace: attach from inside A
    const link = keep(withNetns(net.nsA, () => obj.program('kt_xdp_count').attachXdp(ifindex, mode)));
    const info = link.info;
    assert.equal(info.type, LinkType.XDP);
    assert.equal(info.typeName, 'xdp');
    assert.equal(info.ifindex, ifindex);
    assert.equal(info.progId, obj.program('kt_xdp_count').info().id);
    assert.equal(ping(net.nsB, net.addrA, 5), 5);
    const seen = packets(SLOT.XDP);
    assert.ok(seen >= 5n, `XDP saw ${seen} packets`);
    // one XDP program per mode and device: a second attach is refused
    assert.throws(
      () => withNetns(net.nsA, () => obj.program('kt_xdp_a').attachXdp(ifindex, mode)),
      (e: unknown) => e instanceof KernelError && (e.code === 'EBUSY' || e.code === 'EEXIST'),
    );
    link.close();
    const closed = packets(SLOT.XDP);
    assert.equal(ping(net.nsB, net.addrA, 3), 3);
    assert.equal(packets(SLOT.XDP), closed, 'no counting after the link closed');
  });
}

test('attach input errors are clear', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const { obj } = setup(t);
  assert.throws(() => obj.program('kt_xdp_count').attachXdp(0, 'generic'), /ifindex must be a positive integer/);
  assert.throws(() => obj.program('kt_xdp_count').attachXdp(1, 'fast' as never), /mode must be 'native' or 'generic'/);
  assert.throws(() => obj.program('kt_tc_ingress').attachTcx(1, 'sideways' as never), /direction must be 'ingress' or 'egress'/);
  assert.throws(() => obj.program('kt_xdp_count').attachXdp(999_999, 'generic'), (e: unknown) => e instanceof KernelError && /no interface with ifindex 999999/.test(e.message));
  assert.throws(() => obj.program('kt_tc_ingress').attachTcx(999_999, 'ingress'), (e: unknown) => e instanceof KernelError && /no interface with ifindex 999999/.test(e.message));
  assert.throws(() => obj.program('kt_cgroup_egress').attachCgroup('/nonexistent/tgk'), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
  assert.throws(() => ifindexOf('tgk-nope0'), (e: unknown) => e instanceof KernelError && /no interface 'tgk-nope0'/.test(e.message));
  assert.throws(() => enterNetns('tgk-no-such-ns'), (e: unknown) => e instanceof KernelError && /\/run\/netns\/tgk-no-such-ns/.test(e.message));
  assert.throws(() => obj.program('nope'), /has no program 'nope'/);
});

test('tcx ingress and egress links count both directions of a ping', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const { obj, packets } = setup(t);
  assert.equal(obj.program('kt_tc_ingress').expectedAttachType, AttachType.TCX_INGRESS);
  const net = vethPair(t);
  const keep = links(t);
  const leave = enterNetns(net.nsA);
  let ifindex: number;
  try {
    ifindex = ifindexOf(net.ifA);
    keep(obj.program('kt_tc_ingress').attachTcx(ifindex, 'ingress'));
    keep(obj.program('kt_tc_egress').attachTcx(ifindex, 'egress'));
  } finally {
    leave();
  }
  assert.throws(() => ifindexOf(net.ifA), KernelError, 'back in the original namespace');
  assert.equal(ping(net.nsB, net.addrA, 6), 6);
  assert.ok(packets(SLOT.TC_INGRESS) >= 6n, `ingress saw ${packets(SLOT.TC_INGRESS)}`);
  assert.ok(packets(SLOT.TC_EGRESS) >= 6n, `egress saw ${packets(SLOT.TC_EGRESS)}`);
  assert.equal(ping(net.nsB, net.addr6A, 3), 3, 'IPv6 too');
});

test('setAttachType: explicit expected attach type before load', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const { obj } = setup(t, (o) => {
    o.setAttachType('kt_tc_egress', 'TCX_EGRESS');
    assert.throws(() => o.setAttachType('kt_tc_egress', 'SIDEWAYS' as never), /unknown attach type 'SIDEWAYS'/);
  });
  assert.equal(obj.program('kt_tc_egress').expectedAttachType, AttachType.TCX_EGRESS);
  assert.throws(() => obj.setAttachType('kt_tc_egress', 'TCX_INGRESS'), /already loaded/);
});

test('cgroup_skb egress on a tgk cgroup counts packets of processes inside it', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const { obj, packets } = setup(t);
  const cg = cgroupDir(t);
  const keep = links(t);
  const link = keep(obj.program('kt_cgroup_egress').attachCgroup(cg));
  assert.equal(link.info.type, LinkType.CGROUP);
  assert.equal(link.info.attachType, AttachType.CGROUP_INET_EGRESS);
  // a shell that moves itself into the cgroup, then pings loopback
  const r = spawnSync('sh', ['-c', `echo $$ > ${join(cg, 'cgroup.procs')} && exec ping -n -q -c 4 -i 0.05 -W 1 127.0.0.1`], {
    timeout: 15_000,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(packets(SLOT.CGROUP_EGRESS) >= 4n, `cgroup egress saw ${packets(SLOT.CGROUP_EGRESS)}`);
  // our own traffic, outside the cgroup, is not counted
  const before = packets(SLOT.CGROUP_EGRESS);
  const outside = spawnSync('ping', ['-n', '-q', '-c', '2', '-i', '0.05', '-W', '1', '127.0.0.1'], { timeout: 15_000 });
  assert.equal(outside.status, 0);
  assert.equal(packets(SLOT.CGROUP_EGRESS), before);
});

test('tracepoint (tp/) and raw tracepoint (raw_tp/) attach by section name', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  try {
    ensureTracefs();
  } catch (e) {
    t.skip(`tracefs unavailable: ${(e as Error).message}`);
    return;
  }
  if (!existsSync('/sys/kernel/tracing/events/syscalls/sys_enter_getppid')) {
    t.skip('kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)');
    return;
  }
  const { obj, packets } = setup(t, (o) => {
    o.setConst('kt_pid', process.pid);
    o.setConst('kt_wide', 1);
  });
  const keep = links(t);
  const tp = keep(obj.program('kt_tp_getppid').attach());
  const raw = keep(obj.program('kt_raw_sys_enter').attach());
  assert.equal(tp.info.type, LinkType.PERF_EVENT);
  assert.equal(raw.info.type, LinkType.RAW_TRACEPOINT);
  for (let i = 0; i < 20; i++) void process.ppid; // getppid(2) each time
  assert.ok(packets(SLOT.TP) >= 20n, `tracepoint saw ${packets(SLOT.TP)} getppid calls`);
  assert.ok(packets(SLOT.RAW_TP) >= 20n, `raw_tp saw ${packets(SLOT.RAW_TP)} syscalls`);
  tp.close();
  const frozen = packets(SLOT.TP);
  for (let i = 0; i < 5; i++) void process.ppid;
  assert.equal(packets(SLOT.TP), frozen);
});

test('pinned link: survives its fd, adopted by openPinned, swapped with update, gone after unpin', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const { obj, packets } = setup(t);
  const net = vethPair(t);
  const dir = pinDir(t);
  const path = `${dir}/xdp_link`;
  const ifindex = withNetns(net.nsA, () => ifindexOf(net.ifA));
  const link = withNetns(net.nsA, () => obj.program('kt_xdp_a').attachXdp(ifindex, 'generic'));
  link.pin(path);
  assert.equal(link.pinPath, path);
  link.close();
  link.close(); // idempotent
  assert.ok(existsSync(path));
  assert.equal(ping(net.nsB, net.addrA, 4), 4);
  assert.ok(packets(SLOT.XDP_A) >= 4n, 'still attached with no fd open');

  const adopted = BpfLink.openPinned(path);
  t.after(() => adopted.close());
  assert.equal(adopted.info.type, LinkType.XDP);
  assert.equal(adopted.info.ifindex, ifindex);
  assert.equal(adopted.info.progId, obj.program('kt_xdp_a').info().id);
  adopted.update(obj.program('kt_xdp_b'));
  // (background IPv6 neighbour traffic may hit A up to the update: read after it)
  const a = packets(SLOT.XDP_A);
  assert.equal(adopted.info.progId, obj.program('kt_xdp_b').info().id);
  assert.equal(ping(net.nsB, net.addrA, 4), 4);
  assert.equal(packets(SLOT.XDP_A), a, 'old program no longer runs');
  const b = packets(SLOT.XDP_B);
  assert.ok(b >= 4n, 'new program runs');

  adopted.unpin();
  assert.equal(existsSync(path), false);
  assert.equal(ping(net.nsB, net.addrA, 2), 2);
  assert.ok(packets(SLOT.XDP_B) > b, 'attached while our fd is open');
  adopted.close();
  const final = packets(SLOT.XDP_B);
  assert.equal(ping(net.nsB, net.addrA, 2), 2);
  assert.equal(packets(SLOT.XDP_B), final, 'detached once unpinned and closed');
  assert.throws(() => BpfLink.openPinned(path), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
});
