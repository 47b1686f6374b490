// Where the package's own files live, whether running from src/ through tsx
// or from dist/ after the build.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bpf'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('tollgate: cannot find the package root (package.json next to bpf/)');
    dir = up;
  }
}

export const packageRoot = findRoot();

/** A compiled BPF object, e.g. bpfObjectPath('meter') -> build/bpf/meter.bpf.o */
export function bpfObjectPath(name: string): string {
  const p = join(packageRoot, 'build', 'bpf', `${name}.bpf.o`);
  if (!existsSync(p)) throw new Error(`BPF object ${p} is missing: run "npm run build" first`);
  return p;
}

export const defaults = {
  pinRoot: '/sys/fs/bpf/tollgate',
  socket: process.env.TOLLGATE_SOCKET ?? '/run/tollgate/agent.sock',
  db: process.env.TOLLGATE_DB ?? '/var/lib/tollgate/ledger.db',
} as const;
