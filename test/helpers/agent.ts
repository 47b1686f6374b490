// Runs the real `tollgate agent` as a child process (through tsx, so tests do
// not depend on a prior build) and talks to it over its unix socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../../src/paths.js';
import { callAgent } from '../../src/api/client.js';
import { removePins } from '../../src/kernel/index.js';
import { lockFile } from '../../src/daemon/lock.js';
import { labDown, labUp, pinDirPath, type Topology } from '../../lab/index.js';
import type { SecurityEvent } from '../../src/events/event.js';

export const cliEntry = join(packageRoot, 'src', 'cli', 'main.ts');

export interface AgentProcess {
  child: ChildProcess;
  socket: string;
  db: string;
  pinRoot: string;
  dir: string;
  output(): string;
  call<T>(method: 'GET' | 'POST', path: string): Promise<T>;
  /** SIGTERM and wait (final export); SIGKILL after the timeout. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

export interface StartAgentOptions {
  config: string;
  netns?: string;
  pinRoot: string;
  interval?: string;
  /** Reuse the ledger and socket of an earlier agent (a restart). */
  dir?: string;
  extraArgs?: string[];
  /** Extra environment for the agent (e.g. TOLLGATE_TEST_FAULT). */
  env?: NodeJS.ProcessEnv;
}

/** Runs the CLI once and returns stdout (throws with stderr on failure). */
export async function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c))); // 'close', not 'exit': stdout read to its end
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function startAgentProcess(o: StartAgentOptions): Promise<AgentProcess> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'tollgate-agent-'));
  const socket = join(dir, 'agent.sock');
  const db = join(dir, 'ledger.db');
  const args = ['--import', 'tsx', cliEntry, '--socket', socket, 'agent', '--config', o.config, '--db', db,
    '--pin-root', o.pinRoot, '--interval', o.interval ?? '1s', '--log-level', 'warn', ...(o.netns ? ['--netns', o.netns] : []),
    ...(o.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const call = <T>(method: 'GET' | 'POST', path: string) => callAgent<T>(socket, method, path);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agent exited with ${child.exitCode ?? child.signalCode} before serving:\n${out}`);
    try {
      await call('GET', '/v1/health');
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`agent did not serve ${socket} within 30 s:\n${out}`);
      }
      await sleep(100);
    }
  }
  return {
    child, socket, db, pinRoot: o.pinRoot, dir,
    output: () => out,
    call,
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

export function cleanupAgentDir(a: Pick<AgentProcess, 'dir' | 'pinRoot'>): void {
  rmSync(a.dir, { recursive: true, force: true });
  rmSync(lockFile(a.pinRoot), { force: true }); // left behind by a killed agent
  removePins(a.pinRoot);
}

export interface LabAgent {
  topo: Topology;
  agent: AgentProcess;
  /** The policy file the agent runs on (rewrite it and reload to change the policy). */
  policy: string;
  /** Stops the agent and removes its files, pins and the lab. */
  close(): Promise<void>;
}

/**
 * A lab of its own (`prefix`, `tenants`) with the real agent running as its
 * host on the policy `policy(topo)` writes. Whatever was made is removed
 * again when starting fails.
 */
export async function startLabAgent(o: { prefix: string; tenants: number; policy: (topo: Topology) => string }): Promise<LabAgent> {
  const dir = mkdtempSync(join(tmpdir(), `tollgate-${o.prefix}-`));
  let agent: AgentProcess | undefined;
  const close = async (): Promise<void> => {
    await agent?.stop().catch(() => undefined);
    if (agent) cleanupAgentDir(agent);
    await labDown(o.prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const topo = await labUp({ prefix: o.prefix, tenants: o.tenants });
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, o.policy(topo));
    agent = await startAgentProcess({ config: policy, netns: topo.hostNetns, pinRoot: pinDirPath(o.prefix), dir });
    return { topo, agent, policy, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export type UsageRow = {
  tenant: string; class: string; billable: boolean; direction: 'ingress' | 'egress'; packets: number; bytes: number;
};
export type UsageTable = Map<string, { packets: number; bytes: number }>;

/** Flushes, then returns usage keyed "tenant/direction", summed over classes. */
export async function flushedUsage(a: AgentProcess): Promise<UsageTable> {
  await a.call('POST', '/v1/flush');
  const r = await a.call<{ rows: Array<Omit<UsageRow, 'class' | 'billable'>> }>('GET', '/v1/usage?by=tenant');
  return new Map(r.rows.map((x) => [`${x.tenant}/${x.direction}`, { packets: x.packets, bytes: x.bytes }]));
}

/**
 * Flushes, then returns usage keyed "tenant/class/direction". With
 * `billable`, only the rows exported with that billable flag (e.g. false:
 * everything that will not be billed).
 */
export async function flushedClassUsage(a: AgentProcess, opts: { billable?: boolean } = {}): Promise<UsageTable> {
  await a.call('POST', '/v1/flush');
  const r = await a.call<{ rows: UsageRow[] }>('GET', '/v1/usage?by=tenant-class');
  const out: UsageTable = new Map();
  for (const x of r.rows) {
    if (opts.billable !== undefined && x.billable !== opts.billable) continue;
    // A class whose billable flag changed has a row per flag: one counter, summed.
    const key = `${x.tenant}/${x.class}/${x.direction}`;
    const v = out.get(key) ?? { packets: 0, bytes: 0 };
    out.set(key, { packets: v.packets + x.packets, bytes: v.bytes + x.bytes });
  }
  return out;
}

/** after - before for every key of either. */
export function usageDelta(before: UsageTable, after: UsageTable): UsageTable {
  const out: UsageTable = new Map();
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    const a = after.get(k) ?? { packets: 0, bytes: 0 };
    const b = before.get(k) ?? { packets: 0, bytes: 0 };
    const d = { packets: a.packets - b.packets, bytes: a.bytes - b.bytes };
    if (d.packets !== 0 || d.bytes !== 0) out.set(k, d);
  }
  return out;
}

/** The agent's stored security events of one type, oldest first (at most 100). */
export async function securityEvents(agent: Pick<AgentProcess, 'call'>, type: string): Promise<SecurityEvent[]> {
  return (await agent.call<{ events: SecurityEvent[] }>('GET', `/v1/security/events?type=${encodeURIComponent(type)}&limit=100`)).events;
}

/** Waits up to ms for at least n stored events of one type (events reach the store a few ms after the datapath sends them). */
export async function waitForEvents(agent: Pick<AgentProcess, 'call'>, type: string, n: number, ms: number): Promise<SecurityEvent[]> {
  const deadline = Date.now() + ms;
  let e = await securityEvents(agent, type);
  while (e.length < n && Date.now() < deadline) {
    await sleep(100);
    e = await securityEvents(agent, type);
  }
  return e;
}
