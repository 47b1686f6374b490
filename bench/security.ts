// Firewall benchmarks, side by side in one run, on the attacker's host-side
// veth of a lab (the interface a flood enters through):
//  1. flood drop rate with a 10,000-prefix deny set: our datapath in its best
//     mode for veth (tc, tg_filter_ingress on an interface that is only
//     filtered) against nftables netdev ingress with the same prefixes in an
//     interval set and the same bounded 64-byte trafgen flood, interleaved
//     round by round, each rate net of trafgen's start-up; beside them the
//     floor, a tc program that drops every packet unread (what no filter on
//     this hook can beat);
//  2. legitimate TCP (internet -> tenant, iperf3) during such a flood, ours
//     against nftables;
//  3. our filter's ns per packet under the flood (bpf_stats);
//  4. policy update latency end to end: PUT /v1/security/rules on a running
//     agent to the first packet the new rules drop, dated in the kernel by a
//     tc program ahead of the filter (bench_noop's tg_clock), for one rule
//     and for a 10,000-prefix set, p50/p99, with the response, the moment
//     the bench sees the drop and the agent's own handling beside it;
//  5. events from the kernel to the API stream (bench/events.ts; --skip-events).
// --skip-floods runs only parts 4 and 5.
// The deny prefixes are /29s of 198.18.0.0/15 around the lab's subnets (the
// attacker's /29 among them); nothing leaves the lab.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BpfMap, BpfObject, type BpfLink, enableBpfStats, ifindexOf, progInfo, removePins, TypedMap, u32, u64, withNetns } from '../src/kernel/index.js';
import { TG_FW_DROPPED } from '../src/kernel/abi.gen.js';
import { callAgent } from '../src/api/client.js';
import { bpfObjectPath } from '../src/paths.js';
import { cleanupAgentDir, startAgentProcess, type AgentProcess } from '../test/helpers/agent.js';
import { findNode, iperf3Transfer, labDown, labUp, pinDirPath, runInNetns, tenantNodes, trafgenBurst, trafgenTrickle, type EndpointNode, type Topology } from '../lab/index.js';
import { MeteringDatapath } from '../src/metering/datapath.js';
import { compileMetering, parsePolicy, type Policy } from '../src/policy/index.js';
import { assignSlots, compileFirewall, slotNames } from '../src/firewall/compile.js';

/** Update rounds of each kind run before the timed ones (cold code, first writes of a generation). */
const WARMUP = 10;
interface ApiSample {
  /** From the call to the first packet the update dropped, dated by the kernel (tg_clock). */
  drop: number;
  /** From the call to its response. */
  http: number;
  /** From the call to the bench seeing the drop counter move (after the response). */
  seen: number;
  /** What the agent reports it spent on the call. */
  agentMs: number;
}
/** Slots of tg_clock's ring (bench_noop.bpf.c TG_CLOCK_RING). */
const CLOCK_RING = 4096;
/** Spacing of the probe packets that show when an update starts dropping. */
const PROBE_GAP_US = 250;
/** Frames of the burst that measures trafgen's start-up (see pps). */
const STARTUP_PROBE = 2000;
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1000));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
const kpps = (pps: number): string => `${(pps / 1e3).toFixed(0)} kpps`;
const gbit = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;

/** 10,000 /29s of 198.18.0.0/15 that miss the lab's own /24s, the attacker's /29 (198.19.1.0/29) included. */
function denyPrefixes(topo: Topology, n: number): string[] {
  const lab = new Set(topo.nodes.flatMap((x) => (x.role === 'host' || x.role === 'attacker' ? [] : [x.ipv4!.replace(/\.\d+$/, '')])));
  const out = ['198.19.1.0/29'];
  for (let i = 0; out.length < n && i < 16384; i++) {
    const a = 198 * 2 ** 24 + 18 * 2 ** 16 + i * 8;
    const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
    if (lab.has(text.replace(/\.\d+$/, '')) || text.startsWith('198.19.1.')) continue;
    out.push(`${text}/29`);
  }
  if (out.length < n) throw new Error(`only ${out.length} prefixes fit`);
  return out;
}

