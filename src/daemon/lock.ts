// One agent per pin root: two agents adopting the same pinned maps would
// fight over the policy generation switch. A pid file guards it; a file left
// by a crashed agent (its pid gone, or reused by something that is not a
// tollgate agent) is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_DIR = '/run/tollgate/locks';

function holder(file: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('agent') ? pid : undefined;
  } catch {
    return undefined; // no such process
  }
}

/** Takes the lock for pinRoot or throws naming the agent that holds it; returns the release function. */
/** The pid file guarding pinRoot. */
export function lockFile(pinRoot: string, dir = LOCK_DIR): string {
  return join(dir, `${pinRoot.replace(/[^A-Za-z0-9._-]/g, '_')}.pid`);
}

export function lockPinRoot(pinRoot: string, dir = LOCK_DIR): () => void {
  mkdirSync(dir, { recursive: true });
  const file = lockFile(pinRoot, dir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        if (holder(file) === undefined) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = holder(file);
      if (pid !== undefined) {
        throw new Error(`--pin-root: agent pid ${pid} already uses ${pinRoot} (lock ${file}); stop it or choose another pin root`);
      }
      rmSync(file, { force: true }); // left by a crashed agent
    }
  }
  throw new Error(`--pin-root: could not take the lock ${file}`);
}
