// Loading an object over the maps an earlier agent pinned, and taking
// pinned links away: what every datapath that outlives its agent does.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink } from './link.js';
import { BpfObject } from './object.js';

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
