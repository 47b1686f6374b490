// Metering overhead, side by side in one run:
//  1. TCP throughput across the lab (tenant -> internet through the lab host)
//     with no program and with the agent's metering datapath attached (the
//     agent's own code, policy and maps, loaded in this process), interleaved
//     round by round so drift on this shared host hits both alike;
//  2. the meter's cost per packet from bpf_stats (run_time_ns / run_cnt)
//     during those transfers and under a bounded 64-byte trafgen flood,
//     next to floors on the same hook under the same flood: a do-nothing tcx
//     program (what running any program costs, stats included), one that only
//     makes the meter's header read, and the least a meter can do.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BpfLink, BpfObject, enableBpfStats, ifindexOf, linkInfo, progInfo, progInfoById, removePins, withNetns, type BpfProgram } from '../src/kernel/index.js';
import { bpfObjectPath } from '../src/paths.js';
import {
  examplePolicyYaml, findNode, labDown, labUp, pinDirPath, runInNetns, spawnInNetns, tenantNodes, trafgenBurst, udpFrame, waitExit,
  type EndpointNode,
} from '../lab/index.js';
import { MeteringDatapath } from '../src/metering/datapath.js';
import { compileMetering, DEFAULT_CLASS, parsePolicy } from '../src/policy/index.js';
import { pmacctComparison } from './pmacct.js';

interface RunStats {
  runTimeNs: bigint;
  runCnt: bigint;
}

/**
 * Every measured run, with or without the meter, starts after the same
 * pause: loading and attaching (or detaching) programs leaves kernel work
 * behind (RCU callbacks, freeing maps) that would otherwise land in the
 * first run after it, which is always a metered one.
 */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1000));

async function iperf(from: EndpointNode, to: EndpointNode, seconds: number, port: number): Promise<number> {
  await settle();
  const server = spawnInNetns(to.netns, 'iperf3', ['-s', '-1', '-p', String(port)], { stdio: 'ignore' });
  const exited = waitExit(server, (seconds + 20) * 1000);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await runInNetns(from.netns, 'iperf3', ['-c', to.ipv4, '-p', String(port), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 15) * 1000 });
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
    await exited;
  }
}

/** Summed bpf_stats of the programs behind the agent's pinned links. */
function agentStats(pinRoot: string): RunStats {
  const s: RunStats = { runTimeNs: 0n, runCnt: 0n };
  const dir = join(pinRoot, 'links');
  for (const f of readdirSync(dir)) {
    const link = BpfLink.openPinned(join(dir, f));
    try {
      const info = progInfoById(linkInfo(link.fd).progId);
      s.runTimeNs += info.runTimeNs;
      s.runCnt += info.runCnt;
    } finally {
      link.close();
    }
  }
  return s;
}

