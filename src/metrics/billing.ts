// Prometheus series for quotas and alerts. Cardinality: one series per quota
// of the policy (its running period only), plus a fixed few.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { QuotaState } from '../billing/quotas.js';
import type { EnforcedQuota } from '../billing/enforcer.js';

export interface BillingMetrics {
  alertsRaised: Counter;
  webhookFailures: Counter;
}

export function billingMetrics(registry: Registry, src: {
  quotas(): readonly QuotaState[];
  /** The datapath's view of each quota (one kernel read per scrape). */
  enforced(): readonly EnforcedQuota[];
  deliveries(): { pending: number; abandoned: number };
}): BillingMetrics {
  const labelNames = ['tenant', 'class', 'direction', 'period'] as const;
  const budget = new Gauge({ name: 'tollgate_quota_budget_bytes', help: 'Byte budget of each quota (class "*": every billable class)', labelNames, registers: [] });
  new Gauge({
    name: 'tollgate_quota_used_bytes',
    help: 'Billable bytes each quota has used in its running period, from the ledger',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      budget.reset();
      for (const q of src.quotas()) {
        const l = { tenant: q.tenant, class: q.class, direction: q.direction, period: q.period };
        this.set(l, Number(q.used));
        budget.set(l, q.budget);
      }
    },
  });
  registry.registerMetric(budget);
  // One kernel read per scrape fills the four series: the first collects, the others are registered alongside.
  const exhausted = new Gauge({ name: 'tollgate_quota_exhausted', help: '1 while a quota is spent and refusing or throttling traffic in its running period', labelNames, registers: [] });
  const droppedPackets = new Gauge({ name: 'tollgate_quota_dropped_packets_total', help: 'Packets the datapath refused for a quota (block, or over the throttle rate), since its slot was made', labelNames: ['tenant', 'class', 'direction'] as const, registers: [] });
  const droppedBytes = new Gauge({ name: 'tollgate_quota_dropped_bytes_total', help: 'L3 bytes the datapath refused for a quota, since its slot was made', labelNames: ['tenant', 'class', 'direction'] as const, registers: [] });
  new Gauge({
    name: 'tollgate_quota_datapath_used_bytes',
    help: 'Bytes each quota has let through in its running period, as the datapath counts them (real time)',
    labelNames,
    registers: [registry],
    collect() {
      for (const g of [this, exhausted, droppedPackets, droppedBytes]) g.reset();
      for (const q of src.enforced()) {
        const l = { tenant: q.tenant, class: q.class, direction: q.direction, period: q.period };
        this.set(l, Number(q.used));
        exhausted.set(l, q.exhausted ? 1 : 0);
        droppedPackets.set({ tenant: q.tenant, class: q.class, direction: q.direction }, Number(q.droppedPackets));
        droppedBytes.set({ tenant: q.tenant, class: q.class, direction: q.direction }, Number(q.droppedBytes));
      }
    },
  });
  for (const g of [exhausted, droppedPackets, droppedBytes]) registry.registerMetric(g);
  new Gauge({
    name: 'tollgate_alert_deliveries',
    help: 'Webhook deliveries of alerts not made: pending (retrying) and abandoned (gave up)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const b = src.deliveries();
      this.set({ state: 'pending' }, b.pending);
      this.set({ state: 'abandoned' }, b.abandoned);
    },
  });
  return {
    alertsRaised: new Counter({ name: 'tollgate_alerts_raised_total', help: 'Alerts raised (quota thresholds crossed, budgets exhausted), each once per quota, period and threshold', labelNames: ['type'] as const, registers: [registry] }),
    webhookFailures: new Counter({ name: 'tollgate_webhook_failures_total', help: 'Failed webhook attempts (retried or given up)', registers: [registry] }),
  };
}
