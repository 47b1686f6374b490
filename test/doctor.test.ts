// `tollgate doctor` against the real kernel: on the reference host every
// required check passes, the JSON has the documented shape, a broken probe
// object fails checks without aborting the run, and nothing is left behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { cgroup2Root, formatDoctorTable, runDoctor, type DoctorReport } from '../src/doctor/index.js';
import { packageRoot } from '../src/paths.js';

const OBJECT = join(packageRoot, 'build', 'bpf', 'doctor.bpf.o');

/** The prerequisites scripts/bootstrap and scripts/build-bpf provide. */
function missingPrereq(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (!/ \/sys\/fs\/bpf bpf /.test(mounts)) return 'bpffs not mounted at /sys/fs/bpf (run scripts/bootstrap)';
  if (!/ \/sys\/kernel\/(debug\/)?tracing tracefs /.test(mounts)) return 'tracefs not mounted (run scripts/bootstrap)';
  if (!existsSync(OBJECT)) return `${OBJECT} missing (run bash scripts/build-bpf)`;
  return undefined;
}

function skipIfMissing(t: TestContext): boolean {
  const why = missingPrereq();
  if (why) t.skip(why);
  return why !== undefined;
}

/** Programs and links of the doctor probes still alive in the kernel (names are cut to 15 chars). */
function doctorKernelObjects(): { progs: number[]; links: number[] } {
  const progs = (JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as Array<{ id: number; name?: string }>)
    .filter((p) => p.name?.startsWith('doctor_'))
    .map((p) => p.id);
  const links = (JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ id: number; prog_id: number }>)
    .filter((l) => progs.includes(l.prog_id))
    .map((l) => l.id);
  return { progs, links };
}

async function assertNothingLeft(tag: string): Promise<void> {
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!netns.split('\n').some((l) => l.split(' ')[0] === `tgd-${tag}`), `netns tgd-${tag} left behind`);
  assert.ok(!existsSync(join(cgroup2Root(), `tgd-${tag}`)), `cgroup tgd-${tag} left behind`);
  // The kernel frees a program after an RCU grace period once its last
  // reference is gone, so a closed one can still be listed for a moment; a
  // leaked one stays.
  let left = doctorKernelObjects();
  for (let i = 0; i < 30 && (left.progs.length > 0 || left.links.length > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = doctorKernelObjects();
  }
  assert.deepEqual(left, { progs: [], links: [] }, 'doctor programs or links left in the kernel (3 s after the run)');
}

const REQUIRED = [
  'btf', 'bpffs', 'tracefs', 'cgroup2', 'capabilities', 'libbpf',
  'prog.xdp.generic', 'prog.tcx.ingress', 'prog.tcx.egress', 'prog.cgroup_skb.ingress', 'prog.cgroup_skb.egress',
  'prog.tracepoint', 'prog.tp_btf', 'prog.raw_tp', 'test_run.xdp', 'test_run.tc',
  'map.ringbuf', 'map.percpu_array', 'map.lpm_trie',
];
const INFORMATIONAL = [
  'kernel', 'bpf_stats', 'qdisc.htb', 'qdisc.tbf', 'qdisc.fq', 'prog.xdp.native',
  'prog.cgroup.connect4', 'prog.cgroup.connect6', 'prog.cgroup.sock_create', 'prog.cgroup.sendmsg4', 'prog.sockops',
  'helper.send_signal', 'kfunc.conntrack', 'helper.syncookie', 'prog.fentry', 'prog.lsm', 'cleanup',
];

