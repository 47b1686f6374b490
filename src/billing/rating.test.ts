import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Plan } from '../policy/index.js';
import { parseDecimal, parseMinor } from './money.js';
import { buildInvoice } from './invoice.js';
import { parsePeriod } from './period.js';
import { percentile95, rateUsage, slotRate, sumLines, volumeKey, type PeriodUsage } from './rating.js';

const GB = 1_000_000_000;

function plan(p: Partial<Plan> = {}): Plan {
  return { name: 'p', currency: 'EUR', timeZone: 'UTC', period: 'month', closeAfter: 3_600_000, rates: [], hourly: [], flatFees: [], ...p };
}

function usage(u: Partial<PeriodUsage> = {}): PeriodUsage {
  return { volumes: new Map(), samples: { ingress: [], egress: [] }, activeHours: 0, provisionedHours: 0, ...u };
}

const egress = (bytes: number | bigint): PeriodUsage => usage({ volumes: new Map([[volumeKey('internet', 'egress'), BigInt(bytes)]]) });

/** The example: the first 10 TB at one price, the next 40 TB at another. */
const tiered = plan({
  rates: [{
    class: 'internet', direction: 'egress', free: 100 * GB,
    tiers: [{ upTo: 10_000 * GB, pricePerGB: '0.05' }, { upTo: 50_000 * GB, pricePerGB: '0.035' }, { pricePerGB: '0.02' }],
  }],
});

test('tiers: free allowance first, then each tier up to its bound, one line per tier reached', () => {
  const lines = rateUsage(tiered, egress(12_000 * GB + 100 * GB));
  assert.deepEqual(lines.map((l) => [l.kind, l.quantity, l.unitPrice, l.amountMinor]), [
    ['free', '100', '0', 0n],
    ['volume', '10000', '0.05', 50000n], // 10,000 GB x 0.05 = 500.00
    ['volume', '2000', '0.035', 7000n], // 2,000 GB x 0.035 = 70.00
  ]);
});

test('tier boundaries: exactly at upTo stays in the tier, one byte more starts the next', () => {
  const at = rateUsage(tiered, egress(10_000 * GB + 100 * GB)).filter((l) => l.kind === 'volume');
  assert.deepEqual(at.map((l) => l.quantity), ['10000']);
  const above = rateUsage(tiered, egress(10_000 * GB + 100 * GB + 1)).filter((l) => l.kind === 'volume');
  assert.deepEqual(above.map((l) => l.quantity), ['10000', '0.000000001']);
  const open = rateUsage(tiered, egress(60_000 * GB)).filter((l) => l.kind === 'volume');
  assert.deepEqual(open.map((l) => l.quantity), ['10000', '40000', '9900']);
});

test('no traffic: the first tier still shows its price, at zero', () => {
  const lines = rateUsage(tiered, usage());
  assert.deepEqual(lines.map((l) => [l.kind, l.quantity, l.amountMinor]), [['free', '0', 0n], ['volume', '0', 0n]]);
});

test('rounding happens once per line, half away from zero', () => {
  // 1 GB x 0.005 EUR = 0.005 -> 0.01; two such lines are 0.02, not round(0.01) = 0.01.
  const p = plan({ currency: 'EUR', rates: [{ class: 'a', direction: 'egress', pricePerGB: '0.005' }, { class: 'b', direction: 'egress', pricePerGB: '0.005' }] });
  const lines = rateUsage(p, usage({ volumes: new Map([[volumeKey('a', 'egress'), BigInt(GB)], [volumeKey('b', 'egress'), BigInt(GB)]]) }));
  assert.deepEqual(lines.map((l) => l.amountMinor), [1n, 1n]);
  // Currencies without minor units round to whole units; three-digit ones keep the mils.
  assert.equal(rateUsage({ ...p, currency: 'JPY' }, usage({ volumes: new Map([[volumeKey('a', 'egress'), 500n * BigInt(GB)]]) }))[0]!.amountMinor, 3n);
  assert.equal(rateUsage({ ...p, currency: 'BHD' }, usage({ volumes: new Map([[volumeKey('a', 'egress'), BigInt(GB)]]) }))[0]!.amountMinor, 5n);
});

test('direction both prices the sum of ingress and egress against one allowance', () => {
  const p = plan({ rates: [{ class: 'internet', direction: 'both', free: GB, pricePerGB: '1' }] });
  const lines = rateUsage(p, usage({ volumes: new Map([[volumeKey('internet', 'ingress'), 2n * BigInt(GB)], [volumeKey('internet', 'egress'), 3n * BigInt(GB)]]) }));
  assert.deepEqual(lines.map((l) => [l.kind, l.quantity, l.amountMinor]), [['free', '1', 0n], ['volume', '4', 400n]]);
});

