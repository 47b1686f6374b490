import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, type Policy } from '../policy/index.js';
import { DEFAULT_CLASS_ID, Ledger } from '../store/index.js';
import { Billing, BillingError, invoiceJson } from './billing.js';
import type { InvoiceDoc } from './invoice.js';
import { invoiceCsv, invoiceHtml } from './render.js';

const GB = 1_000_000_000n;
const at = (iso: string): Date => new Date(iso);

const POLICY = `
version: 1
tenants:
  - { name: acme, plan: std, selectors: { cidrs: [198.18.1.0/24] } }
  - { name: globex, plan: berlin, selectors: { cidrs: [198.18.2.0/24] } }
  - { name: initech, selectors: { cidrs: [198.18.3.0/24] } }
  - { name: hooli, plan: burst, selectors: { cidrs: [198.18.4.0/24] } }
classes:
  - { name: mgmt, billable: false, match: { cidrs: [198.18.255.0/24] } }
  - { name: internet }
plans:
  - name: std
    currency: EUR
    closeAfter: 1h
    rates:
      - class: internet
        direction: egress
        free: 1GB
        tiers:
          - { upTo: 10GB, pricePerGB: "0.10" }
          - { pricePerGB: "0.05" }
    hourly:
      - { name: active, basis: active, pricePerHour: "0.01" }
    flatFees:
      - { name: base fee, amount: "5" }
  - name: burst
    currency: USD
    period: day
    percentile95: { direction: egress, commit: 500kbit, commitPricePerMbit: "3", overagePricePerMbit: "5" }
  - name: berlin
    currency: EUR
    timeZone: Europe/Berlin
    rates:
      - { class: internet, direction: both, pricePerGB: "1" }
`;

interface Fixture {
  ledger: Ledger;
  billing: Billing;
  ids: Map<string, number>;
  /** Adds bytes to a tenant's cumulative counter of one epoch and records an interval ending at `when`. */
  record(tenant: string, when: string, bytes: bigint, opts?: { direction?: 'ingress' | 'egress'; billable?: boolean; boot?: string }): void;
}

function fixture(t: TestContext, policy: Policy = parsePolicy(POLICY), hostId = 'host-a', dir = mkdtempSync(join(tmpdir(), 'tg-billing-'))): Fixture {
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Tenants get created_at from the clock: pin it so provisioned hours are fixed.
  t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2026-09-01T00:00:00Z') });
  const ledger = Ledger.open(join(dir, 'ledger.db'), { hostId });
  t.after(() => ledger.close());
  const ids = ledger.ensureTenants(policy.tenants.map((x) => x.name));
  t.mock.timers.reset();
  const cumulative = new Map<string, bigint>();
  return {
    ledger,
    billing: new Billing(ledger, () => policy),
    ids,
    record(tenant, when, bytes, o = {}) {
      const direction = o.direction ?? 'egress';
      const boot = o.boot ?? 'boot-1';
      const key = `${boot}/${tenant}/${direction}/${o.billable ?? true}`;
      const total = (cumulative.get(key) ?? 0n) + bytes;
      cumulative.set(key, total);
      ledger.recordInterval({
        epoch: { bootId: boot, counterId: '1', startedAt: at('2026-09-01T00:00:00Z') },
        at: at(when),
        readings: [{ tenantId: ids.get(tenant)!, classId: DEFAULT_CLASS_ID, direction, billable: o.billable ?? true, packets: total, bytes: total }],
      });
    },
  };
}

const doc = (f: Fixture, tenant: string, period?: string, now?: number): InvoiceDoc => f.billing.invoice(tenant, period, now).doc;
const lines = (d: InvoiceDoc): string[][] => d.lines.map((l) => [l.kind, l.quantity, l.unitPrice, l.amount]);

test('the open period: tiers after the allowance, active hours, flat fee, subtotals and total', (t) => {
  const f = fixture(t);
  f.record('acme', '2026-11-03T10:15:00Z', 4n * GB);
  f.record('acme', '2026-11-03T10:45:00Z', 8n * GB); // same clock hour
  f.record('acme', '2026-11-20T08:00:00Z', 1n * GB);
  const d = doc(f, 'acme', '2026-11');
  assert.equal(d.status, 'open');
  assert.equal(d.asOf, '2026-11-20T08:00:00.000Z');
  assert.deepEqual(lines(d), [
    ['free', '1', '0', '0.00'],
    ['volume', '10', '0.1', '1.00'], // the first 10 GB beyond the allowance
    ['volume', '2', '0.05', '0.10'],
    ['hourly', '2', '0.01', '0.02'], // 10:15 and 10:45 are one clock hour
    ['flat', '1', '5', '5.00'],
  ]);
  assert.deepEqual(d.subtotals, [{ class: 'internet', amount: '1.10' }, { class: null, amount: '5.02' }]);
  assert.equal(d.total, '6.12');
});

