// tollgate's meter next to pmacct (Debian's pmacctd), both observing the same
// lab traffic in one run, per tenant: packets and IP bytes against ground
// truth, and CPU per packet.
//
// Phases, each with fresh pmacctd instances (one per tenant host-side veth,
// pcap_interface: pmacctd's fast single-interface loop) while the tollgate
// meter stays attached to the same interfaces:
//  1. UDP through sockets, IPv4 and IPv6, both directions, every tenant;
//     truth = what the senders sent;
//  2. a bounded 64-byte trafgen flood from tenant-1 (AF_PACKET TX ring,
//     non-linear skbs); truth = trafgen's count;
//  3. TCP upload (tenant-1, IPv4) and download (tenant-2, IPv6); truth = the
//     host-side interfaces' own counters (tcpTransfer guarantees only payload).
// Only tenant <-> internet traffic: a tenant-to-tenant packet crosses two
// captured interfaces, which pmacct's host-pair totals cannot tell apart.
//
// CPU: ours is bpf_stats run_time_ns of the meter programs (what they cost
// per packet in the kernel); pmacct's is utime + stime of its core and plugin
// processes from /proc. Neither includes the kernel's work to deliver packets
// to it: for pmacct that is the AF_PACKET tap (skb clone, copy into the
// capture ring), which runs in the sender's softirq and so is charged to no
// pmacct process; the comparison is therefore generous to pmacct.
import { parseArgs } from 'node:util';
import { enableBpfStats, ifindexOf, progInfo, removePins, withNetns } from '../src/kernel/index.js';
import { MeteringDatapath, type Direction } from '../src/metering/datapath.js';
import { cidrContains, compileMetering, DEFAULT_CLASS, parseCidr, parsePolicy, type Cidr } from '../src/policy/index.js';
import {
  examplePolicyYaml, findNode, ifaceCounters, labDown, labUp, pinDirPath, tcpTransfer, tenantNodes, trafgenBurst, udpBurst,
  type EndpointNode, type Topology,
} from '../lab/index.js';
import { Pmacctd, clkTck, type PmacctReport } from '../lab/pmacct.js';

const ETH = 14;
const DIRECTIONS: readonly Direction[] = ['egress', 'ingress'];

export interface PmacctComparisonOptions {
  /** Lab prefix; default tgpm. */
  prefix?: string;
  /** Tenants in the lab, each with its own pmacctd; default 2. */
  tenants?: number;
  /** UDP datagrams per payload size in each (tenant, direction, family); default 2000. */
  udpCount?: number;
  /** 64-byte trafgen frames from tenant-1; default 300000. */
  flood?: number;
  /** TCP payload bytes of the upload and of the download; 0 skips the phase; default 200 MB (GSO makes few, large packets). */
  tcpBytes?: number;
  /** Progress lines; default console.log. */
  log?: (line: string) => void;
}

export interface Counts {
  packets: number;
  bytes: number;
}

export interface TenantRow {
  tenant: string;
  direction: Direction;
  truth: Counts;
  /** What the host-side veth counted (IP bytes): differs from truth only if the veth dropped before its hooks. */
  atIface: Counts;
  tollgate: Counts;
  pmacct: Counts;
}

export interface PhaseResult {
  phase: string;
  truthSource: string;
  rows: TenantRow[];
  /** Packets of the phase's ground truth, all tenants and directions. */
  sent: number;
  tollgate: { runTimeNs: number; runCnt: number };
  pmacct: { cpuNs: number; packets: number; pcapReceived: number; pcapDropped: number; unattributed: Counts };
}

export interface PmacctComparison {
  phases: PhaseResult[];
  /** Markdown tables, as printed. */
  markdown: string;
}

type Totals = Map<string, Counts>; // `${tenant}/${direction}`

const key = (tenant: string, direction: Direction): string => `${tenant}/${direction}`;
function add(t: Totals, k: string, packets: number, bytes: number): void {
  const v = t.get(k) ?? { packets: 0, bytes: 0 };
  t.set(k, { packets: v.packets + packets, bytes: v.bytes + bytes });
}
const get = (t: Totals, k: string): Counts => t.get(k) ?? { packets: 0, bytes: 0 };

