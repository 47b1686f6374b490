import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../policy/index.js';
import { AlertStore, DEFAULT_CLASS_ID, Ledger } from '../store/index.js';
import { QuotaWatcher } from './quotas.js';

const GB = 1_000_000_000n;

test('quota thresholds: each raised once per period when crossed, free and other classes and directions not counted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-quota-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ledger = Ledger.open(join(dir, 'l.db'), { hostId: 'h' });
  t.after(() => ledger.close());
  const policy = parsePolicy(`
version: 1
tenants:
  - { name: acme, plan: p, selectors: { cidrs: [198.18.1.0/24] } }
classes:
  - { name: mgmt, billable: false, match: { cidrs: [198.18.255.0/24] } }
plans:
  - { name: p, currency: EUR, timeZone: Europe/Berlin }
quotas:
  - { tenant: acme, class: internet, direction: egress, budget: 1GB, thresholds: [50, 100], action: block }
alerts:
  webhooks: [http://127.0.0.1:9/hook]
`);
  const acme = ledger.ensureTenants(['acme']).get('acme')!;
  const mgmt = ledger.ensureClasses(['mgmt']).get('mgmt')!;
  const totals = new Map<string, bigint>();
  const record = (at: string, bytes: bigint, direction: 'ingress' | 'egress' = 'egress', classId = DEFAULT_CLASS_ID): void => {
    const k = `${classId}/${direction}`;
    totals.set(k, (totals.get(k) ?? 0n) + bytes);
    ledger.recordInterval({
      epoch: { bootId: 'b', counterId: '1', startedAt: new Date('2026-10-01T00:00:00Z') }, at: new Date(at),
      readings: [...totals].map(([key, v]) => {
        const [c, d] = key.split('/');
        return { tenantId: acme, classId: Number(c), direction: d as 'ingress' | 'egress', billable: Number(c) !== mgmt, packets: v, bytes: v };
      }),
    });
  };
  let now = Date.parse('2026-11-10T00:00:00Z');
  const w = new QuotaWatcher(ledger, () => policy, 1000, {}, () => now);
  const raised = async (): Promise<string[]> => (await w.runNow()).raised.map((a) => `${a.period}:${a.threshold}`);

  record('2026-10-31T22:30:00Z', 4n * GB); // October in Berlin
  record('2026-11-02T00:00:00Z', 4n * GB, 'ingress'); // another direction
  record('2026-11-02T00:00:01Z', 4n * GB, 'egress', mgmt); // a free class
  assert.deepEqual(await raised(), []);
  assert.deepEqual(w.states().map((s) => [s.period, s.used]), [['2026-11', 0n]]);

  record('2026-11-03T00:00:00Z', GB / 2n - 1n);
  assert.deepEqual(await raised(), []);
  record('2026-11-03T00:00:01Z', 1n); // exactly 50%
  assert.deepEqual(await raised(), ['2026-11:50']);
  assert.deepEqual(await raised(), [], 'once per period');
  record('2026-11-04T00:00:00Z', 2n * GB);
  const r = await w.runNow();
  assert.deepEqual(r.raised.map((a) => [a.threshold, a.used, a.budget, a.action, a.key]), [[100, String(GB / 2n + 2n * GB), String(GB), 'block', 'quota:acme:internet:egress:2026-11:100']]);

  now = Date.parse('2026-12-01T00:00:00Z'); // still November in UTC, December in Berlin
  record('2026-11-30T23:30:00Z', GB);
  assert.deepEqual(await raised(), ['2026-12:50', '2026-12:100']);
  // Every alert waits in the outbox for the webhook.
  assert.deepEqual(new AlertStore(ledger).backlog(), { pending: 4, abandoned: 0 });
});
