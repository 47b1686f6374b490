import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TG_DIR_MAX, TG_MAX_QUOTAS, TG_QUOTA_ALL_CLASSES, TG_QUOTA_BLOCK, TG_QUOTA_MARKS, TG_QUOTA_NONE, TG_QUOTA_REFS, TG_QUOTA_THROTTLE,
} from '../kernel/abi.gen.js';
import { parsePolicy, type Policy, type Quota } from '../policy/index.js';
import {
  burstBytes, compileQuotas, identityKey, identityOf, markBytes, QuotaCompileError, type QuotaContext, type QuotaIdentity,
} from './quota-compile.js';

const GB = 1_000_000_000;
const TAI = 37_000;
const NOW = Date.UTC(2026, 10, 15, 12); // 2026-11-15T12:00Z
const ns = (ms: number): bigint => BigInt(ms + TAI) * 1_000_000n;

const HEAD = `version: 1
tenants:
  - { name: acme, plan: berlin, selectors: { cidrs: [198.18.1.0/24] } }
  - { name: globex, selectors: { cidrs: [198.18.2.0/24] } }
classes:
  - { name: video, match: { cidrs: [198.51.100.0/24] } }
  - { name: mgmt, billable: false, match: { cidrs: [198.18.255.0/24] } }
plans:
  - { name: berlin, currency: EUR, timeZone: Europe/Berlin }
quotas:
`;
const policyOf = (quotas: string): Policy => parsePolicy(HEAD + quotas, 'quota-compile.test');

const ACME = 2;
const GLOBEX = 5;
const MAX_CLASSES = 8;
const INTERNET = 1;
const MGMT = 2;
const VIDEO = 3;

const ctxOf = (over: Partial<QuotaContext> = {}): QuotaContext => ({
  tenantIds: new Map([['acme', ACME], ['globex', GLOBEX]]),
  classes: [
    { name: 'internet', id: INTERNET, billable: true },
    { name: 'mgmt', id: MGMT, billable: false },
    { name: 'video', id: VIDEO, billable: true },
  ],
  maxClasses: MAX_CLASSES,
  existing: new Map(),
  now: NOW,
  taiOffsetMs: TAI,
  ...over,
});

const counter = (tenant: number, cls: number, dir: 0 | 1): number => (tenant * MAX_CLASSES + cls) * TG_DIR_MAX + dir;
const sortedRefs = (refs: Map<number, number[]>): Array<[number, number[]]> => [...refs].sort((a, b) => a[0] - b[0]);

/** The QuotaCompileError's problems (fails the test if compileQuotas succeeded). */
function problemsOf(policy: Policy, ctx: QuotaContext): readonly string[] {
  try {
    compileQuotas(policy, ctx);
  } catch (err) {
    assert.ok(err instanceof QuotaCompileError, `expected QuotaCompileError, got ${String(err)}`);
    assert.equal(err.name, 'QuotaCompileError');
    for (const p of err.problems) assert.ok(err.message.includes(p), 'the message lists every problem');
    return err.problems;
  }
  assert.fail('the quotas compiled');
}

test('identityKey and identityOf', () => {
  assert.equal(identityKey({ tenantId: 2, classId: TG_QUOTA_ALL_CLASSES, dirs: 3, period: 1 }), '2/65535/3/1');
  assert.equal(identityKey({ tenantId: 0, classId: 0, dirs: 1, period: 0 }), '0/0/1/0');
  assert.notEqual(identityKey({ tenantId: 1, classId: 23, dirs: 1, period: 0 }), identityKey({ tenantId: 12, classId: 3, dirs: 1, period: 0 }));
  assert.deepEqual(identityOf({ tenant_id: 7, class_id: 4, dirs: 2, period: 2 }), { tenantId: 7, classId: 4, dirs: 2, period: 2 });
});

