// BPF feature probes: for every program type and attach mode tollgate uses,
// load a tiny program from build/bpf/doctor.bpf.o and attach or run it for
// real. Each probe gets its own object instance with every other program's
// autoload off, because libbpf fails a whole object when one program in it
// is rejected; a failed probe becomes a failed check, never an exception.
import { readFileSync } from 'node:fs';
import {
  BpfObject,
  BpfLink,
  KernelError,
  VerifierError,
  enterNetns,
  errnoName,
  ifindexOf,
  setLibbpfLogger,
  type BpfProgram,
} from '../kernel/index.js';
import type { DoctorCheck } from './report.js';

/** Where probes attach; absent when the sandbox could not be made (then those probes fail with that reason). */
export interface ProbeEnv {
  objectPath: string;
  netns?: { name: string; dev: string } | { error: string };
  cgroup?: { path: string } | { error: string };
}

interface Probe {
  name: string;
  program: string;
  required: boolean;
  /** Loaded in the kernel: what to do with it; returns the success detail. */
  exercise: (p: BpfProgram, obj: BpfObject, env: ProbeEnv) => string;
  /** For probes expected to be refused here (fentry, LSM): wording of the outcome. */
  unused?: string;
}

// enum xdp_action / TC_ACT_* as the probes return them.
const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

/** Ethernet + IPv4 + UDP, 198.18.0.1:1000 -> 198.18.0.2:2000, 64 bytes. */
export function ipv4UdpFrame(): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from('020000000002020000000001', 'hex').copy(f, 0); // dst, src MAC
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f.writeUInt8(0x45, ip);
  f.writeUInt16BE(64 - 14, ip + 2);
  f.writeUInt8(64, ip + 8); // ttl
  f.writeUInt8(17, ip + 9); // udp
  Buffer.from([198, 18, 0, 1, 198, 18, 0, 2]).copy(f, ip + 12);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += f.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, ip + 10);
  const udp = ip + 20;
  f.writeUInt16BE(1000, udp);
  f.writeUInt16BE(2000, udp + 2);
  f.writeUInt16BE(64 - udp, udp + 4);
  return f;
}

/** An Ethernet ARP request (not IPv4), 60 bytes. */
export function arpFrame(): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  Buffer.from('020000000001', 'hex').copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  return f;
}

function expectRetval(p: BpfProgram, data: Buffer, want: number, label: string): void {
  const r = p.testRun({ data });
  if (r.retval >>> 0 !== want >>> 0) throw new Error(`test run on ${label}: retval ${r.retval}, expected ${want}`);
}

function inNetns<T>(env: ProbeEnv, fn: (ifindex: number) => T): T {
  const ns = env.netns;
  if (!ns) throw new Error('no sandbox network namespace');
  if ('error' in ns) throw new Error(`sandbox network namespace: ${ns.error}`);
  const leave = enterNetns(ns.name);
  try {
    return fn(ifindexOf(ns.dev));
  } finally {
    leave();
  }
}

function cgroupPath(env: ProbeEnv): string {
  const cg = env.cgroup;
  if (!cg) throw new Error('no sandbox cgroup');
  if ('error' in cg) throw new Error(`sandbox cgroup: ${cg.error}`);
  return cg.path;
}

/** Attaches, checks the kernel reports the link as the expected type, detaches. */
function withLink(make: () => BpfLink, wantType: string, where: string): string {
  const link = make();
  try {
    const info = link.info;
    if (info.typeName !== wantType) throw new Error(`link type is ${info.typeName}, expected ${wantType}`);
    return `loads and attaches (${wantType} link id ${info.id} on ${where})`;
  } finally {
    link.close();
  }
}

function attachXdp(mode: 'native' | 'generic') {
  return (p: BpfProgram, _o: BpfObject, env: ProbeEnv) =>
    inNetns(env, (ifindex) => withLink(() => p.attachXdp(ifindex, mode), 'xdp', `veth ifindex ${ifindex}`));
}

function attachTcx(dir: 'ingress' | 'egress') {
  return (p: BpfProgram, _o: BpfObject, env: ProbeEnv) =>
    inNetns(env, (ifindex) => withLink(() => p.attachTcx(ifindex, dir), 'tcx', `veth ifindex ${ifindex}`));
}

function attachCgroup(p: BpfProgram, _o: BpfObject, env: ProbeEnv): string {
  const path = cgroupPath(env);
  return withLink(() => p.attachCgroup(path), 'cgroup', path);
}

/** Index into doctor_hits[] in doctor.bpf.c. */
const HIT = { tp: 0, tp_btf: 1, raw_tp: 2 } as const;

/**
 * Attaches a tracing probe, makes this process enter openat(2) (which every
 * one of them sees), and checks that the program ran, by reading its hit
 * counter in .bss back.
 */