test('on the reference host every required check passes, fast, leaving nothing behind', async (t) => {
  if (skipIfMissing(t)) return;
  const tag = `a${process.pid}`;
  t.after(() => assertNothingLeft(tag));
  const t0 = performance.now();
  const report = await runDoctor({ tag });
  const ms = performance.now() - t0;
  const failed = report.checks.filter((c) => c.required && !c.ok);
  assert.deepEqual(failed, [], formatDoctorTable(report));
  assert.equal(report.ok, true);
  assert.ok(ms < 5000, `doctor took ${ms.toFixed(0)} ms`);

  const byName = new Map(report.checks.map((c) => [c.name, c]));
  assert.equal(byName.size, report.checks.length, 'check names are unique');
  assert.deepEqual([...byName.keys()].sort(), [...REQUIRED, ...INFORMATIONAL].sort());
  for (const n of REQUIRED) assert.equal(byName.get(n)!.required, true, `${n} is required`);
  for (const n of INFORMATIONAL) assert.equal(byName.get(n)!.required, false, `${n} is informational`);

  // facts of the reference host (shared/REFERENCE-HOST.md)
  assert.match(byName.get('cgroup2')!.detail, /\/sys\/fs\/cgroup\/unified/);
  assert.match(byName.get('libbpf')!.detail, /^libbpf 1\.1/);
  assert.equal(byName.get('qdisc.htb')!.ok, true);
  assert.equal(byName.get('qdisc.tbf')!.ok, true);
  assert.equal(byName.get('qdisc.fq')!.ok, false);
  for (const n of ['prog.fentry', 'prog.lsm']) {
    assert.equal(byName.get(n)!.ok, false, `${n} must be refused here`);
    assert.match(byName.get(n)!.detail, /EPERM/);
  }
  for (const n of ['helper.send_signal', 'kfunc.conntrack', 'helper.syncookie', 'prog.cgroup.connect4', 'prog.sockops'])
    assert.equal(byName.get(n)!.ok, true, `${n}: ${byName.get(n)!.detail}`);
  // tracing probes prove they ran, not just attached
  for (const n of ['prog.tracepoint', 'prog.tp_btf', 'prog.raw_tp']) assert.match(byName.get(n)!.detail, /runs \(\d+ hits?\)/);
  assert.match(byName.get('cleanup')!.detail, new RegExp(`removed netns tgd-${tag} and cgroup`));

  const table = formatDoctorTable(report).split('\n');
  assert.equal(table.length, report.checks.length + 2);
  assert.match(table.at(-1)!, /All required checks passed/);
});

test('the JSON report has name, ok, required and detail on every check', async (t) => {
  if (skipIfMissing(t)) return;
  const tag = `j${process.pid}`;
  t.after(() => assertNothingLeft(tag));
  const json = JSON.parse(JSON.stringify(await runDoctor({ tag }))) as DoctorReport;
  assert.deepEqual(Object.keys(json).sort(), ['checks', 'ok']);
  assert.equal(typeof json.ok, 'boolean');
  assert.ok(Array.isArray(json.checks) && json.checks.length > 30);
  for (const c of json.checks) {
    assert.equal(typeof c.name, 'string');
    assert.equal(typeof c.ok, 'boolean', c.name);
    assert.equal(typeof c.required, 'boolean', c.name);
    assert.equal(typeof c.detail, 'string', c.name);
    assert.ok(c.detail.length > 0, c.name);
    assert.ok(c.fix === undefined || typeof c.fix === 'string', c.name);
    for (const k of Object.keys(c)) assert.ok(['name', 'ok', 'required', 'detail', 'fix'].includes(k), `${c.name}: unexpected key ${k}`);
  }
});

test('a broken probe object fails every probe with a reason, without aborting, and still cleans up', async (t) => {
  if (skipIfMissing(t)) return;
  const tag = `b${process.pid}`;
  t.after(() => assertNothingLeft(tag));
  const report = await runDoctor({ tag, objectPath: '/nonexistent/doctor.bpf.o' });
  assert.equal(report.ok, false);
  const byName = new Map(report.checks.map((c) => [c.name, c]));
  assert.equal(byName.get('bpf_object')?.ok, false);
  assert.equal(byName.get('bpf_object')?.fix, 'bash scripts/build-bpf');
  for (const n of ['prog.xdp.generic', 'prog.tcx.egress', 'map.lpm_trie', 'prog.raw_tp']) {
    assert.equal(byName.get(n)?.ok, false, n);
    assert.match(byName.get(n)!.detail, /open failed: .*ENOENT/, n);
  }
  // host checks and the sandbox-backed qdisc probes still ran
  assert.equal(byName.get('bpffs')?.ok, true);
  assert.equal(byName.get('qdisc.htb')?.ok, true);
  assert.equal(byName.get('cleanup')?.ok, true);
  assert.match(formatDoctorTable(report).split('\n').at(-1)!, /required check\(s\) failed \(.*bpf_object.*\); fix with: bash scripts\/build-bpf/);
});

test('runDoctor rejects a bad tag, naming the field', async () => {
  await assert.rejects(runDoctor({ tag: 'no spaces' }), /runDoctor: tag must be/);
  await assert.rejects(runDoctor({ tag: 'x'.repeat(11) }), /tag/);
});
