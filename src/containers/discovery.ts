// Containers (and plain cgroups) under the cgroup v2 mount, found by walking
// the directory tree. A cgroup's id is its directory's inode number: the
// value bpf_get_current_cgroup_id() and bpf_skb_cgroup_id() return, so it is
// what kernel maps keyed by cgroup use. No libbpf here: only the file system.
import { lstatSync, readdirSync, statfsSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2, readMounts } from '../kernel/proc-mounts.js';
import { parseContainerCgroup, type ContainerName } from './naming.js';

/**
 * How many levels below the starting cgroup a walk reads. The deepest layout
 * recognised, a pod's container on a kind node (Kubernetes inside a docker
 * container), is 7 levels below the root; 10 leaves room for a kubelet
 * cgroup root or a container's own sub-cgroups, and keeps a pathologically
 * deep tree (cgroup.max.depth is unlimited by default) from slowing every
 * scan down. Deeper cgroups are not reported.
 */
export const DEFAULT_MAX_DEPTH = 10;

const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface CgroupWalkOptions {
  /** Where cgroup2 is mounted; default: looked up in /proc/self/mounts. */
  mount?: string;
  /** Walk only this subtree, a path relative to the mount such as "/kubepods.slice". Default "/". */
  under?: string;
  /** Levels below `under` to descend; default DEFAULT_MAX_DEPTH. */
  maxDepth?: number;
}

export type CgroupWalk = Required<CgroupWalkOptions>;

export interface Cgroup {
  /** Relative to the cgroup2 mount; "/" is the root. */
  cgroupPath: string;
  /** The directory's inode number, i.e. the kernel's cgroup id. */
  cgroupId: bigint;
}

export interface Container extends ContainerName, Cgroup {}

function normalizeUnder(under: unknown): string {
  const bad = (why: string): never => {
    throw new TypeError(`cgroup walk option "under" ${why}, got ${JSON.stringify(under)}`);
  };
  if (typeof under !== 'string' || !under.startsWith('/')) bad('must be a cgroup path relative to the mount starting with "/", e.g. "/kubepods.slice"');
  const s = under as string;
  if (s.includes('\0')) bad('must not contain NUL');
  const segs = s.split('/').filter((x) => x !== '');
  if (segs.some((x) => x === '.' || x === '..')) bad('must not contain "." or ".." segments');
  return `/${segs.join('/')}`;
}

/**
 * Checks the options and fills in the defaults; resolving once and passing
 * the result to every later walk saves re-reading /proc/self/mounts.
 */
export function resolveCgroupWalk(opts: CgroupWalkOptions = {}): CgroupWalk {
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 0) throw new RangeError(`cgroup walk option "maxDepth" must be an integer >= 0, got ${maxDepth}`);
  const under = normalizeUnder(opts.under ?? '/');
  const mount = opts.mount ?? findCgroup2(readMounts());
  if (mount === undefined) throw new Error('cgroup walk: no cgroup2 filesystem in /proc/self/mounts; mount one with: mount -t cgroup2 none /sys/fs/cgroup/unified');
  if (!mount.startsWith('/')) throw new TypeError(`cgroup walk option "mount" must be an absolute path, got ${JSON.stringify(mount)}`);
  // Only on cgroup2 is a directory's inode the id BPF programs see.
  if (statfsSync(mount).type !== CGROUP2_SUPER_MAGIC) throw new Error(`cgroup walk option "mount": ${mount} is not a cgroup2 mount`);
  return { mount, under, maxDepth };
}

/** A directory that went away between listing its parent and reading it. */
const vanished = (e: unknown): boolean => ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '');

/**
 * Calls visit(cgroupPath, directory) for every cgroup from `under` down to
 * maxDepth levels below it, parents first, each before its directory is
 * read. Symbolic links are never followed (cgroupfs has none; a link passed
 * as `under` is refused). Cgroups removed during the walk are skipped.
 */
function walkCgroups(w: CgroupWalk, visit: (cgroupPath: string, dir: string) => void): void {
  const start = join(w.mount, w.under);
  const st = lstatSync(start, { throwIfNoEntry: false });
  if (!st) throw new Error(`cgroup walk: cgroup "${w.under}" does not exist under ${w.mount}`);
  if (!st.isDirectory()) throw new Error(`cgroup walk: ${start} is not a directory`);
  const step = (cgroupPath: string, dir: string, depth: number): void => {
    visit(cgroupPath, dir);
    if (depth >= w.maxDepth) return;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if (depth > 0 && vanished(e)) return;
      throw e;
    }
    for (const e of entries) {
      if (e.isDirectory()) step(cgroupPath === '/' ? `/${e.name}` : `${cgroupPath}/${e.name}`, join(dir, e.name), depth + 1);
    }
  };
  step(w.under, start, 0);
}

function cgroupIdOf(dir: string): bigint | undefined {
  return lstatSync(dir, { bigint: true, throwIfNoEntry: false })?.ino;
}

/** Every cgroup in the walk with its id; for selecting cgroups that are not containers. */
export function listCgroups(opts: CgroupWalkOptions = {}): Cgroup[] {
  const out: Cgroup[] = [];
  walkCgroups(resolveCgroupWalk(opts), (cgroupPath, dir) => {
    const cgroupId = cgroupIdOf(dir);
    if (cgroupId !== undefined) out.push({ cgroupPath, cgroupId });
  });
  return out;
}

/**
 * The containers in the walk, in walk order. `onDirectory` is called with
 * the absolute path of every directory the walk visits, before the walk
 * reads it (the watcher puts its inotify watches there, so a cgroup created
 * after the read is still noticed).
 */
export function discoverContainers(opts: CgroupWalkOptions = {}, onDirectory?: (dir: string) => void): Container[] {
  const out: Container[] = [];
  walkCgroups(resolveCgroupWalk(opts), (cgroupPath, dir) => {
    onDirectory?.(dir);
    const name = parseContainerCgroup(cgroupPath);
    if (!name) return;
    const cgroupId = cgroupIdOf(dir);
    if (cgroupId !== undefined) out.push({ ...name, cgroupPath, cgroupId });
  });
  return out;
}