test('markBytes: the first byte count at which used * 100 >= budget * percent', () => {
  assert.equal(markBytes(1000, 80), 800n);
  assert.equal(markBytes(999, 1), 10n); // 9.99
  assert.equal(markBytes(999, 33), 330n); // 329.67
  assert.equal(markBytes(999, 100), 999n);
  assert.equal(markBytes(3, 34), 2n); // 1.02
  assert.equal(markBytes(1, 1), 1n);
  assert.equal(markBytes(0, 50), 0n);
  assert.equal(markBytes(100, 1000), 1000n);
  assert.equal(markBytes(Number.MAX_SAFE_INTEGER, 100), 9_007_199_254_740_991n);
  assert.equal(markBytes(Number.MAX_SAFE_INTEGER, 1000), 90_071_992_547_409_910n);
  assert.equal(markBytes(Number.MAX_SAFE_INTEGER, 1), 90_071_992_547_410n); // 90071992547409.91
  // The rule: m * 100 >= budget * percent and (m - 1) * 100 < budget * percent.
  for (const [b, p] of [[1, 99], [7, 13], [123_456_789, 77], [GB, 95]]) {
    const m = markBytes(b, p);
    assert.ok(m * 100n >= BigInt(b) * BigInt(p) && (m - 1n) * 100n < BigInt(b) * BigInt(p), `${b} ${p}`);
  }
});

test('burstBytes: throttleBurst when given, else 500 ms of the rate but at least 256 KiB', () => {
  const q = (rate: number, burst?: number): Quota => ({
    tenant: 'a', direction: 'both', budget: GB, period: 'month', thresholds: [], action: 'throttle', throttleRate: rate, throttleBurst: burst,
  });
  assert.equal(burstBytes(q(8)), 262_144);
  assert.equal(burstBytes(q(4_000_000)), 262_144); // 250 000 B in 500 ms
  assert.equal(burstBytes(q(4_194_304)), 262_144); // exactly 256 KiB in 500 ms
  assert.equal(burstBytes(q(4_194_305)), 262_145); // 262 144.0625 rounds up
  assert.equal(burstBytes(q(10_000_000)), 625_000);
  assert.equal(burstBytes(q(1_000_000_000)), 62_500_000);
  assert.equal(burstBytes(q(1_000_000_000, 5000)), 5000, 'a given burst wins, even below 256 KiB');
  assert.equal(burstBytes(q(8, 10 * GB)), 10 * GB);
  assert.equal(burstBytes({ ...q(8), action: 'none', throttleRate: undefined }), 262_144);
});

test('counter indexes: (tenant * maxClasses + class) * 2 + dir; no class = every billable class; both = both dirs', () => {
  const policy = policyOf(`  - { tenant: acme, class: video, direction: egress, budget: 1GB }
  - { tenant: acme, direction: both, budget: 10GB, period: day }
  - { tenant: globex, class: internet, direction: ingress, budget: 5GB, period: hour }
  - { tenant: globex, direction: egress, budget: 5GB }
`);
  const plan = compileQuotas(policy, ctxOf());
  assert.equal(counter(ACME, VIDEO, 1), 39);
  assert.deepEqual(sortedRefs(plan.refs), [
    [34, [2]], // acme internet ingress
    [35, [2]], // acme internet egress
    [38, [2]], // acme video ingress
    [39, [1, 2]], // acme video egress: the class quota and the all-classes one
    [82, [3]], // globex internet ingress
    [83, [4]], // globex internet egress
    [87, [4]], // globex video egress; never mgmt (free): 84/85 absent
  ]);
  assert.equal(counter(GLOBEX, INTERNET, 0), 82);
  assert.equal(counter(GLOBEX, VIDEO, 1), 87);
  for (const dir of [0, 1] as const) {
    assert.equal(plan.refs.has(counter(ACME, MGMT, dir)), false);
    assert.equal(plan.refs.has(counter(GLOBEX, MGMT, dir)), false);
  }
  assert.deepEqual(plan.slots.map((s) => [s.slot, s.index, s.fresh]), [[1, 0, true], [2, 1, true], [3, 2, true], [4, 3, true]]);
  assert.deepEqual(plan.freed, []);
  assert.deepEqual(plan.slots.map((s) => [s.cfg.tenant_id, s.cfg.class_id, s.cfg.dirs, s.cfg.period]), [
    [ACME, VIDEO, 2, 2], // egress = 1 << 1, month = 2
    [ACME, TG_QUOTA_ALL_CLASSES, 3, 1], // both, day
    [GLOBEX, INTERNET, 1, 0], // ingress = 1 << 0, hour
    [GLOBEX, TG_QUOTA_ALL_CLASSES, 2, 2],
  ]);
  assert.deepEqual(plan.slots.map((s) => s.quota), policy.quotas);
});

