// Which libbpf the kernel layer loaded. libbpf_major_version()/minor are
// used when src/kernel binds them; otherwise the version is read from the
// file name of the mapped library (libbpf.so.1.1.2), which is what the
// dynamic loader actually picked.
import { readFileSync, realpathSync } from 'node:fs';
import { libbpf } from '../kernel/index.js';
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
    const lib = libbpf() as unknown as Record<string, unknown>;
    const file = mappedLibbpf();
    let version: string | undefined;
    const major = lib.libbpf_major_version;
    const minor = lib.libbpf_minor_version;
    if (typeof major === 'function' && typeof minor === 'function') version = `${major()}.${minor()}`;
    version ??= file ? versionFromSoname(file) : undefined;
    if (!version) return { ...base, ok: true, detail: `loaded ${file ?? 'libbpf.so.1'} (version unknown)` };
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
