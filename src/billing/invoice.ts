// An invoice document: the lines of a period (rating.ts) plus adjustments for
// late usage of closed periods, with subtotals per class and the total, all as
// exact major-unit text. Built in a fixed field and line order from its
// inputs only, so the same ledger gives a byte-identical document.
import { formatMinor } from './money.js';
import type { Period } from './period.js';
import { planDigits, sumLines, type InvoiceLine } from './rating.js';

export interface InvoiceLineDoc {
  kind: InvoiceLine['kind'];
  class: string | null;
  description: string;
  quantity: string;
  unit: InvoiceLine['unit'];
  unitPrice: string;
  amount: string;
}

export interface InvoiceDoc {
  tenant: string;
  plan: string;
  currency: string;
  period: { id: string; kind: Period['kind']; timeZone: string; start: string; end: string };
  /** open: usage may still come in; closed: final, never changes again. */
  status: 'open' | 'closed';
  /** The ledger's usage up to this instant is included (the period's end once closed). */
  asOf: string;
  lines: InvoiceLineDoc[];
  /** Per class in order of first appearance; "plan-wide" lines (hourly, flat fees, adjustments) under class null. */
  subtotals: { class: string | null; amount: string }[];
  total: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function buildInvoice(args: {
  tenant: string;
  plan: { name: string; currency: string };
  period: Period;
  status: InvoiceDoc['status'];
  asOf: number;
  lines: readonly InvoiceLine[];
}): InvoiceDoc {
  const digits = planDigits(args.plan);
  const money = (minor: bigint): string => formatMinor(minor, digits);
  const byClass = new Map<string | null, bigint>();
  for (const l of args.lines) byClass.set(l.class, (byClass.get(l.class) ?? 0n) + l.amountMinor);
  const { id, kind, timeZone, start, end } = args.period;
  return {
    tenant: args.tenant,
    plan: args.plan.name,
    currency: args.plan.currency,
    period: { id, kind, timeZone, start: iso(start), end: iso(end) },
    status: args.status,
    asOf: iso(args.asOf),
    lines: args.lines.map((l) => ({
      kind: l.kind, class: l.class, description: l.description, quantity: l.quantity, unit: l.unit, unitPrice: l.unitPrice, amount: money(l.amountMinor),
    })),
    subtotals: [...byClass].map(([cls, minor]) => ({ class: cls, amount: money(minor) })),
    total: money(sumLines(args.lines)),
  };
}
