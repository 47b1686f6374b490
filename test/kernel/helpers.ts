// Shared fixtures for the kernel tests: object paths, prerequisite checks
// that skip (never silently pass), and self-cleaning namespaces, veths,
// cgroups and pin directories, all named with the `tgk` prefix.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { cgroup2Root, ensureBpffs, removePins } from '../../src/kernel/index.js';
import { removeCgroup } from '../../lab/index.js';

export const FIXTURES = join(import.meta.dirname, '../../build/bpf/tests');
export const fixture = (name: string): string => join(FIXTURES, `${name}.bpf.o`);

/** A short unique tag for names that must fit 15 characters. */
export const tag = (): string => `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

/** Skips the test when the host cannot run kernel tests; returns false then. */
export function kernelReady(t: TestContext, ...objects: string[]): boolean {
  if (process.getuid?.() !== 0) {
    t.skip('needs root (CAP_BPF, CAP_NET_ADMIN)');
    return false;
  }
  for (const o of objects) {
    if (!existsSync(fixture(o))) {
      t.skip(`fixture ${fixture(o)} missing: run bash scripts/build-bpf`);
      return false;
    }
  }
  try {
    ensureBpffs();
  } catch (e) {
    t.skip(`bpffs unavailable: ${(e as Error).message}`);
    return false;
  }
  return true;
}

export function sh(cmd: string, args: string[], opts: { timeout?: number } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

function quiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // cleanup of something already gone
  }
}

/** A pin directory /sys/fs/bpf/tgk-<tag>, removed when the test ends. */
export function pinDir(t: TestContext): string {
  const d = `/sys/fs/bpf/tgk-${tag()}`;
  mkdirSync(d, { recursive: true });
  t.after(() => removePins(d));
  return d;
}

export interface VethPair {
  nsA: string;
  nsB: string;
  ifA: string;
  ifB: string;
  addrA: string;
  addrB: string;
  addr6A: string;
}

/**
 * Two namespaces tgk<tag>a/b joined by a veth pair (tgk<tag>a in A,
 * tgk<tag>b in B), 198.18.211.1/.2 and 2001:2:0:211::1/::2; deleted at the end.
 */
export function vethPair(t: TestContext): VethPair {
  const id = tag();
  const p: VethPair = {
    nsA: `tgk${id}a`,
    nsB: `tgk${id}b`,
    ifA: `tgk${id}a`,
    ifB: `tgk${id}b`,
    addrA: '198.18.211.1',
    addrB: '198.18.211.2',
    addr6A: '2001:2:0:211::1',
  };
  t.after(() => {
    quiet('ip', ['netns', 'del', p.nsA]);
    quiet('ip', ['netns', 'del', p.nsB]);
  });
  sh('ip', ['netns', 'add', p.nsA]);
  sh('ip', ['netns', 'add', p.nsB]);
  sh('ip', ['link', 'add', p.ifA, 'netns', p.nsA, 'type', 'veth', 'peer', 'name', p.ifB, 'netns', p.nsB]);
  const inA = (...a: string[]) => sh('ip', ['-n', p.nsA, ...a]);
  const inB = (...a: string[]) => sh('ip', ['-n', p.nsB, ...a]);
  inA('addr', 'add', `${p.addrA}/30`, 'dev', p.ifA);
  inB('addr', 'add', `${p.addrB}/30`, 'dev', p.ifB);
  inA('-6', 'addr', 'add', `${p.addr6A}/64`, 'dev', p.ifA, 'nodad');
  inB('-6', 'addr', 'add', '2001:2:0:211::2/64', 'dev', p.ifB, 'nodad');
  for (const [run, ifc] of [[inA, p.ifA], [inB, p.ifB]] as const) {
    run('link', 'set', 'lo', 'up');
    run('link', 'set', ifc, 'up');
  }
  return p;
}

/** count pings from namespace ns to addr, bounded to ~count*0.2 s; returns how many were answered. */
export function ping(ns: string, addr: string, count = 5): number {
  try {
    const out = sh('ip', ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-i', '0.05', '-W', '1', addr], { timeout: 15_000 });
    const m = /(\d+) received/.exec(out);
    return m ? Number(m[1]) : 0;
  } catch (e) {
    const out = String((e as { stdout?: string }).stdout ?? '');
    const m = /(\d+) received/.exec(out);
    return m ? Number(m[1]) : 0;
  }
}

/** A cgroup tgk-<tag> under the cgroup2 mount, removed at the end (after its processes exit). */
export function cgroupDir(t: TestContext): string {
  const d = join(cgroup2Root(), `tgk-${tag()}`);
  mkdirSync(d);
  t.after(() => removeCgroup(d)); // after its processes exit
  return d;
}
