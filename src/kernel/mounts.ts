// The pseudo filesystems BPF work needs and hosts do not always mount: bpffs
// (pins) and tracefs (tracepoint ids for tp/ programs). Mounting is
// idempotent and done through libc mount(2), no external tools.
import { mkdirSync } from 'node:fs';
import { KernelError } from './errors.js';
import { lastErrno, libc } from './libbpf.js';
import { findCgroup2, readMounts } from './proc-mounts.js';

export const BPFFS = '/sys/fs/bpf';
export const TRACEFS = '/sys/kernel/tracing';

/** Mount point of the first filesystem of that type. */
export function findMount(fstype: string): string | undefined {
  return readMounts().find((m) => m.fstype === fstype)?.target;
}

function isMounted(at: string, fstype: string): boolean {
  return readMounts().some((m) => m.target === at && m.fstype === fstype);
}

function ensureMounted(fstype: string, at: string): void {
  if (isMounted(at, fstype)) return;
  mkdirSync(at, { recursive: true });
  if ((libc().mount(fstype, at, fstype, 0, null) as number) !== 0) throw new KernelError(`mount(${fstype}, ${at})`, lastErrno() || 1);
}

/** Mounts bpffs on /sys/fs/bpf unless it already is. */
export function ensureBpffs(): void {
  ensureMounted('bpf', BPFFS);
}

/** Mounts tracefs on /sys/kernel/tracing unless it already is. */
export function ensureTracefs(): void {
  ensureMounted('tracefs', TRACEFS);
}

/** The cgroup v2 mount (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Root(): string {
  const m = findCgroup2(readMounts());
  if (!m) throw new KernelError('find cgroup2 mount', 2, 'no cgroup2 filesystem in /proc/self/mounts; mount one with: mount -t cgroup2 none /sys/fs/cgroup/unified');
  return m;
}
