// /proc/mounts, parsed: the one place that knows its format and where cgroup
// v2 lives. Pure apart from readMounts(), so the agent, the doctor and the
// lab all agree on the answer.
import { readFileSync } from 'node:fs';

export interface Mount {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

/** /proc/mounts escapes space, tab, newline and backslash as octal (\040). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMounts(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    out.push({ source: unescapeMount(f[0]), target: unescapeMount(f[1]), fstype: f[2], options: f[3].split(',') });
  }
  return out;
}

export function readMounts(): Mount[] {
  return parseMounts(readFileSync('/proc/self/mounts', 'utf8'));
}

/**
 * Where cgroup v2 is mounted. A pure v2 host has it at /sys/fs/cgroup; a
 * hybrid host (v1 controllers plus v2) at /sys/fs/cgroup/unified.
 */
export function findCgroup2(mounts: Mount[]): string | undefined {
  const v2 = mounts.filter((m) => m.fstype === 'cgroup2').map((m) => m.target);
  for (const preferred of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) if (v2.includes(preferred)) return preferred;
  return v2[0];
}
