// The rating engine: a plan and one period's usage -> invoice lines. Pure and
// exact: quantities are integers (bytes, bits per second, hours), prices exact
// decimals, and each line's amount is rounded once to minor units
// (money.ts), so the same usage always gives the same lines and an invoice's
// total is the sum of its lines by construction. docs/billing.md describes
// every rule here.
import type { Plan } from '../policy/index.js';
import { DIRECTIONS, type Direction } from '../store/index.js';
import { currencyDigits } from './currencies.js';
import { formatDecimal, lineAmount, parseDecimal, ratio, type Decimal } from './money.js';

/** What the ledger says about one tenant in one period (usage.ts reads it). */
export interface PeriodUsage {
  /** Bytes per class and direction: volumes.get(`${class}/${direction}`). */
  volumes: ReadonlyMap<string, bigint>;
  /**
   * For percentile95: bytes of its class in each sample slot of the period,
   * per direction, one entry per slot (0 for slots without traffic).
   */
  samples: { ingress: readonly bigint[]; egress: readonly bigint[] };
  /** Clock hours of the period in which the tenant had billable traffic. */
  activeHours: number;
  /** Hours of the period the tenant existed (partial hours count whole). */
  provisionedHours: number;
}

export type LineKind = 'volume' | 'free' | 'commit' | 'overage' | 'hourly' | 'flat' | 'adjustment';

export interface InvoiceLine {
  kind: LineKind;
  /** The class a line belongs to (subtotals group by it); null for plan-wide charges. */
  class: string | null;
  description: string;
  /** Exact decimal text. */
  quantity: string;
  unit: 'GB' | 'Mbit/s' | 'hour' | 'period';
  /** Exact decimal text, major units. */
  unitPrice: string;
  /** Minor units of the plan's currency, rounded once. */
  amountMinor: bigint;
}

const GB = 1_000_000_000n;
const MBIT = 1_000_000n;

export function volumeKey(cls: string, dir: Direction): string {
  return `${cls}/${dir}`;
}

export function planDigits(plan: Pick<Plan, 'currency'>): number {
  const d = currencyDigits(plan.currency);
  if (d === undefined) throw new RangeError(`unknown currency "${plan.currency}"`);
  return d;
}

const dec = (text: string): Decimal => parseDecimal(text);
/** Bytes as exact GB text (10^9 bytes), e.g. 1500000000n -> "1.5". */
export const gbText = (bytes: bigint): string => formatDecimal({ n: bytes, scale: 9 });
const mbitText = (bps: bigint): string => formatDecimal({ n: bps, scale: 6 });
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/**
 * The 95th percentile the way burstable billing defines it: sort the
 * samples, discard the top 5% (floor(n / 20) of them), take the highest
 * left. 0 when there are no samples.
 */
export function percentile95(samples: readonly bigint[]): bigint {
  if (samples.length === 0) return 0n;
  const sorted = [...samples].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[sorted.length - 1 - Math.floor(sorted.length / 20)]!;
}

/** Whole bits per second of a slot's bytes (rounded down). */
export const slotRate = (bytes: bigint, slotMs: number): bigint => (bytes * 8n * 1000n) / BigInt(slotMs);

function volumeLines(plan: Plan, usage: PeriodUsage, digits: number): InvoiceLine[] {
  const out: InvoiceLine[] = [];
  for (const r of plan.rates) {
    const dirs: readonly Direction[] = r.direction === 'both' ? DIRECTIONS : [r.direction];
    const what = `${r.class} ${r.direction === 'both' ? 'ingress + egress' : r.direction}`;
    const volume = dirs.reduce((s, d) => s + (usage.volumes.get(volumeKey(r.class, d)) ?? 0n), 0n);
    const free = BigInt(r.free ?? 0);
    if (free > 0n) {
      out.push({
        kind: 'free', class: r.class, description: `${what}, free allowance (${gbText(free)} GB)`,
        quantity: gbText(min(volume, free)), unit: 'GB', unitPrice: '0', amountMinor: 0n,
      });
    }
    const billable = max(0n, volume - free);
    const tiers = r.tiers ?? [{ pricePerGB: r.pricePerGB!, upTo: undefined }];
    let lower = 0n;
    tiers.forEach((t, i) => {
      const upper = t.upTo === undefined ? undefined : BigInt(t.upTo);
      const inTier = upper === undefined ? max(0n, billable - lower) : max(0n, min(billable, upper) - lower);
      // Every tier the volume reaches gets a line; with no volume, the first tier shows the price.
      if (inTier > 0n || (i === 0 && billable === 0n)) {
        const range = tiers.length === 1 ? '' : upper === undefined ? `, above ${gbText(lower)} GB` : `, ${gbText(lower)}-${gbText(upper)} GB`;
        out.push({
          kind: 'volume', class: r.class, description: `${what}${range}`,
          quantity: gbText(inTier), unit: 'GB', unitPrice: t.pricePerGB,
          amountMinor: lineAmount(ratio(inTier, GB), dec(t.pricePerGB), digits),
        });
      }
      if (upper !== undefined) lower = upper;
    });
  }
  return out;
}

