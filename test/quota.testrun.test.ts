// Table test of the quota verdicts in bpf/progs/meter.bpf.c through
// BPF_PROG_TEST_RUN: the production compilers (compileMetering,
// compileQuotas) and map writers (PolicyMaps, QuotaMaps) fill the maps, then
// real frames run through the tc and XDP programs. Each step asserts the
// verdict, the billing counter, the quota's bytes and drops, and the events
// the datapath emits (read with the production ring buffer reader).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, RingBufReader, TypedMap, taiOffsetMs, u32 } from '../src/kernel/index.js';
import {
  TG_DIR_EGRESS, TG_DIR_INGRESS, TG_DIR_MAX, TG_QEV_EXHAUSTED, TG_QEV_RENEWED, TG_QEV_THRESHOLD, TgCounter, TgMeterConfig, TgQuotaEvent,
} from '../src/kernel/abi.gen.js';
import { PolicyMaps } from '../src/metering/policy-maps.js';
import { QuotaMaps } from '../src/metering/quota-maps.js';
import { compileQuotas, type QuotaPlan } from '../src/billing/quota-compile.js';
import { compileMetering, parsePolicy, type Policy } from '../src/policy/index.js';
import { ethernet, ipv4, udp } from '../lab/packets.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const OBJECT = join(ROOT, 'build', 'bpf', 'meter.bpf.o');
const MAX_TENANTS = 8;
const MAX_CLASSES = 4;
const TENANTS = new Map([['alpha', 1], ['beta', 2], ['gamma', 3]]);
const CLASSES = new Map([['internet', 0], ['mgmt', 1]]);
const [INTERNET, MGMT] = [0, 1];
const A4 = '198.18.1.10';
const B4 = '198.18.2.20';
const G4 = '198.18.3.30';
const PEER = '198.19.0.1';
const TC_ACT_SHOT = 2;
const TC_ACT_UNSPEC = -1;
const XDP_DROP = 1;
const XDP_PASS = 2;

const POLICY = (quotas: string) => `
version: 1
classes:
  - name: mgmt
    billable: false
    match: { protocols: [udp], ports: [22] }
tenants:
  - { name: alpha, selectors: { cidrs: [198.18.1.0/24] } }
  - { name: beta, selectors: { cidrs: [198.18.2.0/24] } }
  - { name: gamma, selectors: { cidrs: [198.18.3.0/24] } }
quotas:
${quotas}`;

/** An IPv4/UDP frame of exactly l3 bytes (IPv4 tot_len). */
const frame = (src: string, dst: string, l3: number, dport = 4000): Buffer =>
  ethernet({ payload: ipv4({ src, dst, l4: udp({ sport: 5000, dport, payload: Buffer.alloc(l3 - 28) }) }) });

