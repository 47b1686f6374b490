// Loading an object over the maps an earlier agent pinned, attaching cgroup
// programs over the links it pinned, and taking pinned links away: what
// every datapath that outlives its agent does.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink } from './link.js';
import { BpfObject } from './object.js';
import type { BpfProgram } from './program.js';
import { linkInfo, progInfoById } from './info.js';

/**
 * Opens the object at `path`, reuses the maps of `pinned` that are pinned
 * under <pinRoot>/maps, loads it and pins the others there. A pin whose
 * shape differs from this build's (an upgrade changed it) is removed first,
 * with whatever `together` adds to those (maps that only make sense with
 * each other); `replaced` names them.
 */
export function loadPinned(path: string, pinRoot: string, pinned: readonly string[], together: (stale: string[]) => string[] = (s) => s): { obj: BpfObject; replaced: string[] } {
  const mapDir = join(pinRoot, 'maps');
  mkdirSync(mapDir, { recursive: true });
  const obj = BpfObject.open(path);
  try {
    const stale = pinned.filter((name) => existsSync(join(mapDir, name)) && obj.pinMismatch(name, join(mapDir, name)).length > 0);
    const replaced = stale.length ? together(stale) : [];
    for (const name of replaced) rmSync(join(mapDir, name), { force: true });
    for (const name of pinned) if (existsSync(join(mapDir, name))) obj.reuseMap(name, join(mapDir, name));
    obj.load();
    for (const name of pinned) if (!existsSync(join(mapDir, name))) obj.map(name).pin(join(mapDir, name));
    return { obj, replaced };
  } catch (err) {
    obj.close();
    throw err;
  }
}

/** Unpins the links pinned as <dir>/<name>: each is detached once no fd holds it. Missing ones are fine. */
export function unpinLinks(dir: string, names: Iterable<string>): void {
  for (const name of names) {
    const pin = join(dir, name);
    if (!existsSync(pin)) continue;
    const link = BpfLink.openPinned(pin);
    try {
      link.unpin();
    } finally {
      link.close();
    }
  }
}

export interface CgroupLinksResult {
  /** The cgroup's id (its directory's inode). */
  cgroupId: bigint;
  /** Links kept: at that cgroup, running this very program (same tag). */
  adopted: string[];
  /** Links at that cgroup running another build: the program swapped in place (bpf_link_update). */
  updated: string[];
  /** Links made (none pinned, or pinned at another cgroup). */
  attached: string[];
}

/**
 * Attaches each program at the cgroup directory `cgroupPath` (absolute),
 * pinned as <dir>/<name>, adopting pinned links already there: the same
 * build is kept, another build is swapped in place, so no packet or socket
 * goes unseen. A link pinned at another cgroup is replaced, the new one
 * attached before the old one goes (for a moment both run).
 */
export function attachCgroupLinks(dir: string, cgroupPath: string, programs: Readonly<Record<string, BpfProgram>>): CgroupLinksResult {
  mkdirSync(dir, { recursive: true });
  const cgroupId = statSync(cgroupPath, { bigint: true }).ino;
  const out: CgroupLinksResult = { cgroupId, adopted: [], updated: [], attached: [] };
  for (const [name, prog] of Object.entries(programs)) {
    const pin = join(dir, name);
    let old: BpfLink | undefined;
    if (existsSync(pin)) {
      old = BpfLink.openPinned(pin);
      const info = linkInfo(old.fd);
      if (info.cgroupId === cgroupId) {
        try {
          if (progInfoById(info.progId).tag === prog.info().tag) out.adopted.push(name);
          else {
            old.update(prog);
            out.updated.push(name);
          }
        } finally {
          old.close();
        }
        continue;
      }
    }
    const link = prog.attachCgroup(cgroupPath);
    try {
      if (old) old.unpin();
      link.pin(pin);
      out.attached.push(name);
    } finally {
      link.close();
      old?.close();
    }
  }
  return out;
}