function attachTracing(which: keyof typeof HIT, linkType: string) {
  return (p: BpfProgram, obj: BpfObject): string => {
    const bss = obj.maps().find((m) => m.name.endsWith('.bss'));
    if (!bss) throw new Error('object has no .bss map for the hit counters');
    const link = p.attach();
    try {
      const info = link.info;
      if (info.typeName !== linkType) throw new Error(`link type is ${info.typeName}, expected ${linkType}`);
      readFileSync('/proc/self/stat');
      const value = bss.lookup(Buffer.alloc(4));
      const hits = value ? value.readBigUInt64LE(which === 'tp' ? 0 : which === 'tp_btf' ? 8 : 16) : 0n;
      if (hits === 0n) throw new Error('attached, but the program did not run on openat(2)');
      return `loads, attaches (${linkType} link id ${info.id}) and runs (${hits} hit${hits === 1n ? '' : 's'})`;
    } finally {
      link.close();
    }
  };
}

function loadOnly(what: string) {
  return () => `loads (${what}); load-only probe, not attached`;
}

export const PROBES: readonly Probe[] = [
  { name: 'prog.xdp.generic', program: 'doctor_xdp', required: true, exercise: attachXdp('generic') },
  { name: 'prog.xdp.native', program: 'doctor_xdp', required: false, exercise: attachXdp('native') },
  { name: 'prog.tcx.ingress', program: 'doctor_tc', required: true, exercise: attachTcx('ingress') },
  { name: 'prog.tcx.egress', program: 'doctor_tc', required: true, exercise: attachTcx('egress') },
  { name: 'prog.cgroup_skb.ingress', program: 'doctor_cgroup_skb_ingress', required: true, exercise: attachCgroup },
  { name: 'prog.cgroup_skb.egress', program: 'doctor_cgroup_skb_egress', required: true, exercise: attachCgroup },
  { name: 'prog.cgroup.connect4', program: 'doctor_connect4', required: false, exercise: attachCgroup },
  { name: 'prog.cgroup.connect6', program: 'doctor_connect6', required: false, exercise: attachCgroup },
  { name: 'prog.cgroup.sock_create', program: 'doctor_sock_create', required: false, exercise: attachCgroup },
  { name: 'prog.cgroup.sendmsg4', program: 'doctor_sendmsg4', required: false, exercise: attachCgroup },
  { name: 'prog.sockops', program: 'doctor_sockops', required: false, exercise: attachCgroup },
  { name: 'prog.tracepoint', program: 'doctor_tp', required: true, exercise: attachTracing('tp', 'perf_event') },
  { name: 'prog.tp_btf', program: 'doctor_tp_btf', required: true, exercise: attachTracing('tp_btf', 'raw_tracepoint') },
  { name: 'prog.raw_tp', program: 'doctor_raw_tp', required: true, exercise: attachTracing('raw_tp', 'raw_tracepoint') },
  {
    name: 'test_run.xdp',
    program: 'doctor_xdp_testrun',
    required: true,
    exercise: (p) => {
      expectRetval(p, ipv4UdpFrame(), XDP_DROP, 'an IPv4 frame');
      expectRetval(p, arpFrame(), XDP_PASS, 'an ARP frame');
      return 'BPF_PROG_TEST_RUN gives the verdict the packet calls for (IPv4 -> XDP_DROP, ARP -> XDP_PASS)';
    },
  },
  {
    name: 'test_run.tc',
    program: 'doctor_tc_testrun',
    required: true,
    exercise: (p) => {
      expectRetval(p, ipv4UdpFrame(), TC_ACT_SHOT, 'an IPv4 frame');
      expectRetval(p, arpFrame(), TC_ACT_OK, 'an ARP frame');
      return 'BPF_PROG_TEST_RUN gives the verdict the packet calls for (IPv4 -> TC_ACT_SHOT, ARP -> TC_ACT_OK)';
    },
  },
  {
    name: 'map.ringbuf',
    program: 'doctor_ringbuf_probe',
    required: true,
    exercise: (p, obj) => {
      const m = obj.map('doctor_ringbuf');
      expectRetval(p, ipv4UdpFrame(), XDP_PASS, 'a frame');
      return `ring buffer map created (${m.maxEntries} bytes, id ${m.id}); a program reserving and submitting into it loads and runs`;
    },
  },
  {
    name: 'map.percpu_array',
    program: 'doctor_percpu_probe',
    required: true,
    exercise: (p, obj) => {
      const m = obj.map('doctor_percpu');
      expectRetval(p, ipv4UdpFrame(), XDP_PASS, 'a frame');
      const v = m.lookup(Buffer.alloc(4));
      if (!v) throw new Error('per-CPU array has no slot 0');
      let sum = 0n;
      for (let off = 0; off + 8 <= v.length; off += 8) sum += v.readBigUInt64LE(off);
      if (sum !== 1n) throw new Error(`per-CPU sum after one run is ${sum}, expected 1`);
      return `per-CPU array created; one test run counted once across ${v.length / 8} CPU slots`;
    },
  },
  {
    name: 'map.lpm_trie',
    program: 'doctor_lpm_probe',
    required: true,
    exercise: (p, obj) => {
      const m = obj.map('doctor_lpm');
      expectRetval(p, ipv4UdpFrame(), XDP_PASS, 'a frame with an empty trie');
      const key = Buffer.from([32, 0, 0, 0, 198, 18, 0, 1]);
      const val = Buffer.alloc(4);
      val.writeUInt32LE(1);
      m.update(key, val);
      expectRetval(p, ipv4UdpFrame(), XDP_DROP, 'a frame after inserting 198.18.0.1/32');
      return 'LPM trie created; an inserted /32 is found by the program';
    },
  },
  { name: 'helper.send_signal', program: 'doctor_send_signal', required: false, exercise: loadOnly('bpf_send_signal from tp_btf/sys_enter') },
  { name: 'kfunc.conntrack', program: 'doctor_ct_kfunc', required: false, exercise: loadOnly('bpf_xdp_ct_lookup + bpf_ct_release from XDP') },
  { name: 'helper.syncookie', program: 'doctor_syncookie', required: false, exercise: loadOnly('bpf_tcp_raw_gen_syncookie_ipv4 from XDP') },
  { name: 'prog.fentry', program: 'doctor_fentry', required: false, exercise: loadOnly('fentry/bpf_fentry_test1'), unused: 'fentry' },
  { name: 'prog.lsm', program: 'doctor_lsm', required: false, exercise: loadOnly('lsm/file_open'), unused: 'BPF LSM' },
];