describe('quota verdicts under BPF_PROG_TEST_RUN', { concurrency: false }, () => {
  let skipReason: string | undefined;
  let obj: BpfObject | undefined;
  let quotas: QuotaMaps;
  let counters: TypedMap<number, TgCounter>;
  let reader: RingBufReader | undefined;
  const events: ReturnType<typeof TgQuotaEvent.decode>[] = [];
  let plan: QuotaPlan;
  const offset = taiOffsetMs();

  before(async () => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    obj = BpfObject.open(OBJECT);
    for (const m of ['tg_meter_counters', 'tg_quota_refs']) obj.setMaxEntries(m, MAX_TENANTS * MAX_CLASSES * TG_DIR_MAX);
    obj.setConst('tg_cfg_max_tenants', MAX_TENANTS);
    obj.setConst('tg_cfg_max_classes', MAX_CLASSES);
    obj.load();
    counters = new TypedMap(obj.map('tg_meter_counters'), u32, TgCounter);
    new TypedMap(obj.map('tg_meter_config'), u32, TgMeterConfig).set(0, { generation: 0, flags: 0, metered_netns: 0, pad: 0 });
    quotas = new QuotaMaps(obj, MAX_CLASSES);
    reader = new RingBufReader(obj.map('tg_quota_events'), { pollMs: 20 });
    reader.on('records', (rs) => events.push(...rs.map((r) => TgQuotaEvent.decode(r))));
    await reader.ready;
  });

  after(async () => {
    await reader?.stop();
    obj?.close();
  });

  /** Compiles a policy as the agent does and writes it; seed: each quota's bytes used so far. */
  function install(doc: Policy, now = Date.now(), seed: (index: number) => bigint = () => 0n): QuotaPlan {
    const metering = compileMetering(doc, { tenantIds: TENANTS, classIds: CLASSES, maxTenants: MAX_TENANTS, maxClasses: MAX_CLASSES, ifindexOf: () => undefined, generation: 0 });
    new PolicyMaps(obj!).write(metering);
    plan = compileQuotas(doc, { tenantIds: TENANTS, classes: metering.classes, maxClasses: MAX_CLASSES, existing: quotas.existing(), now, taiOffsetMs: offset });
    quotas.write(plan, (s) => seed(s.index));
    return plan;
  }

  const idx = (tenant: number, cls: number, dir: number) => (tenant * MAX_CLASSES + cls) * TG_DIR_MAX + dir;
  const billed = (i: number) => counters.getSum(i) ?? { packets: 0n, bytes: 0n };
  const slotOf = (index: number) => plan.slots.find((s) => s.index === index)!.slot;
  const used = (index: number) => quotas.state.get(slotOf(index))!.used;
  const dropped = (index: number) => quotas.dropped().get(slotOf(index)) ?? { packets: 0n, bytes: 0n };
  const run = (prog: string, data: Buffer) => obj!.program(prog).testRun({ data }).retval | 0;
  /** Forgets the events of earlier steps (the reader delivers them a little later). */
  async function drain(): Promise<void> {
    let n = -1;
    while (n !== events.length) {
      n = events.length;
      await new Promise((r) => setTimeout(r, 100));
    }
    events.splice(0);
  }
  async function eventsAfter(n: number): Promise<typeof events> {
    const deadline = Date.now() + 3000;
    while (events.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return events.splice(0);
  }

  test('block: the packet that reaches the budget passes, the next is refused and billed to nobody; marks and exhaustion are reported once', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await drain();
    install(parsePolicy(POLICY('  - { tenant: alpha, class: internet, direction: egress, budget: 3000B, thresholds: [50, 100], action: block }\n'), 'q'));
    const egress = idx(1, INTERNET, TG_DIR_EGRESS);
    const before = billed(egress);
    const verdicts = [1, 2, 3].map(() => run('tg_meter_ingress', frame(A4, PEER, 1000)));
    assert.deepEqual(verdicts, [TC_ACT_UNSPEC, TC_ACT_UNSPEC, TC_ACT_UNSPEC], 'the first 3000 bytes pass');
    assert.equal(used(0), 3000n);
    assert.equal(run('tg_meter_ingress', frame(A4, PEER, 1000)), TC_ACT_SHOT, 'the budget is spent: refused at tc');
    assert.equal(run('tg_meter_xdp', frame(A4, PEER, 60)), XDP_DROP, 'and at XDP');
    const after = billed(egress);
    assert.deepEqual({ packets: after.packets - before.packets, bytes: after.bytes - before.bytes }, { packets: 3n, bytes: 3000n }, 'refused packets are not billed');
    assert.deepEqual(dropped(0), { packets: 2n, bytes: 1060n });
    assert.equal(used(0), 3000n, 'refused packets spend nothing');

    const ev = await eventsAfter(3);
    assert.deepEqual(ev.map((e) => [e.kind, e.mark, e.used, e.slot]), [
      [TG_QEV_THRESHOLD, 0, 2000n, slotOf(0)], // 50% = 1500 bytes, crossed by the second packet
      [TG_QEV_THRESHOLD, 1, 3000n, slotOf(0)], // 100%, reached exactly by the third
      [TG_QEV_EXHAUSTED, 0, 3000n, slotOf(0)], // the first refused packet, once
    ]);
    assert.ok(ev[0]!.at_ns <= ev[1]!.at_ns && ev[1]!.at_ns <= ev[2]!.at_ns, 'the alerts precede the cut-off');
    assert.equal(ev[0]!.period_end_ns, plan.slots[0]!.cfg.period_end_ns);
  });

  test('block spares what the quota does not cover: free classes, the other direction, other tenants', (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal(run('tg_meter_ingress', frame(A4, PEER, 1000)), TC_ACT_SHOT, 'still spent');
    assert.equal(run('tg_meter_ingress', frame(A4, PEER, 200, 22)), TC_ACT_UNSPEC, 'management (a free class) is never blocked');
    assert.equal(run('tg_meter_egress', frame(PEER, A4, 1000)), TC_ACT_UNSPEC, "alpha's ingress is not in an egress quota");
    assert.equal(run('tg_meter_ingress', frame(B4, PEER, 1000)), TC_ACT_UNSPEC, 'beta has no quota');
    assert.equal(run('tg_meter_xdp', frame(B4, PEER, 1000)), XDP_PASS);
    assert.equal(billed(idx(1, MGMT, TG_DIR_EGRESS)).bytes, 200n);
  });

  test('a reload keeps the slot and its bytes; a higher budget lets traffic through again', (t) => {
    if (skipReason) return t.skip(skipReason);
    const slot = slotOf(0);
    install(parsePolicy(POLICY('  - { tenant: alpha, class: internet, direction: egress, budget: 4000B, action: block }\n'), 'q'));
    assert.equal(slotOf(0), slot);
    assert.equal(used(0), 3000n, 'the datapath kept counting: not seeded again');
    assert.equal(run('tg_meter_ingress', frame(A4, PEER, 1000)), TC_ACT_UNSPEC);
    assert.equal(run('tg_meter_ingress', frame(A4, PEER, 100)), TC_ACT_SHOT);
  });

  test('several quotas on one counter: each consumes; the first spent one that blocks decides', (t) => {
    if (skipReason) return t.skip(skipReason);
    install(parsePolicy(POLICY([
      '  - { tenant: beta, direction: both, budget: 10kB, action: none }',
      '  - { tenant: beta, class: internet, direction: ingress, budget: 1500B, action: block }',
      '',
    ].join('\n')), 'q'));
    assert.equal(run('tg_meter_egress', frame(PEER, B4, 1000)), TC_ACT_UNSPEC);
    assert.equal(run('tg_meter_ingress', frame(B4, PEER, 700)), TC_ACT_UNSPEC, 'egress: only the every-class quota');
    assert.equal(run('tg_meter_egress', frame(PEER, B4, 1000)), TC_ACT_UNSPEC, '1000 < 1500: passes and overshoots');
    assert.equal(run('tg_meter_egress', frame(PEER, B4, 1000)), TC_ACT_SHOT);
    assert.deepEqual([used(0), used(1)], [2700n, 2000n]);
    assert.equal(plan.slots.find((s) => s.quota.tenant === 'alpha'), undefined);
    assert.equal(quotas.existing().size, 2, "alpha's slot was freed");
  });

  test('throttle: once spent, traffic is policed to the rate; the burst is how far ahead it may run', (t) => {
    if (skipReason) return t.skip(skipReason);
    // 8 bit/s = 1 byte per second and a 2500-byte burst: after the budget, two
    // 1000-byte packets fit (1000 s and 2000 s ahead of the clock), a third does not.
    install(parsePolicy(POLICY('  - { tenant: gamma, class: internet, direction: egress, budget: 1000B, action: throttle, throttleRate: 8bit, throttleBurst: 2500B }\n'), 'q'));
    const v = [1, 2, 3, 4].map(() => run('tg_meter_ingress', frame(G4, PEER, 1000)));
    assert.deepEqual(v, [TC_ACT_UNSPEC, TC_ACT_UNSPEC, TC_ACT_UNSPEC, TC_ACT_SHOT]);
    assert.equal(used(0), 3000n, 'policed traffic that passes is counted');
    assert.deepEqual(dropped(0), { packets: 1n, bytes: 1000n });
  });

  test('a period that ended renews in the datapath: the budget is whole again, without the agent', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await drain();
    const doc = parsePolicy(POLICY('  - { tenant: gamma, direction: egress, period: hour, budget: 1000B, action: block }\n'), 'q');
    // Written an hour ago: the period it knows ends at the top of this hour; the next is the running one.
    install(doc, Date.now() - 3_600_000, () => 5000n);
    assert.equal(run('tg_meter_ingress', frame(G4, PEER, 600)), TC_ACT_UNSPEC, 'the new period starts at 0');
    assert.equal(used(0), 600n);
    assert.equal(run('tg_meter_ingress', frame(G4, PEER, 600)), TC_ACT_UNSPEC);
    assert.equal(run('tg_meter_ingress', frame(G4, PEER, 600)), TC_ACT_SHOT, 'and is enforced');
    const ev = await eventsAfter(4);
    assert.deepEqual(ev.map((e) => [e.kind, e.mark]), [[TG_QEV_RENEWED, 0], [TG_QEV_THRESHOLD, 0], [TG_QEV_THRESHOLD, 1], [TG_QEV_EXHAUSTED, 0]], 'renewed, then 80% and 100% crossed by one packet, then the cut-off');
    assert.equal(ev[0]!.period_end_ns, plan.slots[0]!.cfg.next_end_ns);
  });

  test('past every period the agent gave, a quota is not in force: traffic passes and is not counted against it', (t) => {
    if (skipReason) return t.skip(skipReason);
    const doc = parsePolicy(POLICY('  - { tenant: gamma, direction: ingress, period: hour, budget: 1000B, action: block }\n'), 'q');
    install(doc, Date.now() - 2 * 3_600_000, () => 5000n);
    assert.equal(run('tg_meter_egress', frame(PEER, G4, 600)), TC_ACT_UNSPEC);
    assert.equal(used(0), 5000n);
  });

  test('a restarted agent adopts the refs in the maps: a quota it no longer has stops refusing traffic', (t) => {
    if (skipReason) return t.skip(skipReason);
    install(parsePolicy(POLICY('  - { tenant: beta, class: internet, direction: egress, budget: 100B, action: block }\n'), 'q'));
    assert.equal(run('tg_meter_ingress', frame(B4, PEER, 200)), TC_ACT_UNSPEC);
    assert.equal(run('tg_meter_ingress', frame(B4, PEER, 200)), TC_ACT_SHOT);
    quotas = new QuotaMaps(obj!, MAX_CLASSES); // what a new agent reads from the pinned maps
    install(parsePolicy(POLICY('  - { tenant: gamma, class: internet, direction: ingress, budget: 1GB }\n'), 'q'));
    assert.equal(run('tg_meter_ingress', frame(B4, PEER, 200)), TC_ACT_UNSPEC, "beta's refs were found and emptied");
    const named = quotas.refs.entries().filter(([, r]) => r.slot.some((x) => x !== 0)).map(([i]) => i);
    assert.deepEqual(named, [idx(3, INTERNET, TG_DIR_INGRESS)], "only gamma's ingress counter names a quota");
  });
});
