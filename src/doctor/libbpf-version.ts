// Which libbpf the kernel layer loaded: major.minor from libbpf itself, the
// full version from the file name of the mapped library (libbpf.so.1.1.2),
// which is what the dynamic loader actually picked.
import { readFileSync, realpathSync } from 'node:fs';
import { libbpfVersion } from '../kernel/index.js';
import type { DoctorCheck } from './report.js';

export function versionFromSoname(path: string): string | undefined {
  return /libbpf\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(path)?.[1];
}

function mappedLibbpf(): string | undefined {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const line = maps.split('\n').find((l) => /\/libbpf\.so[.\d]*$/.test(l));
  if (!line) return undefined;
  const path = line.slice(line.indexOf('/'));
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export function checkLibbpf(): DoctorCheck {
  const base = { name: 'libbpf', required: true } as const;
  try {
    const api = libbpfVersion();
    const file = mappedLibbpf();
    const full = file ? versionFromSoname(file) : undefined;
    const version = full?.startsWith(`${api}.`) ? full : api;
    const [maj, min] = version.split('.').map(Number);
    const ok = maj > 1 || (maj === 1 && min >= 1);
    return {
      ...base,
      ok,
      detail: `libbpf ${version}${file ? ` (${file})` : ''}${ok ? '' : ': tollgate needs libbpf >= 1.1'}`,
      ...(ok ? {} : { fix: 'apt-get install libbpf1 (>= 1.1)' }),
    };
  } catch (e) {
    return { ...base, ok: false, detail: (e as Error).message, fix: 'apt-get install libbpf1' };
  }
}
