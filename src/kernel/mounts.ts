// The pseudo filesystems BPF work needs and hosts do not always mount: bpffs
// (pins) and tracefs (tracepoint ids for tp/ programs). Mounting is
// idempotent and done through libc mount(2), no external tools.
import { mkdirSync, readFileSync } from 'node:fs';
import { KernelError } from './errors.js';
import { lastErrno, libc } from './libbpf.js';

export const BPFFS = '/sys/fs/bpf';
export const TRACEFS = '/sys/kernel/tracing';

/** Mount point of the first filesystem of that type, from /proc/self/mounts. */
export function findMount(fstype: string): string | undefined {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mnt, type] = line.split(' ');
    if (type === fstype) return mnt;
  }
  return undefined;
}

function isMounted(at: string, fstype: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => {
      const [, mnt, type] = l.split(' ');
      return mnt === at && type === fstype;
    });
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
  const m = findMount('cgroup2');
  if (!m) throw new KernelError('find cgroup2 mount', 2, 'no cgroup2 filesystem in /proc/self/mounts');
  return m;
}