test('free classes are never charged, and other periods do not leak in', (t) => {
  const f = fixture(t);
  f.record('acme', '2026-10-31T23:59:59Z', 50n * GB);
  f.record('acme', '2026-11-02T00:00:00Z', 50n * GB, { billable: false, boot: 'boot-free' });
  f.record('acme', '2026-12-01T00:00:00Z', 50n * GB);
  const d = doc(f, 'acme', '2026-11');
  assert.deepEqual(lines(d).slice(0, 2), [['free', '0', '0', '0.00'], ['volume', '0', '0.1', '0.00']]);
  assert.equal(d.total, '5.00');
});

test('periods follow the plan time zone: a row at 23:30 UTC on Oct 31 is November in Berlin', (t) => {
  const f = fixture(t);
  f.record('globex', '2026-10-31T23:30:00Z', 2n * GB, { direction: 'ingress' });
  f.record('globex', '2026-11-30T23:30:00Z', 7n * GB); // December 1st, 00:30 in Berlin
  const d = doc(f, 'globex', '2026-11');
  assert.deepEqual(d.period, { id: '2026-11', kind: 'month', timeZone: 'Europe/Berlin', start: '2026-10-31T23:00:00.000Z', end: '2026-11-30T23:00:00.000Z' });
  assert.deepEqual(lines(d), [['volume', '2', '1', '2.00']]);
});

test('95th percentile from the ledger: 5-minute slots of one day, rows summed per slot, the top 14 of 288 discarded', (t) => {
  const f = fixture(t);
  const mbit = 37_500_000n; // bytes in 5 minutes at 1 Mbit/s
  // Slot 0 holds two rows that together make 1 Mbit/s; slots 1-13 run at 1 Mbit/s,
  // slot 14 at 3 Mbit/s: 15 busy slots, so the 15th highest (1 Mbit/s) is billed.
  f.record('hooli', '2026-11-03T00:01:00Z', mbit / 2n);
  f.record('hooli', '2026-11-03T00:04:00Z', mbit / 2n);
  for (let i = 1; i <= 14; i++) f.record('hooli', new Date(Date.parse('2026-11-03T00:02:00Z') + i * 300_000).toISOString(), i === 14 ? 3n * mbit : mbit);
  // While the day runs, only the slots begun by the newest row are samples: 15, none discarded.
  assert.deepEqual(lines(doc(f, 'hooli', '2026-11-03')), [['commit', '0.5', '3', '1.50'], ['overage', '2.5', '5', '12.50']]);
  f.billing.closeDue(Date.parse('2026-11-04T12:00:00Z'));
  const d = doc(f, 'hooli', '2026-11-03');
  assert.equal(d.status, 'closed');
  assert.deepEqual(lines(d), [['commit', '0.5', '3', '1.50'], ['overage', '0.5', '5', '2.50']]);
  assert.match(d.lines[1]!.description, /1 Mbit\/s of 288 samples/);
});

test('closing: due periods close once, their invoice is stored and returned byte for byte', (t) => {
  const f = fixture(t);
  f.record('acme', '2026-10-05T00:00:00Z', 3n * GB);
  f.record('acme', '2026-11-05T00:00:00Z', 5n * GB);
  // Not yet: October ended less than closeAfter (1h) ago.
  const none = { closed: [], failed: [] };
  assert.deepEqual(f.billing.closeDue(Date.parse('2026-11-01T00:30:00Z')), none);
  assert.deepEqual(f.billing.closeDue(Date.parse('2026-11-01T01:00:00Z')), { closed: [{ tenant: 'acme', period: '2026-10', total: '5.21', currency: 'EUR' }], failed: [] });
  assert.deepEqual(f.billing.closeDue(Date.parse('2026-11-01T02:00:00Z')), none, 'a closed period is never closed again');
  const closed = f.billing.invoice('acme', '2026-10');
  assert.equal(closed.doc.status, 'closed');
  assert.equal(closed.json, invoiceJson(closed.doc));
  // New usage (a second epoch on another boot) in October changes nothing there.
  f.record('acme', '2026-10-20T00:00:00Z', 2n * GB, { boot: 'boot-2' });
  const again = f.billing.invoice('acme', '2026-10');
  assert.equal(again.json, closed.json);
  assert.equal(invoiceCsv(again.doc), invoiceCsv(closed.doc));
  assert.equal(invoiceHtml(again.doc), invoiceHtml(closed.doc));
  // The store refuses changes outright.
  assert.throws(() => f.ledger.db.prepare("UPDATE invoices SET document = 'x'").run(), /closed invoices never change/);
  assert.throws(() => f.ledger.db.prepare('DELETE FROM invoices').run(), /closed invoices are never deleted/);
});