test('an all-classes quota covers the billable classes of ctx.classes, not those of the policy', () => {
  const policy = policyOf('  - { tenant: acme, direction: ingress, budget: 1GB }\n');
  const plan = compileQuotas(policy, ctxOf({
    classes: [{ name: 'internet', id: 0, billable: true }, { name: 'video', id: 6, billable: false }, { name: 'extra', id: 7, billable: true }],
  }));
  assert.deepEqual(sortedRefs(plan.refs), [[(ACME * 8 + 0) * 2, [1]], [(ACME * 8 + 7) * 2, [1]]]);
  const none = compileQuotas(policy, ctxOf({ classes: [{ name: 'internet', id: 1, billable: false }] }));
  assert.deepEqual(sortedRefs(none.refs), [], 'no billable class: no counter');
  assert.equal(none.slots.length, 1);
});

test('cfg: limit, marks, action, rate, burst and period ends', () => {
  const policy = policyOf(`  - { tenant: globex, class: internet, budget: 1GB, thresholds: [50, 80, 95], action: throttle, throttleRate: 10mbit }
  - { tenant: globex, class: video, budget: 999, thresholds: [1, 33, 100, 150], action: block }
  - { tenant: globex, direction: ingress, budget: 1TB, thresholds: [], period: day }
  - { tenant: globex, direction: egress, budget: 5GB, period: hour, action: throttle, throttleRate: 100mbit }
  - { tenant: globex, class: internet, direction: egress, budget: 5GB, action: throttle, throttleRate: 12345bit, throttleBurst: 1MB }
  - { tenant: globex, class: video, direction: ingress, budget: 5GB, action: throttle, throttleRate: 20000001bit }
`);
  const plan = compileQuotas(policy, ctxOf());
  const [a, b, c, d, e, f] = plan.slots;
  const month = { period_end_ns: ns(Date.UTC(2026, 11, 1)), next_end_ns: ns(Date.UTC(2027, 0, 1)) };

  assert.deepEqual(a.cfg, {
    limit: 1_000_000_000n,
    marks: [500_000_000n, 800_000_000n, 950_000_000n, 0n],
    rate: 1_250_000n, // 10 000 000 bit/s / 8
    burst_ns: 500_000_000n, // the default: half a second of the rate
    ...month,
    tenant_id: GLOBEX, class_id: INTERNET, dirs: 3, period: 2,
    action: TG_QUOTA_THROTTLE,
    pad: 0,
  });
  assert.equal(month.period_end_ns, 1_796_083_237_000_000_000n, 'TAI ns of 2026-12-01T00:00Z');
  assert.deepEqual(a.period, { kind: 'month', timeZone: 'UTC', id: '2026-11', start: Date.UTC(2026, 10, 1), end: Date.UTC(2026, 11, 1) });

  assert.deepEqual(b.cfg, {
    limit: 999n,
    marks: [10n, 330n, 999n, 1499n], // ceil(9.99), ceil(329.67), 999, ceil(1498.5)
    rate: 0n, burst_ns: 0n,
    ...month,
    tenant_id: GLOBEX, class_id: VIDEO, dirs: 3, period: 2,
    action: TG_QUOTA_BLOCK,
    pad: 0,
  });

  assert.deepEqual(c.cfg, {
    limit: 1_000_000_000_000n,
    marks: [0n, 0n, 0n, 0n],
    rate: 0n, burst_ns: 0n,
    period_end_ns: ns(Date.UTC(2026, 10, 16)), next_end_ns: ns(Date.UTC(2026, 10, 17)),
    tenant_id: GLOBEX, class_id: TG_QUOTA_ALL_CLASSES, dirs: 1, period: 1,
    action: TG_QUOTA_NONE,
    pad: 0,
  });
  assert.equal(c.period.id, '2026-11-15');

  assert.equal(d.cfg.rate, 12_500_000n);
  assert.equal(d.cfg.burst_ns, 500_000_000n, '500 ms of 100mbit is 6 250 000 B, over 256 KiB');
  assert.equal(d.cfg.period_end_ns, ns(Date.UTC(2026, 10, 15, 13)));
  assert.equal(d.cfg.next_end_ns, ns(Date.UTC(2026, 10, 15, 14)));
  assert.deepEqual([d.cfg.dirs, d.cfg.period, d.cfg.marks], [2, 0, [4_000_000_000n, 5_000_000_000n, 0n, 0n]], 'default thresholds 80, 100');

  assert.equal(e.cfg.rate, 1543n, 'floor(12345 / 8)');
  assert.equal(e.cfg.burst_ns, 648_088_139_987n, 'floor(1 000 000 B * 1e9 / 1543)');
  assert.deepEqual([e.cfg.class_id, e.cfg.dirs, e.cfg.action], [INTERNET, 2, TG_QUOTA_THROTTLE]);

  assert.equal(f.cfg.rate, 2_500_000n, 'floor(20 000 001 / 8)');
  assert.equal(f.cfg.burst_ns, 500_000_400n, 'burst ceil(20 000 001 / 8 / 2) = 1 250 001 B at 2 500 000 B/s');

  for (const s of plan.slots) assert.equal(s.cfg.marks.length, TG_QUOTA_MARKS);
});