/** A short, single-line reason out of whatever a load or attach threw. */
export function describeError(e: unknown): string {
  if (e instanceof VerifierError) {
    const lines = e.log.split('\n').map((l) => l.trim()).filter(Boolean);
    return `verifier refused (${errnoName(e.errno)}): ${lines.slice(-2).join(' | ') || 'no verifier log'}`;
  }
  if (e instanceof KernelError) {
    // libbpf's own line says what failed (e.g. "prog 'x': BPF program load
    // failed: Operation not permitted"); the generic operator hint does not.
    const log = (e.libbpfLog ?? '').split('\n').map((l) => l.replace(/^libbpf: /, '').trim());
    const why = log.find((l) => /failed|error|not found|unknown/i.test(l) && !/ulimit/.test(l));
    return `${e.code}${why ? `: ${why}` : `: ${e.op}`}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** The named maps each probe program uses (the internal .bss is always created). */
const MAPS_OF: Record<string, readonly string[]> = {
  doctor_ringbuf_probe: ['doctor_ringbuf'],
  doctor_percpu_probe: ['doctor_percpu'],
  doctor_lpm_probe: ['doctor_lpm'],
};

function openIsolated(objectPath: string, program: string): BpfObject {
  const obj = BpfObject.open(objectPath);
  try {
    obj.program(program); // throws naming the program when the object lacks it
    for (const p of obj.programs()) if (p.name !== program) obj.setAutoload(p.name, false);
    // Maps are created for the whole object even when their programs are not
    // loaded, so a map type the kernel refuses would fail every probe: skip
    // the ones this probe does not use.
    const keep = MAPS_OF[program] ?? [];
    for (const m of obj.maps()) if (!m.name.includes('.') && !keep.includes(m.name)) obj.setAutocreate(m.name, false);
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

export function runProbe(probe: Probe, env: ProbeEnv): DoctorCheck {
  const base = { name: probe.name, required: probe.required };
  let obj: BpfObject | undefined;
  let stage = 'open';
  try {
    obj = openIsolated(env.objectPath, probe.program);
    stage = 'load';
    obj.load();
    stage = 'exercise';
    const detail = probe.exercise(obj.program(probe.program), obj, env);
    return { ...base, ok: true, detail: probe.unused ? `${detail} (tollgate does not use ${probe.unused})` : detail };
  } catch (e) {
    const why = describeError(e);
    if (probe.unused)
      return { ...base, ok: false, detail: `not available: ${stage} refused: ${why} (expected on the reference host; tollgate does not use ${probe.unused})` };
    return { ...base, ok: false, detail: `${stage} failed: ${why}` };
  } finally {
    obj?.close();
  }
}

/**
 * Runs every probe. libbpf's warnings are silenced meanwhile: a refused probe
 * is an expected outcome whose reason goes into the check's detail.
 */
export function runProbes(env: ProbeEnv): DoctorCheck[] {
  const prev = setLibbpfLogger(() => {});
  try {
    return PROBES.map((p) => runProbe(p, env));
  } finally {
    setLibbpfLogger(prev);
  }
}