/** The sampled rate the plan bills in bits per second, with what it was taken from. */
export function billedPercentile(p: NonNullable<Plan['percentile95']>, samples: PeriodUsage['samples']): { bps: bigint; slots: number } {
  const rates = (xs: readonly bigint[]): bigint[] => xs.map((b) => slotRate(b, p.sampleInterval));
  const slots = Math.max(samples.ingress.length, samples.egress.length);
  switch (p.direction) {
    case 'ingress':
      return { bps: percentile95(rates(samples.ingress)), slots };
    case 'egress':
      return { bps: percentile95(rates(samples.egress)), slots };
    case 'sum': {
      const sum = Array.from({ length: slots }, (_, i) => (samples.ingress[i] ?? 0n) + (samples.egress[i] ?? 0n));
      return { bps: percentile95(rates(sum)), slots };
    }
    case 'greater':
      return { bps: max(percentile95(rates(samples.ingress)), percentile95(rates(samples.egress))), slots };
  }
}

function percentileLines(plan: Plan, usage: PeriodUsage, digits: number): InvoiceLine[] {
  const p = plan.percentile95;
  if (!p) return [];
  const { bps, slots } = billedPercentile(p, usage.samples);
  const commit = BigInt(p.commit);
  const over = max(0n, bps - commit);
  const which = p.direction === 'greater' ? 'greater of ingress and egress' : p.direction === 'sum' ? 'ingress + egress' : p.direction;
  const lines: InvoiceLine[] = [];
  if (commit > 0n) {
    lines.push({
      kind: 'commit', class: p.class, description: `${p.class} committed rate`,
      quantity: mbitText(commit), unit: 'Mbit/s', unitPrice: p.commitPricePerMbit,
      amountMinor: lineAmount(ratio(commit, MBIT), dec(p.commitPricePerMbit), digits),
    });
  }
  lines.push({
    kind: 'overage', class: p.class,
    description: `${p.class} 95th percentile (${which}) ${mbitText(bps)} Mbit/s of ${slots} samples, above the ${mbitText(commit)} Mbit/s commit`,
    quantity: mbitText(over), unit: 'Mbit/s', unitPrice: p.overagePricePerMbit,
    amountMinor: lineAmount(ratio(over, MBIT), dec(p.overagePricePerMbit), digits),
  });
  return lines;
}

/** Every line a plan charges for one period's usage, in plan order: rates, percentile, hourly, flat fees. */
export function rateUsage(plan: Plan, usage: PeriodUsage): InvoiceLine[] {
  const digits = planDigits(plan);
  const hourly = plan.hourly.map((h): InvoiceLine => {
    const hours = h.basis === 'active' ? usage.activeHours : usage.provisionedHours;
    return {
      kind: 'hourly', class: null, description: `${h.name} (${h.basis} hours)`,
      quantity: String(hours), unit: 'hour', unitPrice: h.pricePerHour,
      amountMinor: lineAmount(ratio(BigInt(hours)), dec(h.pricePerHour), digits),
    };
  });
  const flat = plan.flatFees.map((f): InvoiceLine => ({
    kind: 'flat', class: null, description: f.name, quantity: '1', unit: 'period', unitPrice: f.amount,
    amountMinor: lineAmount(ratio(1n), dec(f.amount), digits),
  }));
  return [...volumeLines(plan, usage, digits), ...percentileLines(plan, usage, digits), ...hourly, ...flat];
}

export const sumLines = (lines: readonly InvoiceLine[]): bigint => lines.reduce((s, l) => s + l.amountMinor, 0n);