test('cfg: the period follows the time zone of the tenant\'s plan', () => {
  // 2026-11-30T23:30Z is already December 1 in Berlin (UTC+1).
  const now = Date.UTC(2026, 10, 30, 23, 30);
  const policy = policyOf(`  - { tenant: acme, budget: 1GB }
  - { tenant: globex, budget: 1GB }
  - { tenant: acme, budget: 1GB, period: day }
  - { tenant: acme, budget: 1GB, period: hour }
`);
  const plan = compileQuotas(policy, ctxOf({ now }));
  const [berlin, utc, day, hour] = plan.slots;
  assert.deepEqual(berlin.period, { kind: 'month', timeZone: 'Europe/Berlin', id: '2026-12', start: Date.UTC(2026, 10, 30, 23), end: Date.UTC(2026, 11, 31, 23) });
  assert.equal(berlin.cfg.period_end_ns, ns(Date.UTC(2026, 11, 31, 23)));
  assert.equal(berlin.cfg.next_end_ns, ns(Date.UTC(2027, 0, 31, 23)));
  assert.equal(utc.period.id, '2026-11');
  assert.equal(utc.cfg.period_end_ns, ns(Date.UTC(2026, 11, 1)));
  assert.equal(utc.cfg.next_end_ns, ns(Date.UTC(2027, 0, 1)));
  assert.equal(day.period.id, '2026-12-01');
  assert.equal(day.cfg.period_end_ns, ns(Date.UTC(2026, 11, 1, 23)));
  assert.equal(day.cfg.next_end_ns, ns(Date.UTC(2026, 11, 2, 23)));
  assert.equal(hour.period.id, '2026-12-01T00');
  assert.equal(hour.cfg.period_end_ns, ns(Date.UTC(2026, 11, 1, 0)));
  assert.equal(hour.cfg.next_end_ns, ns(Date.UTC(2026, 11, 1, 1)));

  // Across the DST change: the Berlin month ending 2027-04-01 00:00 CEST (UTC+2).
  const march = compileQuotas(policyOf('  - { tenant: acme, budget: 1GB }\n'), ctxOf({ now: Date.UTC(2027, 2, 15) }));
  assert.equal(march.slots[0].cfg.period_end_ns, ns(Date.UTC(2027, 2, 31, 22)));
  assert.equal(march.slots[0].cfg.next_end_ns, ns(Date.UTC(2027, 3, 30, 22)));

  // taiOffsetMs 0: plain Unix ns.
  const unix = compileQuotas(policyOf('  - { tenant: globex, budget: 1GB }\n'), ctxOf({ taiOffsetMs: 0 }));
  assert.equal(unix.slots[0].cfg.period_end_ns, BigInt(Date.UTC(2026, 11, 1)) * 1_000_000n);
});

