// Invoices from the ledger: the open period's running invoice, closing due
// periods (immutable from then on), and adjustments for usage recorded after
// its period closed. docs/billing.md has the rules; rating.ts the arithmetic.
import type { Plan, Policy } from '../policy/index.js';
import { InvoiceStore, type ClosedInvoice, type Cut, type Ledger } from '../store/index.js';
import { buildInvoice, type InvoiceDoc } from './invoice.js';
import { formatMinor } from './money.js';
import { hourBucket, nextPeriod, parsePeriod, periodAt, type Period } from './period.js';
import { gbText, planDigits, rateUsage, sumLines, volumeKey, type InvoiceLine, type PeriodUsage } from './rating.js';

export type BillingErrorCode = 'NO_PLAN' | 'UNKNOWN_TENANT' | 'INVALID_PERIOD' | 'NOT_INVOICED';

export class BillingError extends Error {
  override readonly name = 'BillingError';
  constructor(readonly code: BillingErrorCode, message: string, readonly field?: string) {
    super(message);
  }
}

const HOUR = 3_600_000;

/** The plan a tenant of the policy is billed with, if any. */
export function tenantPlan(policy: Policy, tenant: string): Plan | undefined {
  const name = policy.tenants.find((t) => t.name === tenant)?.plan;
  return name === undefined ? undefined : policy.plans?.find((p) => p.name === name);
}
/** Periods one closeDue() call closes at most per tenant: a long-stopped agent catches up over several calls. */
const MAX_CLOSE_PER_CALL = 1000;

/** Invoices are JSON with a fixed layout: two-space indent and a final newline. */
export const invoiceJson = (doc: InvoiceDoc): string => `${JSON.stringify(doc, null, 2)}\n`;

/** An invoice and its canonical JSON text (for a closed period, the stored bytes). */
export interface IssuedInvoice {
  doc: InvoiceDoc;
  json: string;
}
const issued = (doc: InvoiceDoc): IssuedInvoice => ({ doc, json: invoiceJson(doc) });

export interface InvoiceList {
  tenant: string;
  plan: string;
  currency: string;
  /** The period running now. */
  current: string;
  closed: Array<{ period: string; total: string; sha256: string; closedAt: string }>;
}

export interface ClosedSummary {
  tenant: string;
  period: string;
  total: string;
  currency: string;
}

export interface CloseResult {
  closed: ClosedSummary[];
  failed: Array<{ tenant: string; error: string }>;
}

export class Billing {
  readonly #store: InvoiceStore;
  readonly #policy: () => Policy;

  constructor(ledger: Ledger, policy: () => Policy) {
    this.#store = new InvoiceStore(ledger);
    this.#policy = policy;
  }

