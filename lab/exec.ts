// Running commands inside lab network namespaces (and cgroups), always through
// argv arrays: nothing here builds a shell string out of its inputs.
//
// `ip netns exec NS cmd` execs cmd in place (iproute2 forks only in batch
// mode), so the pid of the spawned child is the pid of cmd itself: killing it
// or reading its /proc entry reaches the real process.

import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { findCgroup2, parseMounts, readMounts } from '../src/kernel/proc-mounts.js';

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly code: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
    reason: string,
  ) {
    super(`${[cmd, ...args].join(' ')}: ${reason}${stderr.trim() ? `: ${stderr.trim().slice(0, 2000)}` : ''}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  /** Kill (SIGKILL) the command after this long; default 30 s. Every command is bounded. */
  timeoutMs?: number;
  /** Resolve with the non-zero exit code instead of throwing. */
  allowFail?: boolean;
  /** Data written to stdin (which is then closed). */
  input?: string | Buffer;
  maxBuffer?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args as string[],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        if (typeof e.code === 'string') {
          return reject(new CommandError(cmd, args, null, null, stdout, stderr, `cannot run (${e.code})`));
        }
        if (e.killed || e.signal) {
          const why = e.killed ? `timed out after ${timeoutMs} ms` : `killed by ${e.signal}`;
          return reject(new CommandError(cmd, args, null, e.signal ?? null, stdout, stderr, why));
        }
        const code = typeof e.code === 'number' ? e.code : 1;
        if (opts.allowFail) return resolve({ code, stdout, stderr });
        reject(new CommandError(cmd, args, code, null, stdout, stderr, `exit code ${code}`));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
function checkNetns(netns: string): string {
  if (!NETNS_RE.test(netns)) throw new Error(`netns: invalid network namespace name ${JSON.stringify(netns)}`);
  return netns;
}

/** `ip args...` (iproute2). */
export function ip(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run('ip', args, opts);
}

/**
 * argv running cmd inside netns, and inside a cgroup v2 directory from its
 * first instruction when given: a tiny /bin/sh trampoline writes its own pid
 * to cgroup.procs and then execs `ip netns exec`, which execs cmd, all under
 * one pid. (The write happens before `ip netns exec`, which remounts /sys.)
 */
function inNetnsArgv(netns: string, cmd: string, args: readonly string[], cgroup: string | undefined): [string, string[]] {
  checkNetns(netns);
  if (cgroup === undefined) return ['ip', ['netns', 'exec', netns, cmd, ...args]];
  if (!cgroup.startsWith('/')) throw new Error(`cgroup: must be an absolute path, got ${JSON.stringify(cgroup)}`);
  // $1 = cgroup dir, $2 = netns, $3.. = command; positional parameters, never interpolated.
  const script = 'echo $$ > "$1/cgroup.procs" || exit 126; shift; exec ip netns exec "$@"';
  return ['/bin/sh', ['-c', script, 'tollgate-lab-spawn', cgroup, netns, cmd, ...args]];
}

/** Runs cmd inside netns (and optionally a cgroup, see SpawnOptions.cgroup) and waits for it. */
export function runInNetns(netns: string, cmd: string, args: readonly string[], opts: RunOptions & { cgroup?: string } = {}): Promise<RunResult> {
  const [c, a] = inNetnsArgv(netns, cmd, args, opts.cgroup);
  return run(c, a, opts);
}

/** Sets sysctls inside netns (`key=value` pairs, e.g. net.ipv4.ip_forward=1). */
export async function sysctlInNetns(netns: string, settings: Record<string, string | number>): Promise<void> {
  const args = ['-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)];
  await runInNetns(netns, 'sysctl', args, { timeoutMs: 10_000 });
}

export interface SpawnOptions {
  /** Absolute cgroup v2 directory the process lives in from its first instruction. */
  cgroup?: string;
  /** Detach into its own process group so the process outlives the caller (lab services). */
  detached?: boolean;
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
}

/** Starts cmd inside netns (and optionally a cgroup) without waiting for it. */
export function spawnInNetns(netns: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const [c, a] = inNetnsArgv(netns, cmd, args, opts.cgroup);
  return spawn(c, a, { detached: opts.detached ?? false, stdio: opts.stdio ?? 'pipe', env: opts.env ?? process.env });
}

/** Waits for a child to exit, killing it (SIGKILL) after timeoutMs. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resolve({ code: child.exitCode, signal: child.signalCode });
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** The cgroup2 mount point (/sys/fs/cgroup/unified on hybrid hosts), from /proc/mounts or the given text. */
export function findCgroup2Mount(mountsText?: string): string {
  const found = findCgroup2(mountsText === undefined ? readMounts() : parseMounts(mountsText));
  if (found === undefined) {
    throw new Error('no cgroup2 file system is mounted (looked in /proc/mounts); mount one with: mount -t cgroup2 none /sys/fs/cgroup/unified');
  }
  return found;
}

/** The cgroup v2 path of pid relative to the cgroup2 mount ("/tollgate-lab/tg/tenant-1"), or null when gone. */
export function cgroupOfPid(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('0::'));
    return line ? line.slice(3) : null;
  } catch {
    return null;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface HttpResult {
  status: number;
  /** Body bytes received. */
  bytes: number;
  body: string;
}

/**
 * An HTTP request made from inside netns with curl (bounded). The body is kept
 * only when small; `bytes` always counts everything received.
 */
export async function httpFromNetns(
  netns: string,
  url: string,
  opts: { method?: 'GET' | 'POST'; uploadBytes?: number; timeoutMs?: number; keepBody?: boolean } = {},
): Promise<HttpResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const args = ['-sS', '-g', '--max-time', String(Math.max(1, Math.ceil(timeoutMs / 1000))), '-X', opts.method ?? 'GET'];
  if (opts.uploadBytes !== undefined) {
    args.push('--data-binary', '@-', '-H', 'content-type: application/octet-stream');
  }
  if (opts.keepBody) args.push('-w', '\n%{http_code} %{size_download}');
  else args.push('-o', '/dev/null', '-w', '%{http_code} %{size_download}');
  args.push('--', url);
  const input = opts.uploadBytes !== undefined ? Buffer.alloc(opts.uploadBytes, 0x61) : undefined;
  const r = await runInNetns(netns, 'curl', args, { timeoutMs: timeoutMs + 2000, input });
  const nl = r.stdout.lastIndexOf('\n');
  const tail = opts.keepBody ? r.stdout.slice(nl + 1) : r.stdout;
  const [status, bytes] = tail.trim().split(' ').map(Number);
  return { status: status ?? 0, bytes: bytes ?? 0, body: opts.keepBody ? r.stdout.slice(0, nl) : '' };
}
