// Host checks that need no BPF: kernel release, BTF, the bpf/tracefs/cgroup2
// mounts, effective capabilities and the bpf_stats sysctl. Parsers are pure
// and exported for tests; the check functions read /proc and /sys.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { findCgroup2, readMounts, type Mount } from '../kernel/proc-mounts.js';
import type { DoctorCheck } from './report.js';

export { parseMounts, findCgroup2, readMounts, type Mount } from '../kernel/proc-mounts.js';

export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
}

/** "6.18.44-fc-v782" -> 6.18.44. Throws on a release that does not start with a version. */
export function parseKernelRelease(rel: string): KernelVersion {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(rel);
  if (!m) throw new Error(`kernel release: cannot parse "${rel}" as major.minor[.patch]`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function kernelAtLeast(v: KernelVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** Capability numbers from linux/capability.h. */
export const CAPS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const;
export type CapName = keyof typeof CAPS;

/** The CapEff mask from the text of /proc/<pid>/status. */
export function parseCapEff(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  if (!m) throw new Error('CapEff: no "CapEff:" line in /proc/self/status');
  return BigInt(`0x${m[1]}`);
}

export function missingCaps(capEff: bigint): CapName[] {
  return (Object.keys(CAPS) as CapName[]).filter((n) => ((capEff >> BigInt(CAPS[n])) & 1n) === 0n);
}

function check(name: string, required: boolean, fn: () => Omit<DoctorCheck, 'name' | 'required'>): DoctorCheck {
  try {
    return { name, required, ...fn() };
  } catch (e) {
    return { name, required, ok: false, detail: `check failed: ${(e as Error).message}` };
  }
}

/** Kernel release; informational, since the probes below decide what works. */
export function checkKernel(rel: string = release()): DoctorCheck {
  return check('kernel', false, () => {
    const v = parseKernelRelease(rel);
    const tcx = kernelAtLeast(v, 6, 6);
    return {
      ok: tcx,
      detail: `Linux ${rel}${tcx ? '' : ' (older than 6.6: no tcx links)'}`,
      ...(tcx ? {} : { fix: 'use a kernel >= 6.6' }),
    };
  });
}

export function checkBtf(): DoctorCheck {
  return check('btf', true, () => {
    const p = '/sys/kernel/btf/vmlinux';
    if (!existsSync(p)) return { ok: false, detail: `${p} missing`, fix: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y' };
    return { ok: true, detail: `${p} (${statSync(p).size} bytes)` };
  });
}

export function checkBpffs(mounts: Mount[]): DoctorCheck {
  return check('bpffs', true, () => {
    const m = mounts.find((x) => x.target === '/sys/fs/bpf' && x.fstype === 'bpf');
    if (!m) return { ok: false, detail: 'bpffs is not mounted at /sys/fs/bpf', fix: 'mount -t bpf bpf /sys/fs/bpf' };
    return { ok: true, detail: `bpf mounted at /sys/fs/bpf (${m.options.filter((o) => o !== 'relatime').join(',')})` };
  });
}

/** tp/ programs attach through the tracepoint ids that tracefs exposes. */
export function checkTracefs(mounts: Mount[]): DoctorCheck {
  return check('tracefs', true, () => {
    const m = mounts.find((x) => x.fstype === 'tracefs' && (x.target === '/sys/kernel/tracing' || x.target === '/sys/kernel/debug/tracing'));
    const fix = 'mount -t tracefs tracefs /sys/kernel/tracing';
    if (!m) return { ok: false, detail: 'tracefs is not mounted at /sys/kernel/tracing', fix };
    const id = `${m.target}/events/syscalls/sys_enter_openat/id`;
    if (!existsSync(id)) return { ok: false, detail: `tracefs at ${m.target} but ${id} is missing (CONFIG_FTRACE_SYSCALLS?)`, fix };
    return { ok: true, detail: `tracefs mounted at ${m.target}` };
  });
}

export function checkCgroup2(mounts: Mount[]): DoctorCheck {
  return check('cgroup2', true, () => {
    const root = findCgroup2(mounts);
    if (!root) return { ok: false, detail: 'no cgroup2 filesystem in /proc/mounts', fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified' };
    const hybrid = mounts.some((m) => m.fstype === 'cgroup');
    return { ok: true, detail: `cgroup2 at ${root}${hybrid ? ' (hybrid host: v1 controllers also mounted)' : ''}` };
  });
}

export function checkCapabilities(statusText?: string): DoctorCheck {
  return check('capabilities', true, () => {
    const eff = parseCapEff(statusText ?? readFileSync('/proc/self/status', 'utf8'));
    const missing = missingCaps(eff);
    if (missing.length > 0)
      return { ok: false, detail: `missing ${missing.join(', ')} (CapEff ${eff.toString(16)})`, fix: 'run tollgate as root (or grant CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON)' };
    return { ok: true, detail: `${Object.keys(CAPS).join(', ')} effective` };
  });
}

export function checkBpfStats(): DoctorCheck {
  return check('bpf_stats', false, () => {
    const on = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1';
    return on
      ? { ok: true, detail: 'kernel.bpf_stats_enabled=1: run_time_ns/run_cnt are collected' }
      : { ok: false, detail: 'kernel.bpf_stats_enabled=0 (per-program run time is not collected)', fix: 'sysctl kernel.bpf_stats_enabled=1' };
  });
}

/** Every check in this file, reading /proc/mounts once. */
export function hostChecks(): DoctorCheck[] {
  let mounts: Mount[] = [];
  let mountErr: Error | undefined;
  try {
    mounts = readMounts();
  } catch (e) {
    mountErr = e as Error;
  }
  const mountChecks = mountErr
    ? ['bpffs', 'tracefs', 'cgroup2'].map((name) => ({ name, required: true, ok: false, detail: `cannot read /proc/mounts: ${mountErr!.message}` }))
    : [checkBpffs(mounts), checkTracefs(mounts), checkCgroup2(mounts)];
  return [checkKernel(), checkBtf(), ...mountChecks, checkCapabilities(), checkBpfStats()];
}
