// Rate limits in the datapath under BPF_PROG_TEST_RUN, fed by the production
// compiler: token buckets per source, per destination, per rule and per
// tenant, in packets and bytes, for rate-limit rules and standing limits;
// refill; what counts (hits, drops, the rate_limited reason, events); the
// agent's sweep of buckets that are full again; and a full bucket table,
// where a new source passes unlimited and is counted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TypedMap, u32, u64 } from '../src/kernel/index.js';
import { TG_SEV_SENT } from '../src/kernel/abi.gen.js';
import { limitSlotName } from '../src/firewall/compile.js';
import { ipv4, udp } from '../lab/packets.js';
import { frameOf, Harness, OBJECT, type Prog } from './helpers/firewall.js';

/** A UDP datagram of `size` L3 bytes (20 IPv4 + 8 UDP + payload). */
const datagram = (src: string, dst: string, size = 36, dport = 7000) =>
  frameOf(ipv4({ src, dst, l4: udp({ sport: 40000, dport, payload: Buffer.alloc(size - 28) }) }));

describe('rate limits under BPF_PROG_TEST_RUN', () => {
  let skipReason: string | undefined;
  const harnesses: Harness[] = [];
  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
  });
  after(() => harnesses.forEach((h) => h.close()));
  const harness = (yaml: string): Harness => {
    const h = new Harness();
    harnesses.push(h);
    h.apply(yaml);
    return h;
  };
  /** Verdicts of frames sent in order: 'pass' or 'drop'. */
  const send = (h: Harness, prog: Prog, frames: Buffer[]) => frames.map((f) => (h.run(prog, f) ? 'drop' : 'pass'));
  const limited = (h: Harness, name: string) => h.fw.readLimitDrops().get(h.slots.get(name)!)?.packets ?? 0n;

  test('a rate-limit rule: one bucket per source, burst then drops, on every hook', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: limit-udp, action: rate-limit, protocols: [udp], ports: [7000], rateLimit: { pps: 1, burst: 3, per: source } }
`);
    const progs: Prog[] = ['tg_filter_ingress', 'tg_filter_egress', 'tg_filter_xdp', 'tg_meter_ingress'];
    progs.forEach((p, i) => {
      const a = `198.19.${i}.1`;
      const b = `198.19.${i}.2`;
      assert.deepEqual(send(h, p, [1, 2, 3, 4, 5].map(() => datagram(a, '198.18.1.10'))), ['pass', 'pass', 'pass', 'drop', 'drop'], `${p}: source a`);
      assert.deepEqual(send(h, p, [1, 2, 3, 4].map(() => datagram(b, '198.18.1.10'))), ['pass', 'pass', 'pass', 'drop'], `${p}: source b has its own bucket`);
      assert.equal(send(h, p, [datagram(a, '198.18.1.10', 36, 7001)])[0], 'pass', `${p}: other traffic is not limited`);
    });
    assert.equal(h.hitCount(h.slots.get('limit-udp')!), 36n, 'the rule counts every packet it decided');
    assert.equal(limited(h, 'limit-udp'), 12n);
    assert.equal(h.stats().rate_limited, 12n);
    assert.equal(h.fw.bucketFill().used, 8);
  });

  test('bytes per second: a byte bucket refuses a packet bigger than what is left', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: bytes, action: rate-limit, protocols: [udp], rateLimit: { bps: 8000, burstBytes: 1000 } }
`);
    const big = datagram('198.19.9.1', '198.18.1.10', 400);
    assert.deepEqual(send(h, 'tg_filter_ingress', [big, big, big]), ['pass', 'pass', 'drop']);
    assert.deepEqual(send(h, 'tg_filter_ingress', [datagram('198.19.9.1', '198.18.1.10', 200)]), ['pass'], '200 bytes were left');
    assert.deepEqual(h.fw.readLimitDrops().get(h.slots.get('bytes')!), { packets: 1n, bytes: 400n });
  });

  test('per destination and per rule share buckets across sources', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: per-dst, action: rate-limit, protocols: [udp], ports: [7000], rateLimit: { pps: 1, burst: 2, per: destination } }
    - { name: per-rule, action: rate-limit, protocols: [udp], ports: [7001], rateLimit: { pps: 1, burst: 2, per: rule } }