/** pmacct's host-pair totals per (tenant, direction), by the tenants' CIDRs in the policy; the rest under 'unattributed'. */
function attribute(reports: PmacctReport[], tenantCidrs: Map<string, Cidr[]>): Totals {
  const owner = (addr: string): string | undefined => {
    const a = parseCidr(addr);
    for (const [name, cidrs] of tenantCidrs) if (cidrs.some((c) => cidrContains(c, a))) return name;
    return undefined;
  };
  const out: Totals = new Map();
  for (const f of reports.flatMap((r) => r.flows)) {
    const from = owner(f.src);
    const to = owner(f.dst);
    if (from) add(out, key(from, 'egress'), f.packets, f.bytes);
    if (to) add(out, key(to, 'ingress'), f.packets, f.bytes);
    if (!from && !to) add(out, 'unattributed', f.packets, f.bytes);
  }
  return out;
}

async function ifaceTotals(topo: Topology, tenants: EndpointNode[]): Promise<Totals> {
  const out: Totals = new Map();
  for (const t of tenants) {
    const c = await ifaceCounters(topo.hostNetns, t.hostIface);
    // The host side receives what the tenant sends and transmits what it receives.
    add(out, key(t.name, 'egress'), c.rxPackets, c.rxBytes - ETH * c.rxPackets);
    add(out, key(t.name, 'ingress'), c.txPackets, c.txBytes - ETH * c.txPackets);
  }
  return out;
}

