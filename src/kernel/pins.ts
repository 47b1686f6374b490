// Pin paths: everything tollgate pins lives inside /sys/fs/bpf, and tests
// and the agent remove whole pin directories at once.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { BPFFS, ensureBpffs } from './mounts.js';

export { ensureBpffs, BPFFS } from './mounts.js';

/** Where the agent keeps its pins. */
export const PIN_ROOT = join(BPFFS, 'tollgate');

/** Throws unless path is inside /sys/fs/bpf; returns it normalised. */
export function inBpffs(path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path)) throw new TypeError(`pin path must be an absolute path, got '${String(path)}'`);
  const p = resolve(path);
  const rel = relative(BPFFS, p);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new RangeError(`pin path '${path}' is not inside ${BPFFS}`);
  return p;
}

/** A path under the pin root, e.g. pinPath('maps', 'tg_meter_counters'). */
export function pinPath(...parts: string[]): string {
  for (const p of parts) if (p === '' || p.includes('/') || p === '.' || p === '..') throw new RangeError(`pin path component '${p}' is not a plain name`);
  return join(PIN_ROOT, ...parts);
}

/** mkdir -p inside bpffs (ensures bpffs is mounted first). */
export function mkdirp(dir: string): string {
  const d = inBpffs(dir);
  ensureBpffs();
  mkdirSync(d, { recursive: true });
  return d;
}

/** Removes a pin directory and everything pinned under it; missing is fine. */
export function removePins(dir: string): void {
  const d = inBpffs(dir);
  if (!existsSync(d)) return;
  if (!statSync(d).isDirectory()) throw new RangeError(`removePins: '${d}' is not a directory (use unpin for single pins)`);
  rmSync(d, { recursive: true, force: true });
}