function policyYaml(attacker: EndpointNode, tenant: EndpointNode, prefixes: readonly string[]): string {
  return `version: 1
tenants:
  - name: ${tenant.name}
    selectors: { cidrs: [${tenant.ipv4}/32] }
security:
  interfaces: [{ name: ${attacker.hostIface}, mode: tc }]
  rules:
    - name: blocklist
      action: deny
      direction: both
      src: [${prefixes.join(', ')}]
`;
}

/** Our datapath, loaded and attached, with the rules written and switched in, as the agent does it, in this process. */
function startOurs(topo: Topology, pinRoot: string, doc: Policy): { dp: MeteringDatapath; stop(): void } {
  const dp = MeteringDatapath.open({ pinRoot });
  const tenantIds = new Map(doc.tenants.map((t, i) => [t.name, i + 1]));
  withNetns(topo.hostNetns, () => dp.install(compileMetering(doc, { tenantIds, ifindexOf: (n) => ifindexOf(n), generation: dp.liveGeneration() === 0 ? 1 : 0 })));
  const { slots, fresh } = assignSlots(new Map(), slotNames(doc.security!));
  dp.firewall.apply(compileFirewall(doc.security!, { generation: dp.firewall.idleGeneration(), tenantIds, slots }), fresh);
  return {
    dp,
    stop() {
      dp.close();
      removePins(pinRoot);
    },
  };
}

async function startNft(topo: Topology, iface: string, prefixes: readonly string[]): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-nft-'));
  const file = join(dir, 'rules.nft');
  writeFileSync(file, `table netdev tgbench {
  set deny { type ipv4_addr; flags interval; elements = { ${prefixes.join(', ')} } }
  chain ingress { type filter hook ingress device "${iface}" priority 0; policy accept; ip saddr @deny drop; }
}
`);
  await runInNetns(topo.hostNetns, 'nft', ['-f', file], { timeoutMs: 60_000 });
  rmSync(dir, { recursive: true, force: true });
  return async () => {
    await runInNetns(topo.hostNetns, 'nft', ['delete', 'table', 'netdev', 'tgbench'], { timeoutMs: 30_000 });
  };
}

interface Lab {
  topo: Topology;
  tenant: EndpointNode;
  attacker: EndpointNode;
  prefixes: string[];
  pinRoot: string;
}