test('slots: new quotas take the lowest slots not in the kernel; kept identities keep theirs; the rest are freed', () => {
  const policy = policyOf(`  - { tenant: acme, class: video, direction: egress, budget: 1GB }
  - { tenant: acme, direction: both, budget: 10GB, period: day }
  - { tenant: globex, class: internet, direction: ingress, budget: 5GB, period: hour }
  - { tenant: globex, direction: egress, budget: 5GB }
`);
  const stale = (tenantId: number): QuotaIdentity => ({ tenantId, classId: INTERNET, dirs: 1, period: 2 });
  const existing = new Map<number, QuotaIdentity>([
    [3, stale(9)],
    [5, { tenantId: GLOBEX, classId: TG_QUOTA_ALL_CLASSES, dirs: 2, period: 2 }], // quotas[3]
    [1, stale(8)],
    [2, { tenantId: ACME, classId: TG_QUOTA_ALL_CLASSES, dirs: 3, period: 1 }], // quotas[1]
    [7, { tenantId: ACME, classId: VIDEO, dirs: 2, period: 1 }], // like quotas[0] but per day: another identity
  ]);
  const plan = compileQuotas(policy, ctxOf({ existing }));
  assert.deepEqual(plan.slots.map((s) => [s.index, s.slot, s.fresh]), [
    [0, 4, true], // 1, 2, 3 are in the kernel
    [1, 2, false],
    [2, 6, true], // 5 is in the kernel
    [3, 5, false],
  ]);
  assert.deepEqual(plan.freed, [1, 3, 7], 'sorted; not reused by the new quotas of this plan');
  assert.deepEqual(sortedRefs(plan.refs), [
    [34, [2]], [35, [2]], [38, [2]], [39, [4, 2]],
    [82, [6]], [83, [5]], [87, [5]],
  ]);

  // Compiled again with the new kernel state, nothing moves and nothing is fresh.
  const after = new Map(plan.slots.map((s) => [s.slot, identityOf(s.cfg)]));
  const again = compileQuotas(policy, ctxOf({ existing: after }));
  assert.deepEqual(again.slots.map((s) => [s.index, s.slot, s.fresh]), [[0, 4, false], [1, 2, false], [2, 6, false], [3, 5, false]]);
  assert.deepEqual(again.freed, []);

  // A quota dropped from the policy frees its slot; reordering keeps the slots.
  const fewer = policyOf(`  - { tenant: globex, direction: egress, budget: 7GB, thresholds: [10], action: block }
  - { tenant: acme, class: video, direction: egress, budget: 2GB }
`);
  const p3 = compileQuotas(fewer, ctxOf({ existing: after }));
  assert.deepEqual(p3.slots.map((s) => [s.index, s.slot, s.fresh]), [[0, 5, false], [1, 4, false]]);
  assert.equal(p3.slots[0].cfg.limit, 7_000_000_000n, 'a kept slot gets the new settings');
  assert.equal(p3.slots[0].cfg.action, TG_QUOTA_BLOCK);
  assert.deepEqual(p3.freed, [2, 6]);

  // No quotas: every slot is freed.
  const empty = compileQuotas(parsePolicy('version: 1\n'), ctxOf({ existing: after }));
  assert.deepEqual(empty, { slots: [], refs: new Map(), freed: [2, 4, 5, 6] });
});

test('slots: fresh ones start at 1; at most TG_MAX_QUOTAS - 1 slots', () => {
  const policy = policyOf('  - { tenant: acme, budget: 1GB }\n  - { tenant: globex, budget: 1GB }\n');
  assert.deepEqual(compileQuotas(policy, ctxOf()).slots.map((s) => s.slot), [1, 2]);
  // Every slot but the last is taken by a quota the policy no longer has: freed slots are not reused now.
  const existing = new Map<number, QuotaIdentity>();
  for (let s = 1; s < TG_MAX_QUOTAS - 1; s++) existing.set(s, { tenantId: 100 + s, classId: 0, dirs: 3, period: 2 });
  assert.deepEqual(problemsOf(policy, ctxOf({ existing })), [`quotas[1]: more than ${TG_MAX_QUOTAS - 1} quotas`]);
  assert.equal(TG_MAX_QUOTAS - 1, 1023);
  existing.delete(7);
  assert.deepEqual(compileQuotas(policy, ctxOf({ existing })).slots.map((s) => s.slot), [7, TG_MAX_QUOTAS - 1]);
});