function minus(a: Totals, b: Totals): Totals {
  const out: Totals = new Map();
  for (const [k, v] of a) add(out, k, v.packets - get(b, k).packets, v.bytes - get(b, k).bytes);
  return out;
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const exact = (a: Counts, b: Counts): boolean => a.packets === b.packets && a.bytes === b.bytes;

export function formatComparison(phases: PhaseResult[], ticksPerSecond: number): string {
  const lines: string[] = [
    '| phase | tenant | direction | truth packets | truth IP bytes | tollgate packets | tollgate bytes | tollgate exact | pmacct packets | pmacct bytes | pmacct exact |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of phases) {
    for (const r of p.rows) {
      if (r.truth.packets === 0 && r.tollgate.packets === 0 && r.pmacct.packets === 0) continue;
      const pmMiss = r.truth.packets - r.pmacct.packets;
      lines.push(
        `| ${p.phase} | ${r.tenant} | ${r.direction} | ${fmt(r.truth.packets)} | ${fmt(r.truth.bytes)} | ${fmt(r.tollgate.packets)} | ${fmt(r.tollgate.bytes)} | ` +
          `${exact(r.tollgate, r.truth) ? 'yes' : '**NO**'} | ${fmt(r.pmacct.packets)} | ${fmt(r.pmacct.bytes)} | ` +
          `${exact(r.pmacct, r.truth) ? 'yes' : `no (${pmMiss >= 0 ? `${fmt(pmMiss)} missed` : `${fmt(-pmMiss)} extra`})`} |`,
      );
    }
  }
  lines.push(
    '',
    '| phase | truth | packets sent | tollgate CPU (bpf_stats) | tollgate ns/packet | pmacctd CPU (utime+stime) | pmacctd ns/packet accounted | pmacctd ns/packet sent | pcap received / dropped | **ours/theirs per packet** (target <= 0.25) | ours/theirs total CPU |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const p of phases) {
    const ours = p.tollgate.runCnt > 0 ? p.tollgate.runTimeNs / p.tollgate.runCnt : NaN;
    const theirs = p.pmacct.packets > 0 ? p.pmacct.cpuNs / p.pmacct.packets : NaN;
    const theirsSent = p.sent > 0 ? p.pmacct.cpuNs / p.sent : NaN;
    // Less than one clock tick of pmacctd CPU gives no ratio, not an infinite one.
    const ratio = (x: number): string => (p.pmacct.cpuNs > 0 ? x.toFixed(3) : 'n/a (pmacctd < 1 tick)');
    lines.push(
      `| ${p.phase} | ${p.truthSource} | ${fmt(p.sent)} | ${(p.tollgate.runTimeNs / 1e6).toFixed(1)} ms (${fmt(p.tollgate.runCnt)} runs) | ${ours.toFixed(1)} | ` +
        `${(p.pmacct.cpuNs / 1e6).toFixed(0)} ms | ${theirs.toFixed(0)} | ${theirsSent.toFixed(0)} | ${fmt(p.pmacct.pcapReceived)} / ${fmt(p.pmacct.pcapDropped)} | ` +
        `**${ratio(ours / theirs)}** | ${ratio(p.tollgate.runTimeNs / p.pmacct.cpuNs)} |`,
    );
  }
  lines.push('', `pmacctd CPU comes in clock ticks of ${(1000 / ticksPerSecond).toFixed(0)} ms; tollgate's includes bpf_stats' own timing of each run.`);
  const unattributed = phases.filter((p) => p.pmacct.unattributed.packets > 0);
  for (const p of unattributed) lines.push('', `${p.phase}: pmacct saw ${fmt(p.pmacct.unattributed.packets)} packets between no tenant addresses.`);
  for (const p of phases) {
    for (const r of p.rows) {
      if (!exact(r.atIface, r.truth) && p.truthSource !== 'interface counters') {
        lines.push('', `${p.phase} ${r.tenant}/${r.direction}: the veth counted ${fmt(r.atIface.packets)} packets / ${fmt(r.atIface.bytes)} bytes against ${fmt(r.truth.packets)} / ${fmt(r.truth.bytes)} sent (drops before the hooks).`);
      }
    }
  }
  return lines.join('\n');
}

/**
 * Runs the comparison in a lab of its own (labDown first and in finally),
 * with the tollgate meter attached through MeteringDatapath as the agent
 * does it and pmacctd in the lab host namespace; prints progress and the
 * tables, and returns them with the numbers.
 */
export async function pmacctComparison(opts: PmacctComparisonOptions = {}): Promise<PmacctComparison> {
  const prefix = opts.prefix ?? 'tgpm';
  const udpCount = opts.udpCount ?? 2000;
  const flood = opts.flood ?? 300_000;
  const tcpBytes = opts.tcpBytes ?? 200_000_000;
  const log = opts.log ?? ((l: string) => console.log(l));
  const ticksPerSecond = await clkTck();
  const pinRoot = pinDirPath(prefix);
  await labDown(prefix);
  let dp: MeteringDatapath | undefined;
  let disableStats: (() => void) | undefined;
  try {
    const topo = await labUp({ prefix, tenants: opts.tenants ?? 2 });
    const tenants = tenantNodes(topo);
    const internet = findNode(topo, 'internet');
    const doc = parsePolicy(examplePolicyYaml(topo), 'example policy');
    const tenantIds = new Map(doc.tenants.map((t, i) => [t.name, i + 1]));
    const classIds = new Map((doc.classes ?? []).filter((c) => c.name !== DEFAULT_CLASS).map((c, i) => [c.name, i + 1]));
    const tenantNames = new Map([...tenantIds].map(([name, id]) => [id, name]));
    const tenantCidrs = new Map(doc.tenants.map((t) => [t.name, t.selectors.cidrs.map(parseCidr)]));
    disableStats = enableBpfStats();
    const meter = MeteringDatapath.open({ pinRoot });
    dp = meter;
    withNetns(topo.hostNetns, () =>
      meter.install(compileMetering(doc, { tenantIds, classIds, ifindexOf: (n) => ifindexOf(n), generation: meter.liveGeneration() === 0 ? 1 : 0 })),
    );
    const ourCounters = (): Totals => {
      const out: Totals = new Map();
      for (const c of meter.readCounters()) add(out, key(tenantNames.get(c.tenantId) ?? 'unattributed', c.direction), Number(c.packets), Number(c.bytes));
      return out;
    };
    const ourStats = (): { runTimeNs: number; runCnt: number } => {
      let runTimeNs = 0n;
      let runCnt = 0n;
      for (const name of ['tg_meter_ingress', 'tg_meter_egress'] as const) {
        const i = progInfo(meter.program(name).fd);
        runTimeNs += i.runTimeNs;
        runCnt += i.runCnt;
      }
      return { runTimeNs: Number(runTimeNs), runCnt: Number(runCnt) };
    };

    const phase = async (name: string, truthSource: string, drive: () => Promise<Totals | null>): Promise<PhaseResult> => {
      log(`${name}: starting pmacctd on ${tenants.map((t) => t.hostIface).join(', ')}`);
      const daemons: Pmacctd[] = [];
      try {
        for (const t of tenants) daemons.push(await Pmacctd.start({ netns: topo.hostNetns, iface: t.hostIface }));
        const c0 = ourCounters();
        const s0 = ourStats();
        const i0 = await ifaceTotals(topo, tenants);
        const cpu0 = daemons.reduce((n, d) => n + d.cpuTicks(), 0);
        const driven = await drive();
        await Promise.all(daemons.map((d) => d.settle()));
        const cpu1 = daemons.reduce((n, d) => n + d.cpuTicks(), 0);
        const s1 = ourStats();
        const ours = minus(ourCounters(), c0);
        const atIface = minus(await ifaceTotals(topo, tenants), i0);
        const reports = await Promise.all(daemons.map((d) => d.stop()));
        const truth = driven ?? atIface;
        const theirs = attribute(reports, tenantCidrs);
        const rows = tenants.flatMap((t) =>
          DIRECTIONS.map((direction) => {
            const k = key(t.name, direction);
            return { tenant: t.name, direction, truth: get(truth, k), atIface: get(atIface, k), tollgate: get(ours, k), pmacct: get(theirs, k) };
          }),
        );
        const result: PhaseResult = {
          phase: name,
          truthSource,
          rows,
          sent: rows.reduce((n, r) => n + r.truth.packets, 0),
          tollgate: { runTimeNs: s1.runTimeNs - s0.runTimeNs, runCnt: s1.runCnt - s0.runCnt },
          pmacct: {
            cpuNs: ((cpu1 - cpu0) * 1e9) / ticksPerSecond,
            packets: reports.reduce((n, r) => n + r.flows.reduce((m, f) => m + f.packets, 0), 0),
            pcapReceived: reports.reduce((n, r) => n + r.pcap.received, 0),
            pcapDropped: reports.reduce((n, r) => n + r.pcap.dropped, 0),
            unattributed: get(theirs, 'unattributed'),
          },
        };
        log(`${name}: ${fmt(result.sent)} packets; tollgate ${fmt(result.tollgate.runCnt)} runs, pmacct accounted ${fmt(result.pmacct.packets)} (pcap dropped ${fmt(result.pmacct.pcapDropped)})`);
        return result;
      } finally {
        await Promise.all(daemons.map((d) => d.kill()));
      }
    };

    log(`pmacct comparison: lab ${topo.hostNetns}, ${tenants.length} tenants, tollgate meter + pmacctd ${tenants.map((t) => t.hostIface).join(', ')}`);
    const phases: PhaseResult[] = [];
    let port = 41000;
    phases.push(
      await phase(`UDP sockets (${udpCount} per size)`, 'senders', async () => {
        const truth: Totals = new Map();
        for (const t of tenants) {
          for (const family of [4, 6] as const) {
            const sizes = [0, 64, 512, family === 4 ? 1472 : 1452];
            const up = await udpBurst(t, internet, port++, sizes, udpCount, { family });
            add(truth, key(t.name, 'egress'), up.packets, up.ipBytes);
            const down = await udpBurst(internet, t, port++, sizes, udpCount, { family });
            add(truth, key(t.name, 'ingress'), down.packets, down.ipBytes);
          }
        }
        return truth;
      }),
    );
    const [first] = tenants;
    phases.push(
      await phase(`trafgen flood (${flood} x 64 B)`, 'trafgen', async () => {
        const r = await trafgenBurst(first, internet, flood, 18);
        return new Map([[key(first.name, 'egress'), { packets: r.packets, bytes: r.ipBytes }]]);
      }),
    );
    if (tcpBytes > 0) {
      const downTo = tenants[1] ?? first;
      phases.push(
        await phase(`TCP (2 x ${tcpBytes} B)`, 'interface counters', async () => {
          await tcpTransfer(first, internet, tcpBytes);
          await tcpTransfer(internet, downTo, tcpBytes, { family: 6 });
          return null;
        }),
      );
    }
    const markdown = formatComparison(phases, ticksPerSecond);
    log('');
    log(markdown);
    return { phases, markdown };
  } finally {
    if (dp) {
      dp.close();
      removePins(pinRoot);
    }
    disableStats?.();
    await labDown(prefix);
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tenants: { type: 'string', default: '2' },
      udp: { type: 'string', default: '2000' },
      flood: { type: 'string', default: '300000' },
      tcp: { type: 'string', default: '200000000' },
    },
  });
  const int = (field: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${field}: must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  await pmacctComparison({
    tenants: int('tenants', values.tenants, 1),
    udpCount: int('udp', values.udp, 1),
    flood: int('flood', values.flood, 1),
    tcpBytes: int('tcp', values.tcp, 0),
  });
}
