// `tollgate doctor`: probes the host and returns one check per feature
// tollgate relies on. Nothing it creates outlives the run: the sandbox
// network namespace and cgroup are removed and every probe link is closed,
// also when a probe fails.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { cgroup2Root } from '../kernel/index.js';
import { hostChecks } from './host.js';
import { checkLibbpf } from './libbpf-version.js';
import { runProbes, type ProbeEnv } from './probes.js';
import { makeReport, type DoctorCheck, type DoctorReport } from './report.js';
import { createCgroupSandbox, createNetSandbox, probeQdisc, type CgroupSandbox, type NetSandbox } from './sandbox.js';

export { formatDoctorTable, makeReport, statusOf, type DoctorCheck, type DoctorReport } from './report.js';
export { cgroup2Root } from '../kernel/index.js';

export interface DoctorOptions {
  /** The compiled probe object; default build/bpf/doctor.bpf.o of this package. */
  objectPath?: string;
  /** Suffix of the sandbox names (tgd-<tag>); default the process id. */
  tag?: string;
}

async function qdiscChecks(sb: NetSandbox | undefined, sbError: string | undefined): Promise<DoctorCheck[]> {
  const kinds: Array<[string, string[], string]> = [
    ['htb', ['default', '1'], 'egress bandwidth classes'],
    ['tbf', ['rate', '1mbit', 'burst', '32kbit', 'latency', '400ms'], 'simple rate limits'],
    ['fq', [], 'EDT pacing (skb->tstamp)'],
  ];
  const out: DoctorCheck[] = [];
  for (const [kind, params, use] of kinds) {
    const name = `qdisc.${kind}`;
    if (!sb) {
      out.push({ name, required: false, ok: false, detail: `not probed: ${sbError}` });
      continue;
    }
    const r = await probeQdisc(sb, kind, params);
    out.push({
      name,
      required: false,
      ok: r.ok,
      detail: r.ok ? `${r.detail} (${use})` : `absent: ${r.detail} (${use} unavailable)`,
    });
  }
  return out;
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs every check; concurrent calls in one process run one after the other (they share the sandbox names). */
export function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const next = queue.then(() => doctor(opts));
  queue = next.catch(() => undefined);
  return next;
}

async function doctor(opts: DoctorOptions): Promise<DoctorReport> {
  if (opts.tag !== undefined && !/^[A-Za-z0-9_-]{1,10}$/.test(opts.tag))
    throw new RangeError(`runDoctor: tag must be 1-10 characters of [A-Za-z0-9_-], got '${opts.tag}'`);
  const objectPath = opts.objectPath ?? join(packageRoot, 'build', 'bpf', 'doctor.bpf.o');
  const checks: DoctorCheck[] = [...hostChecks(), checkLibbpf()];

  let net: NetSandbox | undefined;
  let cg: CgroupSandbox | undefined;
  const env: ProbeEnv = { objectPath };
  const leftovers: string[] = [];
  try {
    try {
      net = await createNetSandbox(opts.tag);
      env.netns = { name: net.netns, dev: net.dev };
    } catch (e) {
      env.netns = { error: (e as Error).message };
    }
    try {
      cg = createCgroupSandbox(cgroup2Root(), opts.tag);
      env.cgroup = { path: cg.path };
    } catch (e) {
      env.cgroup = { error: (e as Error).message };
    }
    checks.push(...(await qdiscChecks(net, 'error' in env.netns ? env.netns.error : undefined)));
    if (!existsSync(objectPath))
      checks.push({ name: 'bpf_object', required: true, ok: false, detail: `${objectPath} is missing`, fix: 'bash scripts/build-bpf' });
    checks.push(...runProbes(env));
  } finally {
    // links are closed by each probe; what is left is the sandbox itself
    if (cg) leftovers.push(...cg.dispose());
    if (net) leftovers.push(...(await net.dispose()));
  }
  const made = [net && `netns ${net.netns}`, cg && `cgroup ${cg.path}`].filter(Boolean).join(' and ');
  checks.push(
    leftovers.length === 0
      ? { name: 'cleanup', required: false, ok: true, detail: made ? `removed ${made}` : 'nothing to remove' }
      : { name: 'cleanup', required: true, ok: false, detail: `left behind: ${leftovers.join('; ')}` },
  );
  return makeReport(checks);
}