  #planOf(tenant: string): Plan {
    const policy = this.#policy();
    if (!policy.tenants.some((x) => x.name === tenant)) throw new BillingError('UNKNOWN_TENANT', `no tenant named ${JSON.stringify(tenant)} in the policy`, 'tenant');
    const plan = tenantPlan(policy, tenant);
    if (!plan) throw new BillingError('NO_PLAN', `tenant "${tenant}" has no plan (tenants[].plan), so nothing to invoice`, 'tenant');
    return plan;
  }

  /** Rating input for rows of `period` in the cut window. */
  #usage(plan: Plan, tenantId: number, createdAt: number, period: Period, asOf: number, upTo: Cut): PeriodUsage {
    const p95 = plan.percentile95;
    const raw = this.#store.periodUsage({ tenantId, start: period.start, end: period.end, upTo }, p95 && { className: p95.class, slotMs: p95.sampleInterval });
    // Every slot that has begun by asOf is a sample, with or without traffic.
    const nSlots = p95 ? Math.ceil((Math.min(asOf, period.end) - period.start) / p95.sampleInterval) : 0;
    const series = (m: Map<number, bigint>): bigint[] => Array.from({ length: Math.max(0, nSlots) }, (_, i) => m.get(i) ?? 0n);
    const hours = new Set(raw.minutes.map((m) => hourBucket(m * 60_000, period.timeZone)));
    const from = Math.max(period.start, createdAt);
    const to = Math.min(period.end, asOf);
    return {
      volumes: new Map(raw.volumes.map((v) => [volumeKey(v.class, v.direction), v.bytes])),
      samples: { ingress: series(raw.slots.ingress), egress: series(raw.slots.egress) },
      activeHours: hours.size,
      provisionedHours: to > from ? Math.ceil((to - from) / HOUR) : 0,
    };
  }

  /** The period's own lines, rated with the rows up to `upTo`. */
  #rate(plan: Plan, tenantId: number, createdAt: number, period: Period, asOf: number, upTo: Cut): InvoiceLine[] {
    return rateUsage(plan, this.#usage(plan, tenantId, createdAt, period, asOf, upTo));
  }

  /**
   * Adjustments for rows recorded after the last closed invoice's cut that
   * belong to closed periods: each such period is rated again with them and
   * without them (its own plan, as closed), and the difference is one line.
   */
  #adjustments(plan: Plan, tenantId: number, createdAt: number, last: ClosedInvoice | undefined, upTo: Cut): InvoiceLine[] {
    if (!last) return [];
    const digits = planDigits(plan);
    return this.#store.lateStarts(tenantId, last.end, last.cut, upTo).map((start): InvoiceLine => {
      const closed = this.#store.closed(tenantId, start)!;
      const was = JSON.parse(closed.plan) as Plan;
      if (was.currency !== plan.currency) {
        throw new BillingError('NOT_INVOICED', `late usage of ${closed.periodId} is in ${was.currency}, the current plan bills in ${plan.currency}; invoice it by hand`);
      }
      const period = parsePeriod(closed.periodId, was.period, was.timeZone);
      const before = sumLines(this.#rate(was, tenantId, createdAt, period, period.end, last.cut));
      const after = sumLines(this.#rate(was, tenantId, createdAt, period, period.end, upTo));
      const late = this.#store.volumes({ tenantId, start: period.start, end: period.end, after: last.cut, upTo });
      const bytes = late.reduce((s, v) => s + v.bytes, 0n);
      const amount = formatMinor(after - before, digits);
      return {
        kind: 'adjustment', class: null, description: `late usage of ${closed.periodId} (closed), ${gbText(bytes)} GB billable`,
        quantity: '1', unit: 'period', unitPrice: amount, amountMinor: after - before,
      };
    });
  }

  /** The tenant's closed invoices, oldest first, and the period running now. */
  list(tenant: string, now: number = Date.now()): InvoiceList {
    const plan = this.#planOf(tenant);
    const t = this.#store.tenant(tenant);
    return {
      tenant,
      plan: plan.name,
      currency: plan.currency,
      current: periodAt(now, plan.period, plan.timeZone).id,
      closed: t
        ? this.#store.closedList(t.id).map((c) => ({
            period: c.periodId, total: (JSON.parse(c.document) as InvoiceDoc).total, sha256: c.sha256, closedAt: new Date(c.closedAt).toISOString(),
          }))
        : [],
    };
  }

  /**
   * The invoice of a tenant's period (default: the one now running): as
   * issued when closed, else computed from the ledger as it is.
   */
  invoice(tenant: string, periodId?: string, now: number = Date.now()): IssuedInvoice {
    const plan = this.#planOf(tenant);
    let period: Period;
    try {
      period = periodId === undefined ? periodAt(now, plan.period, plan.timeZone) : parsePeriod(periodId, plan.period, plan.timeZone);
    } catch (err) {
      throw new BillingError('INVALID_PERIOD', (err as Error).message, 'period');
    }
    return this.#store.snapshot(() => {
      const t = this.#store.tenant(tenant);
      if (!t) return issued(this.#draft(tenant, plan, period, undefined));
      const closed = this.#store.closed(t.id, period.start);
      if (closed) return { doc: JSON.parse(closed.document) as InvoiceDoc, json: closed.document };
      const last = this.#store.lastClosed(t.id);
      if (last && period.start < last.end) {
        throw new BillingError('NOT_INVOICED', `${period.id} was never closed for "${tenant}" (it precedes ${last.periodId}, the last closed period); no invoice exists`, 'period');
      }
      return issued(this.#draft(tenant, plan, period, { ...t, last }));
    });
  }

  #draft(tenant: string, plan: Plan, period: Period, t: { id: number; createdAt: number; last: ClosedInvoice | undefined } | undefined): InvoiceDoc {
    const asOf = Math.max(period.start, Math.min(period.end, this.#store.lastIntervalEnd() ?? period.start));
    if (!t) return buildInvoice({ tenant, plan, period, status: 'open', asOf, lines: rateUsage(plan, emptyUsage()) });
    const cut = this.#store.cut();
    const lines = this.#rate(plan, t.id, t.createdAt, period, asOf, cut);
    // Late rows go on the first period after the last closed one, and only there.
    if (!t.last || period.start === t.last.end) lines.push(...this.#adjustments(plan, t.id, t.createdAt, t.last, cut));
    return buildInvoice({ tenant, plan, period, status: 'open', asOf, lines });
  }

  /**
   * Closes every period of every tenant with a plan whose end is at least
   * the plan's closeAfter in the past: its invoice is rated from the rows
   * recorded so far (plus adjustments) and stored, never to change again.
   * A tenant that cannot be closed is reported and does not hold up the others.
   */
  closeDue(now: number = Date.now()): CloseResult {
    const out: CloseResult = { closed: [], failed: [] };
    const policy = this.#policy();
    for (const t of policy.tenants) {
      const plan = tenantPlan(policy, t.name);
      if (!plan) continue;
      try {
        for (let i = 0; i < MAX_CLOSE_PER_CALL; i++) {
          const closed = this.#store.writing(() => this.#closeNext(t.name, plan, now));
          if (!closed) break;
          out.closed.push(closed);
        }
      } catch (err) {
        out.failed.push({ tenant: t.name, error: (err as Error).message });
      }
    }
    return out;
  }

  #closeNext(tenant: string, plan: Plan, now: number): ClosedSummary | undefined {
    const t = this.#store.tenant(tenant);
    if (!t) return undefined;
    const last = this.#store.lastClosed(t.id);
    let period: Period;
    if (last) {
      period = periodAt(last.end, plan.period, plan.timeZone);
      // A plan whose period kind or zone changed resumes at its next boundary.
      if (period.start < last.end) period = nextPeriod(period);
    } else {
      const first = this.#store.firstUsage(t.id);
      if (first === undefined) return undefined;
      period = periodAt(first, plan.period, plan.timeZone);
    }
    if (period.end + plan.closeAfter > now) return undefined;
    const cut = this.#store.cut();
    const lines = this.#rate(plan, t.id, t.createdAt, period, period.end, cut);
    lines.push(...this.#adjustments(plan, t.id, t.createdAt, last, cut));
    const doc = buildInvoice({ tenant, plan, period, status: 'closed', asOf: period.end, lines });
    this.#store.insertClosed({
      tenantId: t.id, periodId: period.id, start: period.start, end: period.end, cut, plan: JSON.stringify(plan), document: invoiceJson(doc), closedAt: now,
    });
    return { tenant, period: period.id, total: doc.total, currency: doc.currency };
  }
}

function emptyUsage(): PeriodUsage {
  return { volumes: new Map(), samples: { ingress: [], egress: [] }, activeHours: 0, provisionedHours: 0 };
}
