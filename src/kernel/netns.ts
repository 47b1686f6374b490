// Network namespaces and interface names, seen from the calling thread. The
// agent enters a lab namespace with setns(2) on its own main thread instead
// of running under `ip netns exec`, which would remount /sys and hide the
// bpffs and cgroup mounts the agent needs.
import { closeSync, openSync, constants as fsc } from 'node:fs';
import { KernelError } from './errors.js';
import { lastErrno, libc } from './libbpf.js';

const CLONE_NEWNET = 0x40000000;

/** ifindex of an interface in the calling thread's network namespace. */
export function ifindexOf(name: string): number {
  if (typeof name !== 'string' || name === '' || name.length > 15) throw new RangeError(`interface name must be 1-15 characters, got '${String(name)}'`);
  const idx = libc().if_nametoindex(name) as number;
  if (idx === 0) throw new KernelError(`if_nametoindex(${name})`, lastErrno() || 19, `no interface '${name}' in this network namespace`);
  return idx;
}

function nsPath(nameOrPath: string): string {
  if (typeof nameOrPath !== 'string' || nameOrPath === '') throw new TypeError('netns: name or path must be a non-empty string');
  return nameOrPath.includes('/') ? nameOrPath : `/run/netns/${nameOrPath}`;
}

function setnsPath(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY);
  } catch (e) {
    throw new KernelError(`open(${path})`, Math.abs((e as NodeJS.ErrnoException).errno ?? 2), 'no such network namespace');
  }
  try {
    if ((libc().setns(fd, CLONE_NEWNET) as number) !== 0) throw new KernelError(`setns(${path}, CLONE_NEWNET)`, lastErrno() || 1);
  } finally {
    closeSync(fd);
  }
}

/**
 * Moves the calling thread into a network namespace (a name under
 * /run/netns or a path such as /proc/PID/ns/net). Returns a function that
 * moves it back to the namespace it was in before.
 */
export function enterNetns(nameOrPath: string): () => void {
  const target = nsPath(nameOrPath);
  const back = openSync('/proc/thread-self/ns/net', fsc.O_RDONLY);
  try {
    setnsPath(target);
  } catch (e) {
    closeSync(back);
    throw e;
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    try {
      if ((libc().setns(back, CLONE_NEWNET) as number) !== 0) throw new KernelError('setns(back to previous netns)', lastErrno() || 1);
    } finally {
      closeSync(back);
    }
  };
}

/** Runs fn inside a network namespace and always returns to the current one. */
export function withNetns<T>(nameOrPath: string, fn: () => T): T {
  const leave = enterNetns(nameOrPath);
  try {
    return fn();
  } finally {
    leave();
  }
}
