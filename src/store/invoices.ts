// The ledger's billing side: what the rating engine needs from the usage rows
// of one tenant and period, and the closed invoices. Every read takes a cut,
// the last outbox sequence per host, so an invoice covers exactly the rows up
// to it: rows written after a period closed are recognisable (their sequence
// is beyond the closing invoice's cut) and billed once, as an adjustment.
import { createHash } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import { LedgerError } from './errors.js';
import { joinHalves, sumHalvesSql } from './counters.js';
import type { Direction, Ledger } from './ledger.js';

/** Last outbox sequence per host. */
export type Cut = ReadonlyMap<string, number>;

export interface ClosedInvoice {
  tenantId: number;
  periodId: string;
  start: number;
  end: number;
  cut: Cut;
  /** The plan as rated, JSON. */
  plan: string;
  /** The invoice as issued, byte for byte. */
  document: string;
  sha256: string;
  closedAt: number;
}

export interface UsageWindow {
  tenantId: number;
  /** Rows whose interval ended in [start, end). */
  start: number;
  end: number;
  /** Rows with a sequence above this cut (all when absent) and at most upTo. */
  after?: Cut;
  upTo: Cut;
}

/** Billable bytes of one class and direction. */
export interface VolumeRow {
  class: string;
  direction: Direction;
  bytes: bigint;
}

export interface RawPeriodUsage {
  volumes: VolumeRow[];
  /** Billable bytes of samples.className per slot index from start, per direction (only slots with rows). */
  slots: { ingress: Map<number, bigint>; egress: Map<number, bigint> };
  /** Distinct minutes (interval_end / 60000) with billable rows. */
  minutes: number[];
}

