// The throwaway places the doctor attaches probes to: a network namespace
// tgd-<pid> holding a veth pair, and a cgroup tgd-<pid> under the cgroup v2
// root. Both are removed by dispose(), which never throws and reports what it
// could not remove.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs a command with a hard time limit; the error message carries its stderr. */
export async function sh(cmd: string, args: string[], timeoutMs = 3000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: timeoutMs, encoding: 'utf8' });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: string | number };
    const why = (err.stderr ?? '').trim() || (err.code === 'ENOENT' ? `${cmd} not found` : err.message);
    throw new Error(`${cmd} ${args.join(' ')}: ${why}`);
  }
}

export const SANDBOX_PREFIX = 'tgd';

export interface NetSandbox {
  netns: string;
  /** veth ends inside netns; probes attach to `dev`. */
  dev: string;
  peer: string;
  dispose(): Promise<string[]>;
}

export async function createNetSandbox(tag: string = String(process.pid)): Promise<NetSandbox> {
  const netns = `${SANDBOX_PREFIX}-${tag}`;
  const dev = `${SANDBOX_PREFIX}0`;
  const peer = `${SANDBOX_PREFIX}1`;
  const dispose = async (): Promise<string[]> => {
    try {
      await sh('ip', ['netns', 'del', netns]);
      return [];
    } catch (e) {
      const msg = (e as Error).message;
      return /No such file|does not exist/i.test(msg) ? [] : [msg];
    }
  };
  // A namespace left by a crashed run with the same pid would make "add" fail.
  if (existsSync(`/run/netns/${netns}`)) await dispose();
  await sh('ip', ['netns', 'add', netns]);
  try {
    await sh('ip', ['-n', netns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', peer]);
    await sh('ip', ['-n', netns, 'link', 'set', dev, 'up']);
    await sh('ip', ['-n', netns, 'link', 'set', peer, 'up']);
  } catch (e) {
    await dispose();
    throw e;
  }
  return { netns, dev, peer, dispose };
}

export interface CgroupSandbox {
  path: string;
  dispose(): string[];
}

export function createCgroupSandbox(root: string, tag: string = String(process.pid)): CgroupSandbox {
  const path = join(root, `${SANDBOX_PREFIX}-${tag}`);
  const dispose = (): string[] => {
    try {
      rmdirSync(path);
      return [];
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return err.code === 'ENOENT' ? [] : [`rmdir ${path}: ${err.message}`];
    }
  };
  if (existsSync(path)) dispose();
  mkdirSync(path);
  return { path, dispose };
}

/**
 * Whether the kernel has a qdisc: adds it as root qdisc of a sandbox device,
 * then removes it. Detail carries tc's own error when it is missing.
 */
export async function probeQdisc(sb: NetSandbox, kind: string, params: string[] = []): Promise<{ ok: boolean; detail: string }> {
  try {
    await sh('tc', ['-n', sb.netns, 'qdisc', 'add', 'dev', sb.dev, 'root', kind, ...params]);
  } catch (e) {
    const msg = (e as Error).message;
    return { ok: false, detail: msg.slice(msg.indexOf(': ') + 2).replace(/^Error: /, '') };
  }
  try {
    await sh('tc', ['-n', sb.netns, 'qdisc', 'del', 'dev', sb.dev, 'root']);
  } catch {
    // the namespace goes away with everything in it anyway
  }
  return { ok: true, detail: `${kind} qdisc created and removed` };
}