test('95th percentile: commit line, overage above it, greater of the two directions', () => {
  const slot = 300_000;
  const mbit = (m: number): bigint => (BigInt(m) * 1_000_000n * BigInt(slot)) / 8000n; // bytes in a slot at m Mbit/s
  // 100 slots: 95 at 50 Mbit/s egress, 5 bursts at 900 (discarded); ingress flat 80.
  const eg = [...Array(95).fill(mbit(50)), ...Array(5).fill(mbit(900))];
  const ing = Array(100).fill(mbit(80));
  const p = plan({ percentile95: { class: 'internet', direction: 'greater', sampleInterval: slot, commit: 60_000_000, commitPricePerMbit: '2', overagePricePerMbit: '3.5' } });
  const lines = rateUsage(p, usage({ samples: { ingress: ing, egress: eg } }));
  assert.deepEqual(lines.map((l) => [l.kind, l.quantity, l.unitPrice, l.amountMinor]), [
    ['commit', '60', '2', 12000n],
    ['overage', '20', '3.5', 7000n],
  ]);
  assert.match(lines[1]!.description, /80 Mbit\/s of 100 samples/);
  const egressOnly = rateUsage({ ...p, percentile95: { ...p.percentile95!, direction: 'egress' } }, usage({ samples: { ingress: ing, egress: eg } }));
  assert.equal(egressOnly[1]!.quantity, '0'); // 50 Mbit/s: under the commit
});

test('hourly and flat charges', () => {
  const p = plan({ hourly: [{ name: 'compute', basis: 'active', pricePerHour: '0.01' }, { name: 'ip', basis: 'provisioned', pricePerHour: '0.005' }], flatFees: [{ name: 'support', amount: '49' }] });
  const lines = rateUsage(p, usage({ activeHours: 100, provisionedHours: 720 }));
  assert.deepEqual(lines.map((l) => [l.kind, l.quantity, l.amountMinor]), [['hourly', '100', 100n], ['hourly', '720', 360n], ['flat', '1', 4900n]]);
});

// ---- properties ---------------------------------------------------------

const price = fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 6 })).map(([n, s]) => (s === 0 ? String(n) : (n / 10 ** s).toFixed(s)));
const tiersArb = fc
  .uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 0, maxLength: 4 })
  .chain((bounds) => fc.array(price, { minLength: bounds.length + 1, maxLength: bounds.length + 1 }).map((prices) => {
    const ups = [...bounds].sort((a, b) => a - b).map((b) => b * 1_000_000);
    return prices.map((pricePerGB, i) => (i < ups.length ? { upTo: ups[i], pricePerGB } : { pricePerGB }));
  }));
const planArb = fc.record({
  currency: fc.constantFrom('EUR', 'JPY', 'BHD', 'USD'),
  free: fc.option(fc.integer({ min: 0, max: 2_000_000_000 }), { nil: undefined }),
  tiers: tiersArb,
  p95: fc.option(fc.record({ commit: fc.integer({ min: 0, max: 1e9 }), commitPricePerMbit: price, overagePricePerMbit: price, direction: fc.constantFrom('ingress', 'egress', 'sum', 'greater') as fc.Arbitrary<'ingress' | 'egress' | 'sum' | 'greater'> }), { nil: undefined }),
  hourly: fc.array(fc.record({ name: fc.constant('h'), basis: fc.constantFrom('active', 'provisioned') as fc.Arbitrary<'active' | 'provisioned'>, pricePerHour: price }), { maxLength: 2 }),
  flat: fc.array(price, { maxLength: 2 }),
}).map((r) => plan({
  currency: r.currency,
  rates: [{ class: 'internet', direction: 'egress', free: r.free, tiers: r.tiers }],
  percentile95: r.p95 && { class: 'internet', sampleInterval: 300_000, ...r.p95 },
  hourly: r.hourly,
  flatFees: r.flat.map((amount, i) => ({ name: `fee ${i}`, amount })),
}));
const bytes = fc.bigInt({ min: 0n, max: 1n << 50n });
const usageArb = fc.record({
  vol: bytes,
  ing: fc.array(fc.bigInt({ min: 0n, max: 1n << 40n }), { maxLength: 60 }),
  eg: fc.array(fc.bigInt({ min: 0n, max: 1n << 40n }), { maxLength: 60 }),
  active: fc.integer({ min: 0, max: 744 }),
  prov: fc.integer({ min: 0, max: 744 }),
}).map((u) => usage({ volumes: new Map([[volumeKey('internet', 'egress'), u.vol]]), samples: { ingress: u.ing, egress: u.eg }, activeHours: u.active, provisionedHours: u.prov }));

/** GB text back to bytes. */
const bytesOf = (gb: string): bigint => {
  const d = parseDecimal(gb);
  return d.n * 10n ** BigInt(9 - d.scale);
};

const period = parsePeriod('2026-11', 'month', 'UTC');

