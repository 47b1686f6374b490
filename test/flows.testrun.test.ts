// Flows in the meter (bpf/progs/meter.bpf.c, record_flow) through
// BPF_PROG_TEST_RUN, with the agent's own datapath (MeteringDatapath) and the
// production policy compiler: every row runs one frame with flows on and
// asserts the one flow that moved (its key, class, packets, bytes, times),
// the flow counters that moved, and that the billing counter moved exactly
// as much in the same (tenant, class, direction).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap, ensureBpffs, removePins } from '../src/kernel/index.js';
import { TG_FLOW_STAT_MAX, TgFlowStat } from '../src/kernel/abi.gen.js';
import { MeteringDatapath, type CounterReading } from '../src/metering/datapath.js';
import { compileMetering, parsePolicy } from '../src/policy/index.js';
import { decodeFlowKey, evictedFlows, monotonicNs, type FlowCounters, type FlowKey, type FlowSnapshot } from '../src/flows/index.js';
import { KEY_SIZE, VALUE_SIZE } from '../src/flows/snapshot.js';
import { pinDirPath } from '../lab/index.js';
import {
  arp, ethernet, icmp, icmpv6, ipv4, ipv6, rawL4, tcp, udp, IPPROTO,
} from '../lab/packets.js';

const OBJECT = join(fileURLToPath(import.meta.url), '..', '..', 'build', 'bpf', 'meter.bpf.o');
const PIN_ROOT = pinDirPath('tgfl');
const SMALL_PIN_ROOT = pinDirPath('tgfl2');
const LO_IFINDEX = 1;
const MAX_TENANTS = 16;
const MAX_CLASSES = 4;
const IDS = new Map([['alpha', 1], ['beta', 2]]);
const CLASS_IDS = new Map([['internet', 0], ['mgmt', 1], ['internal', 2]]);
const [ALPHA, BETA] = [1, 2];
const [INTERNET, MGMT, INTERNAL] = [0, 1, 2];

const POLICY = `
version: 1
classes:
  - name: mgmt
    billable: false
    match: { cidrs: [198.19.5.0/24], protocols: [tcp, udp], ports: [22, 53] }
  - name: internal
    match: { cidrs: [198.18.0.0/16, "2001:2::/62"] }
tenants:
  - name: alpha
    selectors: { cidrs: [198.18.1.0/24, "2001:2:0:1::/64"] }
  - name: beta
    selectors: { cidrs: [198.18.2.0/24, "2001:2:0:2::/64"] }
`;

const A4 = '198.18.1.10';
const B4 = '198.18.2.20';
const X4 = '198.19.0.1';
const M4 = '198.19.5.9';
const A6 = '2001:2:0:1::10';
const X6 = '2001:2:0:ff::1';

type StatName = keyof typeof TgFlowStat extends `TG_FLOW_${infer R}` ? (R extends 'STAT_MAX' ? never : R) : never;
type Hook = 'ingress' | 'egress';

interface Expected {
  tenant: number;
  dir: 'ingress' | 'egress';
  cls?: number;
  ipVersion: 4 | 6;
  protocol: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  bytes: number;
}

interface Row {
  name: string;
  hook: Hook;
  frame: Buffer;
  /** The flow the packet must land in; null: none. */
  flow: Expected | null;
  /** Flow counters that move besides INSERTED/UPDATED (which the row's flow decides). */
  also?: StatName[];
  /** When flow is null: the billing counter that moves. */
  billing?: { tenant: number; dir: 'ingress' | 'egress'; bytes: number };
}

const u = (sport: number, dport = 53, payload = 12) => udp({ sport, dport, payload: Buffer.alloc(payload) });
const eth = (l3: ReturnType<typeof ipv4>, vlans?: Parameters<typeof ethernet>[0]['vlans']) => ethernet({ payload: l3, vlans });