test('errors: the same identity twice', () => {
  const policy = policyOf(`  - { tenant: acme, class: video, budget: 1GB }
  - { tenant: acme, budget: 1GB }
`);
  // The policy's own cross-check refuses such a document; compileQuotas checks again.
  const twice: Policy = { ...policy, quotas: [...policy.quotas!, { ...policy.quotas![0], budget: 5 * GB, thresholds: [10] }] };
  assert.deepEqual(problemsOf(twice, ctxOf()), ['quotas[2]: same tenant, class, direction and period as quotas[0]; merge them into one']);
  // Another period, direction or class is another identity.
  const other: Policy = {
    ...policy,
    quotas: [...policy.quotas!, { ...policy.quotas![0], period: 'day' }, { ...policy.quotas![0], direction: 'egress' }, { ...policy.quotas![0], class: 'internet' }],
  };
  assert.equal(compileQuotas(other, ctxOf()).slots.length, 5);
});

test(`errors: more than TG_QUOTA_REFS (${TG_QUOTA_REFS}) quotas on one counter`, () => {
  const four = `  - { tenant: acme, class: video, direction: egress, budget: 1GB }
  - { tenant: acme, class: video, direction: egress, budget: 1GB, period: day }
  - { tenant: acme, class: video, direction: egress, budget: 1GB, period: hour }
  - { tenant: acme, class: video, direction: both, budget: 1GB }
`;
  const ok = compileQuotas(policyOf(four), ctxOf());
  assert.deepEqual(ok.refs.get(counter(ACME, VIDEO, 1)), [1, 2, 3, 4]);
  assert.deepEqual(ok.refs.get(counter(ACME, VIDEO, 0)), [4]);

  const five = policyOf(`${four}  - { tenant: acme, direction: egress, budget: 1GB }\n`);
  assert.deepEqual(problemsOf(five, ctxOf()), ['quotas[4]: more than 4 quotas of tenant "acme" cover the same class and direction']);
  // The same quotas over two tenants are fine.
  const spread = policyOf(`${four}  - { tenant: globex, direction: egress, budget: 1GB }\n`);
  assert.deepEqual(compileQuotas(spread, ctxOf()).refs.get(counter(GLOBEX, VIDEO, 1)), [5]);
  // Reported once per quota that overflows a counter, not for later ones naming it too.
  const six = policyOf(`${four}  - { tenant: acme, direction: egress, budget: 1GB }\n  - { tenant: acme, direction: egress, budget: 1GB, period: day }\n`);
  assert.deepEqual(problemsOf(six, ctxOf()), ['quotas[4]: more than 4 quotas of tenant "acme" cover the same class and direction']);
});

test('errors: unknown tenant or class in the context; all problems together', () => {
  const policy = policyOf(`  - { tenant: acme, budget: 1GB }
  - { tenant: globex, class: video, budget: 1GB }
`);
  assert.deepEqual(problemsOf(policy, ctxOf({ tenantIds: new Map([['acme', ACME]]) })), ['quotas[1].tenant: no tenant "globex"']);
  assert.deepEqual(
    problemsOf(policy, ctxOf({ tenantIds: new Map([['globex', GLOBEX]]), classes: [{ name: 'video', id: VIDEO, billable: false }] })),
    ['quotas[0].tenant: no tenant "acme"', 'quotas[1].class: no billable class "video"'],
  );
  assert.deepEqual(problemsOf(policy, ctxOf({ classes: [] })), ['quotas[1].class: no billable class "video"']);
  try {
    compileQuotas(policy, ctxOf({ tenantIds: new Map() }));
    assert.fail('compiled');
  } catch (err) {
    assert.ok(err instanceof QuotaCompileError);
    assert.equal(err.message, 'quotas cannot be compiled:\n  quotas[0].tenant: no tenant "acme"\n  quotas[1].tenant: no tenant "globex"');
  }
});

test('a burst longer than an hour of the rate is refused (it would be no throttle, and overflow burst_ns)', () => {
  const policy = parsePolicy(`version: 1
tenants: [{ name: a, selectors: { interfaces: [x] } }]
quotas:
  - { tenant: a, budget: 1GB, action: throttle, throttleRate: 8bit, throttleBurst: 20GB }
`);
  const ctx = ctxOf({ tenantIds: new Map([['a', 1]]) });
  assert.throws(() => compileQuotas(policy, ctx), (err) => err instanceof QuotaCompileError && /quotas\[0\]\.throttleBurst: more than an hour/.test(err.message));
});