/** Parts 1-3: the floods, ours against nftables and the floor; the table rows. */
async function floodParts(lab: Lab, o: { rounds: number; flood: number; seconds: number }): Promise<string[]> {
  const { topo, tenant, attacker, prefixes, pinRoot } = lab;
  const { rounds, flood, seconds } = o;
  const internet = findNode(topo, 'internet');
  const doc = parsePolicy(policyYaml(attacker, tenant, prefixes), 'bench policy');
  // ---- 1. flood drop rate -------------------------------------------------
  // A burst's time includes starting trafgen (tens of ms, through ip netns
  // exec); a small burst just before measures it, and the rate is taken
  // over the difference: the flood's packets per second, start-up excluded.
  const burstSeconds = async (n: number): Promise<number> => {
    const t0 = performance.now();
    await trafgenBurst(attacker, tenant, n, 18, { receive: false });
    return (performance.now() - t0) / 1000;
  };
  const pps = async (): Promise<number> => {
    await settle();
    const startup = await burstSeconds(STARTUP_PROBE);
    return (flood - STARTUP_PROBE) / (await burstSeconds(flood) - startup);
  };
  const ours: number[] = [];
  const nft: number[] = [];
  const floor: number[] = [];
  // The floor: a tc program that drops every packet unread (bench_noop's tg_drop_all).
  const floors = BpfObject.open(bpfObjectPath('tests/bench_noop'));
  floors.load();
  const floorArm = async () => {
    const link = withNetns(topo.hostNetns, () => floors.program('tg_drop_all').attachTcx(ifindexOf(attacker.hostIface!), 'ingress'));
    try {
      floor.push(await pps());
    } finally {
      link.close();
    }
  };
  const oursArm = async () => {
    const a = startOurs(topo, pinRoot, doc);
    try {
      ours.push(await pps());
    } finally {
      a.stop();
    }
  };
  const nftArm = async () => {
    const stop = await startNft(topo, attacker.hostIface!, prefixes);
    try {
      nft.push(await pps());
    } finally {
      await stop();
    }
  };
  console.log(`flood: ${rounds} rounds x ${flood} x 64-byte frames (trafgen, rate net of its start-up), ours (tc) / nftables netdev ingress, order alternating; then a tc program that drops everything unread`);
  try {
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) { await oursArm(); await nftArm(); } else { await nftArm(); await oursArm(); }
      await floorArm();
      console.log(`  round ${i + 1}: ours ${kpps(ours[i]!)}, nftables ${kpps(nft[i]!)}, tc drop-all floor ${kpps(floor[i]!)}`);
    }
  } finally {
    floors.close();
  }

  // ---- 2. legitimate TCP during a flood -----------------------------------
  // The flood is bounded: enough 64-byte frames to outlast the transfer at this host's rates.
  const floodDuring = Math.min(5_000_000, Math.round(median(ours) * (seconds + 2)));
  const tcpOurs: number[] = [];
  const tcpNft: number[] = [];
  const tcpRound = async (port: number): Promise<number> => {
    await settle();
    const f = trafgenBurst(attacker, tenant, floodDuring, 18, { receive: false, timeoutMs: 120_000 });
    const { bitsPerSecond: bps } = await iperf3Transfer(internet, tenant, 1, { seconds, port });
    await f;
    return bps;
  };
  const tcpRounds = Math.max(3, Math.ceil(rounds / 2));
  console.log(`TCP during a flood: ${tcpRounds} rounds, iperf3 internet -> ${tenant.name} for ${seconds} s while ${floodDuring} frames flood in`);
  for (let i = 0; i < tcpRounds; i++) {
    const a = startOurs(topo, pinRoot, doc);
    try { tcpOurs.push(await tcpRound(46000 + 2 * i)); } finally { a.stop(); }
    const stop = await startNft(topo, attacker.hostIface!, prefixes);
    try { tcpNft.push(await tcpRound(46001 + 2 * i)); } finally { await stop(); }
    console.log(`  round ${i + 1}: ours ${gbit(tcpOurs[i]!)}, nftables ${gbit(tcpNft[i]!)}`);
  }

  // ---- 3. ns/packet -----------------------------------------------------------
  let nsPerPacket = NaN;
  const disableStats = enableBpfStats();
  try {
    const agent = startOurs(topo, pinRoot, doc);
    try {
      const prog = agent.dp.program('tg_filter_ingress');
      const s0 = progInfo(prog.fd);
      await trafgenBurst(attacker, tenant, flood, 18, { receive: false });
      const s1 = progInfo(prog.fd);
      nsPerPacket = Number(s1.runTimeNs - s0.runTimeNs) / Number(s1.runCnt - s0.runCnt);
    } finally {
      agent.stop();
    }
  } finally {
    disableStats();
  }
  const rows: string[] = [];
  rows.push(`| flood drop rate, ours (tc, ${prefixes.length}-prefix deny set, median) | ${kpps(median(ours))} |`);
  rows.push(`| flood drop rate, nftables netdev ingress, same set (median) | ${kpps(median(nft))} |`);
  rows.push(`| **drop rate ratio ours/nftables** (target >= 1.3) | **${(median(ours) / median(nft)).toFixed(3)}** (paired median ${median(ours.map((v, i) => v / nft[i]!)).toFixed(3)}) |`);
  rows.push(`| flood drop rate, tc drop-all floor (median) | ${kpps(median(floor))} |`);
  rows.push(`| ours / floor: how much of the most a tc program can drop here | ${(median(ours) / median(floor)).toFixed(3)} (floor / nftables ${(median(floor) / median(nft)).toFixed(3)}) |`);
  rows.push(`| our filter ns/packet under the flood (bpf_stats) | ${nsPerPacket.toFixed(1)} |`);
  rows.push(`| TCP during the flood, ours (median) | ${gbit(median(tcpOurs))} |`);
  rows.push(`| TCP during the flood, nftables (median) | ${gbit(median(tcpNft))} |`);
  rows.push(`| **TCP during the flood ratio ours/nftables** | **${(median(tcpOurs) / median(tcpNft)).toFixed(3)}** |`);
  return rows;
}