const delta = (a: RunStats, b: RunStats): RunStats => ({ runTimeNs: b.runTimeNs - a.runTimeNs, runCnt: b.runCnt - a.runCnt });
const nsPer = (s: RunStats): number => (s.runCnt > 0n ? Number(s.runTimeNs) / Number(s.runCnt) : NaN);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gbit = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;
const kpps = (pps: number): string => `${(pps / 1e3).toFixed(0)} kpps`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '7' }, 'udp-rounds': { type: 'string', default: '15' }, seconds: { type: 'string', default: '4' },
      flood: { type: 'string', default: '300000' },
      'skip-pmacct': { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  // UDP rounds are short (~1 s a pair) and this host's noise is larger than the margins: more of them steady the median.
  const udpRounds = Number(values['udp-rounds']);
  for (const [name, n] of [['--rounds', rounds], ['--udp-rounds', udpRounds]] as const) {
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new RangeError(`${name} must be an integer from 1 to 100, got ${n}`);
  }
  const seconds = Number(values.seconds);
  const flood = Number(values.flood);
  const prefix = 'tgbm';
  const pinRoot = pinDirPath(prefix);
  await labDown(prefix);
  const topo = await labUp({ prefix, tenants: 1 });
  const [tenant] = tenantNodes(topo);
  const internet = findNode(topo, 'internet');
  const off: number[] = [];
  const on: number[] = [];
  let tcpStats: RunStats = { runTimeNs: 0n, runCnt: 0n };
  // bpf_stats stays off while throughput is measured: it adds two clock reads
  // to every program run, which production (kernel.bpf_stats_enabled=0) never pays.
  let disableStats = (): void => undefined;
  // The agent's datapath, loaded and attached in this (otherwise idle) process
  // exactly as the agent does it, so no agent start-up lands in a timed window.
  const doc = parsePolicy(examplePolicyYaml(topo), 'example policy');
  const tenantIds = new Map(doc.tenants.map((t, i) => [t.name, i + 1]));
  const classIds = new Map((doc.classes ?? []).filter((c) => c.name !== DEFAULT_CLASS).map((c, i) => [c.name, i + 1]));
  // The same policy with the management class moved off the internet node: its
  // packets then stop at the class CIDRs, as traffic to most of the internet does.
  const typicalDoc = parsePolicy(examplePolicyYaml(topo).replace(`${internet.ipv4}/32`, '198.19.255.254/32'), 'example policy, typical class path');
  const startAgent = (policy = doc): { dp: MeteringDatapath; stop(): void } => {
    const dp = MeteringDatapath.open({ pinRoot });
    withNetns(topo.hostNetns, () => dp.install(compileMetering(policy, { tenantIds, classIds, ifindexOf: (n) => ifindexOf(n), generation: dp.liveGeneration() === 0 ? 1 : 0 })));
    return {
      dp,
      stop() {
        dp.close();
        removePins(pinRoot); // detaches: the next round runs with no program
      },
    };
  };
  try {
    console.log(`metering bench: lab ${topo.hostNetns}, ${tenant.name} (${tenant.hostIface}) -> internet`);
    console.log(`TCP: iperf3, ${rounds} rounds x ${seconds} s, without program / with metering, interleaved`);
    const withMeter = async (port: number): Promise<number> => {
      const meter = startAgent();
      try {
        return await iperf(tenant, internet, seconds, port);
      } finally {
        meter.stop();
      }
    };
    for (let i = 0; i < rounds; i++) {
      // Alternate which side goes first so neither always runs on a warmer host.
      if (i % 2 === 0) {
        off.push(await iperf(tenant, internet, seconds, 45000 + 2 * i));
        on.push(await withMeter(45001 + 2 * i));
      } else {
        on.push(await withMeter(45001 + 2 * i));
        off.push(await iperf(tenant, internet, seconds, 45000 + 2 * i));
      }
      console.log(`  round ${i + 1}: without ${gbit(off[i])}, with ${gbit(on[i])}`);
    }

    // 64-byte UDP packets per second through the lab host, with the agent's
    // datapath and without any program, interleaved. Classes on, at their
    // worst: the internet node is in the example policy's management CIDR, so
    // every packet matches a class CIDR, then its protocol, then looks up both
    // ports before falling to the default class. A third arm moves that CIDR
    // away: the typical path, which stops after the CIDRs.
    // trafgen's run time includes the receive path: veth delivery runs the
    // host's softirq processing in the sender's context.
    console.log(`UDP: trafgen, ${udpRounds} rounds x ${flood} x 64-byte frames: without program, with metering on the worst class path, with metering on the typical one, order rotating`);
    const ppsOff: number[] = [];
    const ppsOn: number[] = [];
    const ppsTypical: number[] = [];
    const pps = async (): Promise<number> => {
      await settle();
      const t0 = performance.now();
      await trafgenBurst(tenant, internet, flood, 18, { receive: false });
      return flood / ((performance.now() - t0) / 1000);
    };
    const ppsWithMeter = async (policy = doc): Promise<number> => {
      const meter = startAgent(policy);
      try {
        return await pps();
      } finally {
        meter.stop();
      }
    };
    // Three arms a round, the order rotating so none always follows the same one.
    const arms = [
      async () => ppsOff.push(await pps()),
      async () => ppsOn.push(await ppsWithMeter()),
      async () => ppsTypical.push(await ppsWithMeter(typicalDoc)),
    ];
    for (let i = 0; i < udpRounds; i++) {
      for (let j = 0; j < arms.length; j++) await arms[(i + j) % arms.length]!();
      console.log(`  round ${i + 1}: without ${kpps(ppsOff[i]!)}, with (worst class path) ${kpps(ppsOn[i]!)}, with (typical) ${kpps(ppsTypical[i]!)}`);
    }

    disableStats = enableBpfStats();
    console.log(`TCP: one ${seconds} s iperf3 transfer with metering and bpf_stats on`);
    {
      const meter = startAgent();
      try {
        const s0 = agentStats(pinRoot);
        await iperf(tenant, internet, seconds, 45999);
        tcpStats = delta(s0, agentStats(pinRoot));
      } finally {
        meter.stop();
      }
    }
    console.log(`flood: trafgen, ${flood} x 64-byte UDP frames from ${tenant.name}, per program`);
    // The floors: a do-nothing program, one that only makes the meter's header
    // read, and the least a meter can do (that read, an owner lookup, a counter add).
    const floors = BpfObject.open(bpfObjectPath('tests/bench_noop'));
    const floorStats: Record<string, RunStats> = {};
    try {
      floors.load();
      const ifindex = withNetns(topo.hostNetns, () => ifindexOf(tenant.hostIface));
      const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
      floors.map('tg_skeleton_owner').update(u32(ifindex), u32(1));
      for (const name of ['tg_noop', 'tg_copy_headers', 'tg_skeleton']) {
        const prog: BpfProgram = floors.program(name);
        const link = withNetns(topo.hostNetns, () => prog.attachTcx(ifindex, 'ingress'));
        try {
          const s0 = progInfo(prog.fd);
          await trafgenBurst(tenant, internet, flood, 18);
          floorStats[name] = delta(s0, progInfo(prog.fd));
        } finally {
          link.close();
        }
      }
    } finally {
      floors.close();
    }
    const noopStats = floorStats.tg_noop;
    const meter = startAgent();
    let floodStats: RunStats;
    let hotStats: RunStats;
    try {
      const s0 = agentStats(pinRoot);
      await trafgenBurst(tenant, internet, flood, 18);
      floodStats = delta(s0, agentStats(pinRoot));
      // The same program on one linear 64-byte frame, repeated: hot caches, no
      // copy out of paged data. bpf_stats counts test runs too.
      const frame = udpFrame({ srcMac: tenant.mac, dstMac: tenant.gatewayMac, src: tenant.ipv4, dst: internet.ipv4, srcPort: 40000, dstPort: 9, payloadSize: 18 });
      const ctx = Buffer.alloc(192);
      const prog = meter.dp.program('tg_meter_ingress');
      const h0 = progInfo(prog.fd);
      withNetns(topo.hostNetns, () => {
        ctx.writeUInt32LE(ifindexOf(tenant.hostIface), 40); // __sk_buff.ifindex: the tenant's interface
        prog.testRun({ data: frame, ctx, repeat: 1_000_000 });
      });
      hotStats = delta(h0, progInfo(prog.fd));
    } finally {
      meter.stop();
    }

    const ratio = median(on) / median(off);
    console.log('');
    console.log('| measure | value |');
    console.log('|---|---|');
    console.log(`| TCP without program (median) | ${gbit(median(off))} |`);
    console.log(`| TCP with metering (median) | ${gbit(median(on))} |`);
    console.log(`| **TCP ratio with/without** (target >= 0.97) | **${ratio.toFixed(3)}** |`);
    console.log(`| 64-byte UDP without program (median) | ${kpps(median(ppsOff))} |`);
    console.log(`| 64-byte UDP with metering, classes on, worst-case class path (median) | ${kpps(median(ppsOn))} |`);
    // Ratio of the medians, and the median of each round's own ratio.
    const udpRatio = (on: number[]): string => (median(on) / median(ppsOff)).toFixed(3);
    const paired = (on: number[]): string => median(on.map((v, i) => v / ppsOff[i]!)).toFixed(3);
    console.log(`| **UDP pps ratio with/without** (target >= 0.93) | **${udpRatio(ppsOn)}** |`);
    console.log(`| UDP: median of the ${udpRounds} paired round ratios (a slow phase of the host hits a round, not one side) | ${paired(ppsOn)} |`);
    console.log(`| 64-byte UDP with metering, peer in no class CIDR (median) | ${kpps(median(ppsTypical))} |`);
    console.log(`| UDP pps ratio with/without, peer in no class CIDR (median; paired median) | ${udpRatio(ppsTypical)}; ${paired(ppsTypical)} |`);
    console.log(`| meter ns/packet, 64-byte flood (target <= 60) | ${nsPer(floodStats).toFixed(1)} (${floodStats.runCnt} runs) |`);
    console.log(`| do-nothing tcx program ns/packet, same flood | ${nsPer(noopStats).toFixed(1)} (${noopStats.runCnt} runs) |`);
    console.log(`| program that only copies the first 54 bytes, same flood | ${nsPer(floorStats.tg_copy_headers).toFixed(1)} (${floorStats.tg_copy_headers.runCnt} runs) |`);
    console.log(`| least possible meter (that read, an owner lookup, a counter add), same flood | ${nsPer(floorStats.tg_skeleton).toFixed(1)} (${floorStats.tg_skeleton.runCnt} runs) |`);
    console.log(`| meter minus do-nothing | ${(nsPer(floodStats) - nsPer(noopStats)).toFixed(1)} |`);
    console.log(`| meter ns/packet, one linear 64-byte frame repeated (BPF_PROG_TEST_RUN, hot caches) | ${nsPer(hotStats).toFixed(1)} (${hotStats.runCnt} runs) |`);
    console.log(`| meter ns/packet during a TCP transfer | ${nsPer(tcpStats).toFixed(1)} (${tcpStats.runCnt} runs, GSO super-packets and ACKs) |`);
  } finally {
    disableStats();
    await labDown(prefix);
  }
  // pmacctd (libpcap) metering the same kinds of traffic next to the meter, in a lab of its own.
  if (!values['skip-pmacct']) await pmacctComparison({ flood });
}