const ROWS: Row[] = [
  { name: 'IPv4 UDP from a tenant: its egress flow', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: X4, l4: u(4001) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4001, dst: X4, dport: 53, bytes: 40 } },
  { name: 'IPv4 TCP to a tenant at host-egress: its ingress flow', hook: 'egress', frame: eth(ipv4({ src: X4, dst: A4, l4: tcp({ sport: 443, dport: 40002, payload: Buffer.alloc(100) }) })),
    flow: { tenant: ALPHA, dir: 'ingress', ipVersion: 4, protocol: IPPROTO.TCP, src: X4, sport: 443, dst: A4, dport: 40002, bytes: 140 } },
  { name: 'tenant to tenant at host-ingress: the sender\'s flow, class internal', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: B4, l4: u(4003, 7000) })),
    flow: { tenant: ALPHA, dir: 'egress', cls: INTERNAL, ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4003, dst: B4, dport: 7000, bytes: 40 } },
  { name: 'tenant to tenant at host-egress: the receiver\'s flow', hook: 'egress', frame: eth(ipv4({ src: A4, dst: B4, l4: u(4003, 7000) })),
    flow: { tenant: BETA, dir: 'ingress', cls: INTERNAL, ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4003, dst: B4, dport: 7000, bytes: 40 } },
  { name: 'class by port (mgmt, SSH): ports shared with the classifier', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: M4, l4: tcp({ sport: 40004, dport: 22 }) })),
    flow: { tenant: ALPHA, dir: 'egress', cls: MGMT, ipVersion: 4, protocol: IPPROTO.TCP, src: A4, sport: 40004, dst: M4, dport: 22, bytes: 40 } },
  { name: 'IPv6 UDP', hook: 'ingress', frame: eth(ipv6({ src: A6, dst: X6, l4: u(4005) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 6, protocol: IPPROTO.UDP, src: A6, sport: 4005, dst: X6, dport: 53, bytes: 60 } },
  { name: 'IPv6 TCP behind extension headers: ports read at the end of the chain', hook: 'ingress',
    frame: eth(ipv6({ src: A6, dst: X6, ext: [{ type: 'hopByHop' }, { type: 'destOpts' }], l4: tcp({ sport: 40006, dport: 443 }) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 6, protocol: IPPROTO.TCP, src: A6, sport: 40006, dst: X6, dport: 443, bytes: 40 + 16 + 20 } },
  { name: 'ICMP: ports 0', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: '198.19.0.7', l4: icmp({ payload: Buffer.alloc(56) }) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.ICMP, src: A4, sport: 0, dst: '198.19.0.7', dport: 0, bytes: 84 } },
  { name: 'ICMPv6: ports 0', hook: 'egress', frame: eth(ipv6({ src: X6, dst: A6, l4: icmpv6({ payload: Buffer.alloc(32) }) })),
    flow: { tenant: ALPHA, dir: 'ingress', ipVersion: 6, protocol: IPPROTO.ICMPV6, src: X6, sport: 0, dst: A6, dport: 0, bytes: 80 } },
  { name: '802.1Q tagged IPv4 UDP: ports through the general parser', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: X4, l4: u(4008) }), [{ vid: 100 }]),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4008, dst: X4, dport: 53, bytes: 40 } },
  { name: 'TCP header cut (L3 intact): flow with ports 0', hook: 'ingress',
    frame: ethernet({ payload: { etherType: 0x0800, bytes: ipv4({ src: A4, dst: '198.19.0.9', totalLength: 28, l4: tcp({ sport: 1, dport: 2 }) }).bytes.subarray(0, 28) } }),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.TCP, src: A4, sport: 0, dst: '198.19.0.9', dport: 0, bytes: 28 } },
  { name: 'unattributed IPv4: tenant 0', hook: 'ingress', frame: eth(ipv4({ src: X4, dst: '198.19.0.2', l4: u(4010) })),
    flow: { tenant: 0, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: X4, sport: 4010, dst: '198.19.0.2', dport: 53, bytes: 40 } },
  { name: 'IPv4 first fragment: its ports', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: X4, id: 901, moreFragments: true, l4: u(4011, 4012, 100) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4011, dst: X4, dport: 4012, bytes: 128 } },
  { name: 'IPv4 later fragment of that datagram: the same flow', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: X4, id: 901, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(60)) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 4011, dst: X4, dport: 4012, bytes: 80 } },
  { name: 'IPv6 first fragment, then a later one: one flow', hook: 'ingress', frame: eth(ipv6({ src: A6, dst: X6, ext: [{ type: 'fragment', moreFragments: true, id: 0xabcd }], l4: u(4013, 4014) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 6, protocol: IPPROTO.UDP, src: A6, sport: 4013, dst: X6, dport: 4014, bytes: 40 + 8 + 20 } },
  { name: 'IPv6 later fragment', hook: 'ingress', frame: eth(ipv6({ src: A6, dst: X6, ext: [{ type: 'fragment', offset: 1448, id: 0xabcd }], l4: rawL4(IPPROTO.UDP, Buffer.alloc(40)) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 6, protocol: IPPROTO.UDP, src: A6, sport: 4013, dst: X6, dport: 4014, bytes: 40 + 8 + 40 } },
  { name: 'later fragment whose first was not seen: ports 0, counted', hook: 'ingress', frame: eth(ipv4({ src: A4, dst: X4, id: 902, fragmentOffset: 1480, l4: rawL4(IPPROTO.UDP, Buffer.alloc(60)) })),
    flow: { tenant: ALPHA, dir: 'egress', ipVersion: 4, protocol: IPPROTO.UDP, src: A4, sport: 0, dst: X4, dport: 0, bytes: 80 }, also: ['FRAG_NO_PORTS'] },
  { name: 'ARP: no 5-tuple, no flow', hook: 'ingress', frame: ethernet({ payload: arp({ senderIp: A4, targetIp: B4 }) }),
    flow: null, also: ['NO_ADDR'], billing: { tenant: 0, dir: 'egress', bytes: 28 } },
  { name: 'malformed IPv4 (ihl 3): addresses untrusted, no flow', hook: 'egress', frame: eth(ipv4({ src: A4, dst: X4, ihl: 3, l4: u(4015) })),
    flow: null, also: ['NO_ADDR'], billing: { tenant: 0, dir: 'ingress', bytes: 40 } },
];

interface FlowRow {
  key: FlowKey;
  packets: bigint;
  bytes: bigint;
  firstNs: bigint;
  lastNs: bigint;
  classId: number;
}

function flowsOf(s: FlowSnapshot): Map<string, FlowRow> {
  const out = new Map<string, FlowRow>();
  for (let i = 0; i < s.count; i++) {
    const v = s.values.subarray(i * VALUE_SIZE);
    out.set(s.keys.toString('hex', i * KEY_SIZE, (i + 1) * KEY_SIZE), {
      key: decodeFlowKey(s.keys, i * KEY_SIZE),
      packets: v.readBigUInt64LE(0), bytes: v.readBigUInt64LE(8), firstNs: v.readBigUInt64LE(16), lastNs: v.readBigUInt64LE(24), classId: v.readUInt32LE(32),
    });
  }
  return out;
}

const billingKey = (r: Pick<CounterReading, 'tenantId' | 'classId' | 'direction'>) => `${r.tenantId}/${r.classId}/${r.direction}`;
function billingOf(d: MeteringDatapath): Map<string, CounterReading> {
  return new Map(d.readCounters().map((r) => [billingKey(r), r]));
}

const COUNTER_STAT: Record<keyof FlowCounters, StatName> = {
  updated: 'UPDATED', inserted: 'INSERTED', insertFailed: 'INSERT_FAILED', lookupFailed: 'LOOKUP_FAILED', noAddr: 'NO_ADDR', fragNoPorts: 'FRAG_NO_PORTS',
};
function statsMoved(a: FlowCounters, b: FlowCounters): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const k of Object.keys(a) as Array<keyof FlowCounters>) if (b[k] !== a[k]) out[COUNTER_STAT[k]] = b[k] - a[k];
  return out;
}

function run(d: MeteringDatapath, prog: string, frame: Buffer): void {
  const xdp = prog === 'tg_meter_xdp';
  const ctx = Buffer.alloc(xdp ? 24 : 192);
  ctx.writeUInt32LE(LO_IFINDEX, xdp ? 12 : 40);
  d.program(prog as 'tg_meter_xdp').testRun({ data: frame, ctx });
}

describe('flows in meter.bpf.c under BPF_PROG_TEST_RUN', () => {
  let dp: MeteringDatapath | undefined;
  let skipReason: string | undefined;

  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    ensureBpffs();
    removePins(PIN_ROOT);
    removePins(SMALL_PIN_ROOT);
    dp = MeteringDatapath.open({ pinRoot: PIN_ROOT, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, maxFlows: 4096 });
    dp.applyPlan(compileMetering(parsePolicy(POLICY, 'flows'), {
      tenantIds: IDS, classIds: CLASS_IDS, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, ifindexOf: () => undefined, generation: 1,
    }));
  });

  after(() => {
    dp?.close();
    if (!skipReason) {
      removePins(PIN_ROOT);
      removePins(SMALL_PIN_ROOT);
    }
  });

  for (const row of ROWS) {
    const progs = row.hook === 'ingress' ? ['tg_meter_ingress', 'tg_meter_xdp'] : ['tg_meter_egress'];
    for (const prog of progs) {
      test(`${row.name} [${prog}]`, (t) => {
        if (skipReason) return t.skip(skipReason);
        const d = dp!;
        d.setFlows(true);
        const c0 = d.readFlowCounters();
        const f0 = flowsOf(d.readFlows());
        const b0 = billingOf(d);
        const t0 = monotonicNs();
        run(d, prog, row.frame);
        const t1 = monotonicNs();
        const c1 = d.readFlowCounters();
        const f1 = flowsOf(d.readFlows());
        const b1 = billingOf(d);

        const moved = [...f1].filter(([k, f]) => f0.get(k)?.packets !== f.packets);
        const billed = [...b1.values()].filter((r) => b0.get(billingKey(r))?.packets !== r.packets);
        assert.equal(billed.length, 1, 'one billing counter moved');
        const bill = billed[0]!;
        const before = b0.get(billingKey(bill));
        const billedBytes = bill.bytes - (before?.bytes ?? 0n);
        if (!row.flow) {
          assert.deepEqual(moved, [], 'no flow moved');
          assert.deepEqual(statsMoved(c0, c1), Object.fromEntries((row.also ?? []).map((s) => [s, 1n])));
          assert.deepEqual({ tenant: bill.tenantId, dir: bill.direction, bytes: billedBytes }, { ...row.billing!, bytes: BigInt(row.billing!.bytes) });
          return;
        }
        const e = row.flow;
        assert.equal(moved.length, 1, `exactly one flow moved, got ${moved.length}`);
        const [k, f] = moved[0]!;
        const existed = f0.get(k);
        assert.deepEqual(f.key, { tenantId: e.tenant, direction: e.dir, ipVersion: e.ipVersion, protocol: e.protocol, src: e.src, sport: e.sport, dst: e.dst, dport: e.dport });
        assert.equal(f.classId, e.cls ?? INTERNET, 'class in the value');
        assert.equal(f.packets - (existed?.packets ?? 0n), 1n);
        assert.equal(f.bytes - (existed?.bytes ?? 0n), BigInt(e.bytes));
        assert.ok(f.lastNs >= t0 && f.lastNs <= t1, 'last_seen_ns is CLOCK_MONOTONIC, taken during the run');
        if (existed) assert.equal(f.firstNs, existed.firstNs, 'first_seen_ns stays');
        else assert.equal(f.firstNs, f.lastNs, 'a new flow: first = last');
        assert.deepEqual(statsMoved(c0, c1), Object.fromEntries([existed ? 'UPDATED' : 'INSERTED', ...(row.also ?? [])].map((s) => [s, 1n])));
        // The billing counter of the same packet: same tenant, class, direction and bytes.
        assert.deepEqual(
          { tenant: bill.tenantId, cls: bill.classId, dir: bill.direction, bytes: billedBytes },
          { tenant: e.tenant, cls: e.cls ?? INTERNET, dir: e.dir, bytes: BigInt(e.bytes) },
        );
      });
    }
  }

  test('flows off: the packet is billed, no flow moves, no flow counter moves', (t) => {
    if (skipReason) return t.skip(skipReason);
    const d = dp!;
    d.setFlows(false);
    assert.equal(d.flowsEnabled(), false);
    const c0 = d.readFlowCounters();
    const s0 = d.readFlows();
    const b0 = billingOf(d);
    run(d, 'tg_meter_ingress', eth(ipv4({ src: A4, dst: X4, l4: u(4999) })));
    assert.deepEqual(d.readFlowCounters(), c0);
    const s1 = d.readFlows();
    assert.equal(s1.count, s0.count);
    assert.deepEqual(flowsOf(s1), flowsOf(s0));
    const b1 = billingOf(d);
    assert.equal(b1.get(`${ALPHA}/${INTERNET}/egress`)!.packets - b0.get(`${ALPHA}/${INTERNET}/egress`)!.packets, 1n);
  });

  test('the flow switch survives a policy switch (same array value as the generation)', (t) => {
    if (skipReason) return t.skip(skipReason);
    const d = dp!;
    d.setFlows(true);
    d.applyPlan(compileMetering(parsePolicy(POLICY, 'flows'), {
      tenantIds: IDS, classIds: CLASS_IDS, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, ifindexOf: () => undefined, generation: d.liveGeneration() === 0 ? 1 : 0,
    }));
    assert.equal(d.flowsEnabled(), true);
  });

  test('repeated packets add up (atomic adds), one insert', (t) => {
    if (skipReason) return t.skip(skipReason);
    const d = dp!;
    d.setFlows(true);
    const frame = eth(ipv4({ src: A4, dst: X4, l4: u(5001) }));
    const c0 = d.readFlowCounters();
    d.program('tg_meter_ingress').testRun({ data: frame, repeat: 1000 });
    const c1 = d.readFlowCounters();
    assert.deepEqual(statsMoved(c0, c1), { INSERTED: 1n, UPDATED: 999n });
    const f = [...flowsOf(d.readFlows()).values()].find((x) => x.key.sport === 5001)!;
    assert.equal(f.packets, 1000n);
    assert.equal(f.bytes, 40_000n);
    assert.ok(f.lastNs > f.firstNs);
  });

  test('counters: flow-recorded packets add up to the packets metered with flows on', (t) => {
    if (skipReason) return t.skip(skipReason);
    const d = dp!;
    d.setFlows(true);
    const c = d.readFlowCounters();
    const s = d.readFlows();
    let inFlows = 0n;
    for (let i = 0; i < s.count; i++) inFlows += s.values.readBigUInt64LE(i * VALUE_SIZE);
    assert.equal(c.updated + c.inserted, inFlows, 'every UPDATED or INSERTED packet is in a flow (nothing evicted yet)');
    assert.equal(c.insertFailed + c.lookupFailed, 0n);
    assert.equal(evictedFlows(c, s.count), 0n);
    assert.equal(TG_FLOW_STAT_MAX, Object.keys(COUNTER_STAT).length);
  });

  test('evictions: more flows than the LRU holds are evicted and counted', (t) => {
    if (skipReason) return t.skip(skipReason);
    const small = MeteringDatapath.open({ pinRoot: SMALL_PIN_ROOT, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, maxFlows: 1024 });
    try {
      small.setFlows(true);
      const prog = small.program('tg_meter_ingress');
      const n = 3000;
      for (let i = 0; i < n; i++) prog.testRun({ data: eth(ipv4({ src: A4, dst: X4, l4: u(10000 + i) })) });
      const c = small.readFlowCounters();
      const s = small.readFlows();
      assert.equal(c.inserted, BigInt(n));
      assert.equal(c.insertFailed + c.lookupFailed, 0n, 'an LRU evicts instead of failing');
      assert.ok(s.count <= 1024, `live ${s.count} <= capacity`);
      assert.equal(evictedFlows(c, s.count), BigInt(n - s.count));
      assert.ok(n - s.count >= n - 1024);
      // The newest flows survive: least recently used go first.
      assert.ok([...flowsOf(s).values()].some((f) => f.key.sport === 10000 + n - 1));
    } finally {
      small.close();
    }
  });

  test('a restarted agent adopts the pinned flows; a new capacity starts a fresh map', (t) => {
    if (skipReason) return t.skip(skipReason);
    const first = MeteringDatapath.open({ pinRoot: SMALL_PIN_ROOT, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, maxFlows: 1024 });
    const s1 = first.readFlows();
    const c1 = first.readFlowCounters();
    first.close();
    assert.ok(s1.count > 0);
    const again = MeteringDatapath.open({ pinRoot: SMALL_PIN_ROOT, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, maxFlows: 1024 });
    try {
      const s2 = again.readFlows();
      assert.equal(s2.mapId, s1.mapId);
      assert.equal(s2.count, s1.count);
      assert.deepEqual(again.readFlowCounters(), c1);
      assert.equal(again.flowsEnabled(), true, 'the switch is in the pinned config');
    } finally {
      again.close();
    }
    const resized = MeteringDatapath.open({ pinRoot: SMALL_PIN_ROOT, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, maxFlows: 2048 });
    try {
      const s3 = resized.readFlows();
      assert.notEqual(s3.mapId, s1.mapId);
      assert.equal(s3.count, 0);
      assert.equal(resized.readFlowCounters().inserted, 0n);
      assert.equal(resized.maxFlows, 2048);
      assert.equal(pinnedCapacity(join(SMALL_PIN_ROOT, 'maps', 'tg_flows')), 2048, 'the new map is pinned');
    } finally {
      resized.close();
    }
  });

  test('maxFlows is checked', (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.throws(() => MeteringDatapath.open({ pinRoot: SMALL_PIN_ROOT, maxFlows: 10 }), /maxFlows must be an integer in \[1024, 16777216\], got 10/);
  });
});

/** The capacity of a pinned map. */
function pinnedCapacity(pin: string): number {
  const m = BpfMap.openPinned(pin);
  try {
    return m.maxEntries;
  } finally {
    m.close();
  }
}