/**
 * Part 4: API call to first drop on the real agent; the table rows.
 * A steady trickle from the attacker (a /32 no rule holds while the rules
 * are off), then the call that sets the rules. Alternating on/off, so
 * every update changes a verdict. tg_clock, attached ahead of the agent's
 * filter, dates every packet in the kernel (CLOCK_MONOTONIC, as
 * process.hrtime): once tg_fw_stats counts d drops after the call, the
 * first of them was the d-th packet from the last one tg_clock saw.
 */
async function apiParts(lab: Lab, updates: number): Promise<string[]> {
  const { topo, tenant, attacker, prefixes, pinRoot } = lab;
  const apiOne: ApiSample[] = [];
  const apiMany: ApiSample[] = [];
  const firstCall: number[] = []; // the first call of each kind after the agent started (cold code), not counted
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-api-'));
  const config = join(dir, 'policy.yaml');
  writeFileSync(config, `version: 1
tenants:
  - name: ${tenant.name}
    selectors: { cidrs: [${tenant.ipv4}/32] }
security:
  interfaces: [{ name: ${attacker.hostIface}, mode: tc }]
`);
  const clockObj = BpfObject.open(bpfObjectPath('tests/bench_noop'));
  let clockLink: BpfLink | undefined;
  let real: AgentProcess | undefined;
  let statsMap: BpfMap | undefined;
  try {
    clockObj.load();
    const clock = new TypedMap(clockObj.map('tg_clock_ring'), u32, u64);
    // Attached before the agent starts, so it runs ahead of the agent's filter (tcx appends).
    clockLink = withNetns(topo.hostNetns, () => clockObj.program('tg_clock').attachTcx(ifindexOf(attacker.hostIface!), 'ingress'));
    // The agent's default export interval (10 s), not the tests' 1 s.
    real = await startAgentProcess({ config, netns: topo.hostNetns, pinRoot, dir, interval: '10s' });
    statsMap = BpfMap.openPinned(join(pinRoot, 'maps', 'tg_fw_stats'));
    const dropped = new TypedMap(statsMap, u32, u64);
    const drops = () => dropped.getSum(TG_FW_DROPPED) ?? 0n;
    const seenBy = () => clock.get(0) ?? 0n;
    const socket = real.socket;
    const put = (rules: unknown[]) => callAgent<{ ms: number }>(socket, 'PUT', '/v1/security/rules', 30_000, { rules });
    /** When the first of the `d` packets dropped since the call reached the hook: a count read between two equal tg_clock counts. */
    const firstDropNs = async (base: bigint): Promise<bigint> => {
      for (;;) {
        const n = seenBy();
        const d = drops() - base;
        if (seenBy() !== n) continue;
        if (d < 1n || d >= BigInt(CLOCK_RING)) throw new Error(`${d} drops since the call: the clock ring holds ${CLOCK_RING}`);
        await new Promise((r) => setTimeout(r, 2)); // a packet counted but not yet dated is dated by then
        return clock.get(1 + Number((n - d) % BigInt(CLOCK_RING)))!;
      }
    };
    const trickle = trafgenTrickle(attacker, tenant, PROBE_GAP_US, updates * 4 + 60);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const measure = async (rules: unknown[]): Promise<ApiSample> => {
        const base = drops();
        const t0 = process.hrtime.bigint();
        const ms = (t: bigint) => Number(t - t0) / 1e6;
        const { ms: agentMs } = await put(rules);
        const http = ms(process.hrtime.bigint());
        for (;;) {
          if (drops() > base) {
            const seen = ms(process.hrtime.bigint());
            const drop = ms(await firstDropNs(base));
            if (drop < 0 || drop > seen) throw new Error(`the first drop dated ${drop.toFixed(3)} ms after the call, outside 0..${seen.toFixed(3)}: clocks disagree`);
            return { drop, http, seen, agentMs };
          }
          await new Promise((r) => setImmediate(r));
          if (ms(process.hrtime.bigint()) > 5000) throw new Error('no packet dropped within 5 s of the API call');
        }
      };
      const off = async () => {
        await put([]);
        await new Promise((r) => setTimeout(r, 20)); // packets already past the switch land before the next base
      };
      const oneRule = [{ name: 'probe', action: 'deny', direction: 'both', src: [`${attacker.ipv4}/32`] }];
      const bigSet = [{ name: 'blocklist', action: 'deny', direction: 'both', src: prefixes }];
      for (const [rules, out] of [[oneRule, apiOne], [bigSet, apiMany]] as const) {
        for (let i = 0; i < WARMUP + updates; i++) {
          const sample = await measure(rules);
          if (i >= WARMUP) out.push(sample);
          else if (i === 0) firstCall.push(sample.drop);
          await off();
        }
      }
    } finally {
      await trickle.stop();
    }
  } finally {
    statsMap?.close();
    await real?.stop();
    if (real) cleanupAgentDir(real);
    else rmSync(dir, { recursive: true, force: true });
    clockLink?.close();
    clockObj.close();
  }
  const rows: string[] = [];
  for (const [what, xs, target] of [['one rule', apiOne, 'p99 <= 5 ms'], [`${prefixes.length}-prefix set`, apiMany, 'p99 <= 100 ms']] as const) {
    const q = (f: (x: ApiSample) => number) => `${quantile(xs.map(f), 0.5).toFixed(2)} / ${quantile(xs.map(f), 0.99).toFixed(2)} ms`;
    rows.push(`| **API call to first drop, ${what}**: PUT /v1/security/rules on the running agent to the first packet dropped, dated in the kernel, p50 / p99 (target ${target}) | **${q((x) => x.drop)}** (${xs.length} calls) |`);
    rows.push(`| the same calls: to the response / to the bench seeing the drop counter move / the agent's own handling (as it reports), p50 / p99 | ${q((x) => x.http)}; ${q((x) => x.seen)}; ${q((x) => x.agentMs)} |`);
  }
  rows.push(`| the first call after the agent started (cold code; not counted above), one rule / ${prefixes.length}-prefix set, to first drop | ${firstCall.map((x) => x.toFixed(1)).join(' / ')} ms |`);
  rows.push('', `(each kind in its own series after ${WARMUP} warm-up calls; a UDP packet from the attacker every ${PROBE_GAP_US} us (trafgen), so the first drop comes up to ${PROBE_GAP_US / 1000} ms after the switch; tg_clock dates packets ahead of the filter with bpf_ktime_get_ns, the call's start is process.hrtime: both CLOCK_MONOTONIC)`);
  return rows;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '7' }, flood: { type: 'string', default: '2000000' }, prefixes: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '4' }, updates: { type: 'string', default: '200' },
      'skip-events': { type: 'boolean', default: false }, 'skip-floods': { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  const flood = Number(values.flood);
  const nPrefixes = Number(values.prefixes);
  const seconds = Number(values.seconds);
  const updates = Number(values.updates);
  for (const [name, n, lo, hi] of [['--rounds', rounds, 1, 100], ['--flood', flood, 100_000, 5_000_000], ['--prefixes', nPrefixes, 1, 15000], ['--seconds', seconds, 1, 30], ['--updates', updates, 1, 1000]] as const) {
    if (!Number.isInteger(n) || n < lo || n > hi) throw new RangeError(`${name} must be an integer from ${lo} to ${hi}, got ${n}`);
  }
  const prefix = 'tgbs';
  const pinRoot = pinDirPath(prefix);
  await labDown(prefix);
  const topo = await labUp({ prefix, tenants: 1 });
  const [tenant] = tenantNodes(topo);
  const attacker = findNode(topo, 'attacker');
  const prefixes = denyPrefixes(topo, nPrefixes);
  try {
    console.log(`security bench: lab ${topo.hostNetns}, flood attacker (${attacker.ipv4}) -> ${tenant!.name}, dropped at ${attacker.hostIface} ingress by a ${prefixes.length}-prefix deny set`);

    const lab: Lab = { topo, tenant: tenant!, attacker, prefixes, pinRoot };
    const rows = values['skip-floods'] ? [] : await floodParts(lab, { rounds, flood, seconds });
    rows.push(...await apiParts(lab, updates));
    console.log('');
    console.log('| measure | value |');
    console.log('|---|---|');
    for (const row of rows) console.log(row);
  } finally {
    await labDown(prefix);
  }
  if (!values['skip-events']) {
    console.log('');
    await (await import('./events.js')).main([]);
  }
}