test('late usage of a closed period is billed once, as an adjustment on the next period, at its tier price', (t) => {
  const f = fixture(t);
  f.record('acme', '2026-10-05T00:00:00Z', 10n * GB); // 1 free + 9 at 0.10 = 0.90, one active hour
  f.billing.closeDue(Date.parse('2026-11-01T01:00:00Z'));
  const october = f.billing.invoice('acme', '2026-10').json;
  // 3 GB of October recorded after it closed: 1 GB more at 0.10, 2 GB at 0.05 = 0.20, and one more active hour.
  f.record('acme', '2026-10-31T12:00:00Z', 3n * GB, { boot: 'boot-2' });
  f.record('acme', '2026-11-10T00:00:00Z', 1n * GB, { boot: 'boot-2' });
  const nov = doc(f, 'acme', '2026-11');
  const adj = nov.lines.filter((l) => l.kind === 'adjustment');
  assert.deepEqual(adj.map((l) => [l.description, l.amount]), [['late usage of 2026-10 (closed), 3 GB billable', '0.21']]);
  assert.equal(f.billing.invoice('acme', '2026-10').json, october, 'the closed period did not change');
  // Closing November keeps the adjustment; December does not repeat it.
  f.billing.closeDue(Date.parse('2026-12-01T01:00:00Z'));
  assert.equal(f.billing.invoice('acme', '2026-11').doc.lines.filter((l) => l.kind === 'adjustment').length, 1);
  assert.deepEqual(doc(f, 'acme', '2026-12').lines.filter((l) => l.kind === 'adjustment'), []);
  // More late October usage after November closed: adjusted on December, from where November left it
  // (4 GB more at 0.05, another active hour).
  f.record('acme', '2026-10-31T13:00:00Z', 4n * GB, { boot: 'boot-3' });
  const dec = doc(f, 'acme', '2026-12').lines.filter((l) => l.kind === 'adjustment');
  assert.deepEqual(dec.map((l) => [l.description, l.amount]), [['late usage of 2026-10 (closed), 4 GB billable', '0.21']]);
});

test('reproducible: two ledgers with the same rows close byte-identical invoices', (t) => {
  const docs = ['host-x', 'host-x'].map((host) => {
    const f = fixture(t, parsePolicy(POLICY), host);
    f.record('acme', '2026-10-05T10:00:00Z', 12_345_678_901n);
    f.record('acme', '2026-10-06T10:00:00Z', 7n);
    f.billing.closeDue(Date.parse('2026-11-02T00:00:00Z'));
    return f.billing.invoice('acme', '2026-10').json;
  });
  assert.equal(docs[0], docs[1]);
});

test('errors name the field and change nothing', (t) => {
  const f = fixture(t);
  const code = (fn: () => unknown, c: string, field?: string): void => {
    assert.throws(fn, (err: unknown) => err instanceof BillingError && err.code === c && err.field === field);
  };
  code(() => f.billing.invoice('nobody', '2026-11'), 'UNKNOWN_TENANT', 'tenant');
  code(() => f.billing.invoice('initech', '2026-11'), 'NO_PLAN', 'tenant');
  code(() => f.billing.invoice('acme', '2026-13'), 'INVALID_PERIOD', 'period');
  code(() => f.billing.invoice('acme', '2026-11-02'), 'INVALID_PERIOD', 'period');
  f.record('acme', '2026-10-05T00:00:00Z', GB);
  f.billing.closeDue(Date.parse('2026-11-02T00:00:00Z'));
  code(() => f.billing.invoice('acme', '2026-09'), 'NOT_INVOICED', 'period');
  assert.equal(f.ledger.db.prepare('SELECT count(*) FROM invoices').pluck().get(), 1);
});