test('property: an invoice total equals the sum of its lines, and of its subtotals', () => {
  fc.assert(fc.property(planArb, usageArb, (p, u) => {
    const lines = rateUsage(p, u);
    const inv = buildInvoice({ tenant: 't', plan: p, period, status: 'open', asOf: period.start, lines });
    const digits = p.currency === 'JPY' ? 0 : p.currency === 'BHD' ? 3 : 2;
    const minor = (s: string): bigint => parseMinor(s, digits);
    assert.equal(minor(inv.total), inv.lines.reduce((s, l) => s + minor(l.amount), 0n));
    assert.equal(minor(inv.total), inv.subtotals.reduce((s, l) => s + minor(l.amount), 0n));
    assert.equal(minor(inv.total), sumLines(lines));
  }), { numRuns: 300 });
});

test('property: tier quantities add up to the volume beyond the allowance', () => {
  fc.assert(fc.property(planArb, bytes, (p, vol) => {
    const lines = rateUsage(p, egress(vol));
    const q = (kind: string): bigint => lines.filter((l) => l.kind === kind).reduce((s, l) => s + bytesOf(l.quantity), 0n);
    const free = BigInt(p.rates[0]!.free ?? 0);
    assert.equal(q('volume'), vol > free ? vol - free : 0n);
    assert.equal(q('free'), vol < free ? vol : free);
  }), { numRuns: 300 });
});

test('property: the total never decreases when usage grows', () => {
  fc.assert(fc.property(planArb, usageArb, bytes, fc.nat(59), fc.bigInt({ min: 0n, max: 1n << 40n }), fc.nat(10), (p, u, more, slot, extra, hours) => {
    const bump = (xs: readonly bigint[]): bigint[] => xs.map((x, i) => (i === slot % Math.max(1, xs.length) ? x + extra : x));
    const grown = usage({
      volumes: new Map([[volumeKey('internet', 'egress'), u.volumes.get(volumeKey('internet', 'egress'))! + more]]),
      samples: { ingress: bump(u.samples.ingress), egress: bump(u.samples.egress) },
      activeHours: u.activeHours + hours,
      provisionedHours: u.provisionedHours + hours,
    });
    assert.ok(sumLines(rateUsage(p, grown)) >= sumLines(rateUsage(p, u)));
  }), { numRuns: 300 });
});

/** The straightforward reference: the ceil(0.95 n)-th smallest sample (1-based). */
function referenceP95(xs: readonly bigint[]): bigint {
  if (xs.length === 0) return 0n;
  const sorted = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.ceil((95 * xs.length) / 100) - 1]!;
}

test('property: the 95th percentile matches the reference on random series', () => {
  fc.assert(fc.property(fc.array(fc.bigInt({ min: 0n, max: 1n << 45n }), { maxLength: 9000 }), (xs) => {
    assert.equal(percentile95(xs), referenceP95(xs));
  }), { numRuns: 200 });
  // And one month of 5-minute samples: 8,640, of which the top 432 are discarded.
  const month = Array.from({ length: 8640 }, (_, i) => BigInt(i));
  assert.equal(percentile95(month), 8207n);
});

test('no drift: a year of 5-minute samples billed per GB equals the exact reference to the minor unit', () => {
  const slots = 365 * 288; // 105,120
  const rng = fc.sample(fc.bigInt({ min: 0n, max: 40_000_000_000n }), { numRuns: slots, seed: 42 });
  const total = rng.reduce((s, b) => s + b, 0n);
  const p = plan({ currency: 'USD', rates: [{ class: 'internet', direction: 'egress', pricePerGB: '0.0123' }] });
  const [line] = rateUsage(p, usage({ volumes: new Map([[volumeKey('internet', 'egress'), total]]) }));
  // total bytes x 0.0123 USD / 10^9 in cents, half up: (total * 123 * 100 / 10^13), rounded.
  const num = total * 123n * 100n;
  const den = 10n ** 13n;
  const expected = (2n * num + den) / (2n * den);
  assert.equal(line!.amountMinor, expected);
  // The same year as 95th-percentile samples: integer rates, the reference's pick.
  const p95 = plan({ currency: 'USD', percentile95: { class: 'internet', direction: 'egress', sampleInterval: 300_000, commit: 0, commitPricePerMbit: '0', overagePricePerMbit: '0.77' } });
  const [over] = rateUsage(p95, usage({ samples: { ingress: [], egress: rng } }));
  const bps = referenceP95(rng.map((b) => (b * 8000n) / 300_000n));
  assert.equal(over!.amountMinor, (2n * bps * 77n + 10n ** 6n) / (2n * 10n ** 6n));
  // And the slot rate is an exact integer division, whatever the number of slots.
  assert.equal(slotRate(37_500_000n, 300_000), 1_000_000n);
});