`);
    const p = 'tg_filter_ingress';
    assert.deepEqual(send(h, p, ['198.19.1.1', '198.19.1.2', '198.19.1.3'].map((s) => datagram(s, '198.18.1.10'))), ['pass', 'pass', 'drop']);
    assert.deepEqual(send(h, p, [datagram('198.19.1.4', '198.18.1.11')]), ['pass'], 'another destination has its own bucket');
    assert.deepEqual(send(h, p, [['198.19.1.1', '198.18.1.10'], ['198.19.1.2', '198.18.2.10'], ['198.19.1.3', '198.18.3.10']].map(([s, d]) => datagram(s!, d!, 36, 7001))),
      ['pass', 'pass', 'drop'], 'one bucket for the whole rule');
  });

  test('standing limits: per tenant on their side, after the rules; denied packets take no tokens', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: no-telnet, action: deny, direction: both, protocols: [tcp], ports: [23] }
    - { name: no-9, action: deny, protocols: [udp], ports: [9] }
  rateLimits:
    - { name: alpha-in, tenant: alpha, direction: ingress, pps: 1, burst: 2, per: tenant }
    - { name: any-out, direction: egress, pps: 1, burst: 1, per: source }
`);
    const p = 'tg_filter_ingress';
    assert.deepEqual(send(h, p, [datagram('198.19.1.1', '198.18.1.10', 36, 9), datagram('198.19.1.1', '198.18.1.10', 36, 9)]), ['drop', 'drop'], 'denied by a rule');
    assert.deepEqual(send(h, p, ['198.19.1.1', '198.19.1.2', '198.19.1.3'].map((s) => datagram(s, '198.18.1.10'))), ['pass', 'pass', 'drop'],
      'one bucket for everything alpha receives, whoever sends it');
    assert.deepEqual(send(h, p, [datagram('198.19.1.1', '198.18.1.11')]), ['drop'], 'the same tenant, another address');
    assert.deepEqual(send(h, p, [1, 2, 3].map(() => datagram('198.19.1.1', '198.19.5.5'))), ['pass', 'pass', 'pass'], 'nobody\'s traffic is not limited');
    // gamma sends: any-out limits each sending address of any tenant; alpha-in does not apply
    assert.deepEqual(send(h, p, [1, 2].map(() => datagram('198.18.3.7', '198.19.5.5'))), ['pass', 'drop']);
    assert.deepEqual(send(h, p, [datagram('198.18.3.8', '198.19.5.5')]), ['pass'], 'another source of gamma');
    const status = (name: string) => ({
      applied: h.hitCount(h.slots.get(limitSlotName(name))!),
      limited: h.fw.readLimitDrops().get(h.slots.get(limitSlotName(name))!)?.packets ?? 0n,
    });
    assert.deepEqual(status('alpha-in'), { applied: 4n, limited: 2n });
    assert.deepEqual(status('any-out'), { applied: 3n, limited: 1n });
    assert.equal(h.stats().rate_limited, 3n);
  });

  test('a limit changed by an update holds, each time its generation is written again', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness('  rules: []\n');
    // Bursts 3, 1, 3, 1, 2: generations 1, 0, 1, 0, 1 (the firewall skips rewriting an array that
    // holds what it wrote there last, so this catches a skip that compares the wrong thing).
    [3, 1, 3, 1, 2].forEach((burst, i) => {
      h.apply(`  rules:\n    - { name: limit, action: rate-limit, protocols: [udp], rateLimit: { pps: 1, burst: ${burst}, per: source } }\n`);
      const src = `198.19.40.${i + 1}`; // a bucket of its own each time
      const verdicts = send(h, 'tg_filter_ingress', Array.from({ length: burst + 1 }, () => datagram(src, '198.18.1.10')));
      assert.deepEqual(verdicts, [...Array(burst).fill('pass'), 'drop'], `update ${i + 1}: burst ${burst}`);
    });
  });

  test('a bucket refills at the rate, up to its burst', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: slow, action: rate-limit, protocols: [udp], rateLimit: { pps: 20, burst: 1 } }
`);
    const f = datagram('198.19.1.1', '198.18.1.10');
    assert.deepEqual(send(h, 'tg_filter_ingress', [f, f]), ['pass', 'drop']);
    await sleep(150); // 3 packets' worth at 20 pps, but the bucket holds 1
    assert.deepEqual(send(h, 'tg_filter_ingress', [f, f]), ['pass', 'drop']);
  });

  test('rate-limited packets are events, within the event budget', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  events: { logRate: 3 }
  rules:
    - { name: limited, action: rate-limit, protocols: [udp], rateLimit: { pps: 1, burst: 1 } }
`);
    const stats = new TypedMap(h.obj.map('tg_sev_stats'), u32, u64);
    const f = datagram('198.19.1.1', '198.18.1.10');
    h.obj.program('tg_filter_ingress').testRun({ data: f, repeat: 10 }); // 1 passes, 9 dropped, 3 of them reported
    assert.equal(limited(h, 'limited'), 9n);
    assert.equal(stats.getSum(TG_SEV_SENT), 3n);
  });

  test('the sweep removes buckets that are full again, and keeps the others', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: fast, action: rate-limit, protocols: [udp], ports: [7000], rateLimit: { pps: 1000, burst: 1 } }
    - { name: slow, action: rate-limit, protocols: [udp], ports: [7001], rateLimit: { pps: 1, burst: 10 } }
`);
    send(h, 'tg_filter_ingress', [datagram('198.19.1.1', '198.18.1.10', 36, 7000), datagram('198.19.1.1', '198.18.1.10', 36, 7001)]);
    assert.equal(h.fw.bucketFill().used, 2);
    await sleep(50); // fast fills in 1 ms, slow in 10 s
    const fill = new Map([[h.slots.get('fast')!, 1_000_000n], [h.slots.get('slow')!, 10_000_000_000n]]);
    assert.equal(h.fw.sweepBuckets(fill, process.hrtime.bigint()), 1);
    assert.equal(h.fw.bucketFill().used, 1);
    assert.equal(h.fw.sweepBuckets(new Map(), process.hrtime.bigint()), 1, 'buckets of limits that are gone go too');
    assert.equal(h.fw.bucketFill().used, 0);
  });

  test('a full bucket table: a new source passes unlimited, counted as rl_no_bucket', (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = harness(`
  rules:
    - { name: each, action: rate-limit, protocols: [udp], rateLimit: { pps: 1, burst: 1, per: source } }
`);
    const { capacity } = h.fw.bucketFill();
    const frame = datagram('198.19.0.0', '198.18.1.10');
    const prog = h.obj.program('tg_filter_ingress');
    for (let i = 0; i < capacity; i++) {
      frame.writeUInt32BE((0xc6130000 + i) >>> 0, 14 + 12); // 198.19.x.y: a new source each time
      prog.testRun({ data: frame });
    }
    assert.equal(h.fw.bucketFill().used, capacity);
    const fresh = datagram('198.18.200.1', '198.18.1.10');
    assert.deepEqual(send(h, 'tg_filter_ingress', [fresh, fresh, fresh]), ['pass', 'pass', 'pass']);
    assert.equal(h.stats().rl_no_bucket, 3n);
  });
});