const cutJson = (c: Cut): string => JSON.stringify(Object.fromEntries([...c].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
function parseCut(text: string): Cut {
  return new Map(Object.entries(JSON.parse(text) as Record<string, number>));
}

type Row = { tenant_id: number; period_start: number; period_end: number; period_id: string; cut: string; plan: string; document: string; sha256: string; closed_at: number };
const closedOf = (r: Row): ClosedInvoice => ({
  tenantId: r.tenant_id, periodId: r.period_id, start: r.period_start, end: r.period_end, cut: parseCut(r.cut),
  plan: r.plan, document: r.document, sha256: r.sha256, closedAt: r.closed_at,
});

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export class InvoiceStore {
  readonly #db: Db;

  constructor(ledger: Ledger) {
    this.#db = ledger.db;
  }

  /** Runs fn on one consistent snapshot of the ledger (a read transaction). */
  snapshot<T>(fn: () => T): T {
    return this.#db.transaction(fn).deferred();
  }

  /** The cut now: the last sequence issued to every host. */
  cut(): Cut {
    const rows = this.#db.prepare('SELECT host, last_seq FROM outbox_seq ORDER BY host').all() as Array<{ host: string; last_seq: number }>;
    return new Map(rows.map((r) => [r.host, r.last_seq]));
  }

  tenant(name: string): { id: number; createdAt: number } | undefined {
    const r = this.#db.prepare('SELECT id, created_at FROM tenants WHERE name = ?').get(name) as { id: number; created_at: number } | undefined;
    return r && { id: r.id, createdAt: r.created_at };
  }

  /** interval_end of the tenant's first usage row, or undefined. */
  firstUsage(tenantId: number): number | undefined {
    const v = this.#db.prepare('SELECT min(interval_end) FROM usage WHERE tenant_id = ?').pluck().get(tenantId) as number | null;
    return v ?? undefined;
  }

  /** The newest interval end recorded by any host, or undefined. */
  lastIntervalEnd(): number | undefined {
    const v = this.#db.prepare('SELECT max(interval_end) FROM usage').pluck().get() as number | null;
    return v ?? undefined;
  }

  /** SQL (and parameters) selecting rows whose sequence is in (after, upTo] for their host. */
  #seqWindow(after: Cut | undefined, upTo: Cut): { sql: string; params: Record<string, unknown> } {
    const params: Record<string, unknown> = {};
    const parts = [...upTo].map(([host, hi], i) => {
      params[`h${i}`] = host;
      params[`hi${i}`] = hi;
      params[`lo${i}`] = after?.get(host) ?? 0;
      return `(u.host = @h${i} AND u.seq > @lo${i} AND u.seq <= @hi${i})`;
    });
    return { sql: parts.length ? `(${parts.join(' OR ')})` : '0', params };
  }

  #window(w: UsageWindow): { sql: string; params: Record<string, unknown> } {
    const seq = this.#seqWindow(w.after, w.upTo);
    return {
      sql: `u.tenant_id = @tenant AND u.interval_end >= @start AND u.interval_end < @end AND u.billable = 1 AND ${seq.sql}`,
      params: { tenant: w.tenantId, start: w.start, end: w.end, ...seq.params },
    };
  }

  /** Billable bytes per class and direction of one tenant in a window. */
  volumes(w: UsageWindow): VolumeRow[] {
    const win = this.#window(w);
    return (this.#db
      .prepare(`SELECT c.name AS class, u.direction, ${sumHalvesSql('u.bytes', 'b')} FROM usage u JOIN classes c ON c.id = u.class_id
                WHERE ${win.sql} GROUP BY c.name, u.direction ORDER BY c.name, u.direction`)
      .safeIntegers(true)
      .all(win.params) as Array<{ class: string; direction: Direction; b_hi: bigint; b_lo: bigint }>)
      .map((r) => ({ class: r.class, direction: r.direction, bytes: joinHalves(r.b_hi, r.b_lo) }));
  }

  /** Billable usage of one tenant in a window, in the shapes the rating needs. */
  periodUsage(w: UsageWindow, samples?: { className: string; slotMs: number }): RawPeriodUsage {
    const win = this.#window(w);
    const slots = { ingress: new Map<number, bigint>(), egress: new Map<number, bigint>() };
    if (samples) {
      const srows = this.#db
        .prepare(`SELECT (u.interval_end - @slotStart) / @slot AS slot, u.direction, ${sumHalvesSql('u.bytes', 'b')}
                  FROM usage u JOIN classes c ON c.id = u.class_id
                  WHERE ${win.sql} AND c.name = @cls GROUP BY slot, u.direction`)
        .safeIntegers(true)
        // BigInts: better-sqlite3 binds JS numbers as REAL, which would make the division fractional.
        .all({ ...win.params, slotStart: BigInt(w.start), slot: BigInt(samples.slotMs), cls: samples.className }) as Array<{ slot: bigint; direction: Direction; b_hi: bigint; b_lo: bigint }>;
      for (const r of srows) slots[r.direction].set(Number(r.slot), joinHalves(r.b_hi, r.b_lo));
    }
    const minutes = (this.#db
      .prepare(`SELECT DISTINCT u.interval_end / 60000 FROM usage u WHERE ${win.sql}`)
      .pluck()
      .safeIntegers(true)
      .all(win.params) as bigint[]).map(Number);
    return { volumes: this.volumes(w), slots, minutes };
  }

  /** Closed periods (start of each) holding rows in (after, upTo] that ended before `before`. */
  lateStarts(tenantId: number, before: number, after: Cut, upTo: Cut): number[] {
    const seq = this.#seqWindow(after, upTo);
    return (this.#db
      .prepare(`SELECT DISTINCT i.period_start FROM usage u JOIN invoices i
                  ON i.tenant_id = u.tenant_id AND u.interval_end >= i.period_start AND u.interval_end < i.period_end
                WHERE u.tenant_id = @tenant AND u.interval_end < @before AND u.billable = 1 AND ${seq.sql}
                ORDER BY i.period_start`)
      .pluck()
      .all({ tenant: tenantId, before, ...seq.params }) as number[]);
  }

  closed(tenantId: number, start: number): ClosedInvoice | undefined {
    const r = this.#db.prepare('SELECT * FROM invoices WHERE tenant_id = ? AND period_start = ?').get(tenantId, start) as Row | undefined;
    return r && closedOf(r);
  }

  /** The closed invoice with the latest period, or undefined. */
  lastClosed(tenantId: number): ClosedInvoice | undefined {
    const r = this.#db.prepare('SELECT * FROM invoices WHERE tenant_id = ? ORDER BY period_start DESC LIMIT 1').get(tenantId) as Row | undefined;
    return r && closedOf(r);
  }

  closedList(tenantId: number): ClosedInvoice[] {
    return (this.#db.prepare('SELECT * FROM invoices WHERE tenant_id = ? ORDER BY period_start').all(tenantId) as Row[]).map(closedOf);
  }

  /** Records a closed invoice; a second close of the same period is refused. */
  insertClosed(c: Omit<ClosedInvoice, 'sha256'>): ClosedInvoice {
    const row = { ...c, sha256: sha256(c.document) };
    try {
      this.#db
        .prepare(`INSERT INTO invoices (tenant_id, period_start, period_end, period_id, cut, plan, document, sha256, closed_at)
                  VALUES (@tenantId, @start, @end, @periodId, @cut, @plan, @document, @sha256, @closedAt)`)
        .run({ ...row, cut: cutJson(c.cut) });
    } catch (cause) {
      throw new LedgerError('ALREADY_CLOSED', `cannot close ${c.periodId} for tenant id ${c.tenantId}: ${(cause as Error).message}`, { cause });
    }
    return row;
  }

  /** Runs fn in a write transaction (closing is check-then-insert). */
  writing<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }
}
