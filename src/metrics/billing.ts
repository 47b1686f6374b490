// Prometheus series for quotas and alerts. Cardinality: one series per quota
// of the policy (its running period only), plus a fixed few.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { QuotaState } from '../billing/quotas.js';

export interface BillingMetrics {
  alertsRaised: Counter;
  webhookFailures: Counter;
}

export function billingMetrics(registry: Registry, src: {
  quotas(): readonly QuotaState[];
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
    alertsRaised: new Counter({ name: 'tollgate_alerts_raised_total', help: 'Alerts raised (quota thresholds crossed), each once per quota, period and threshold', labelNames: ['type'] as const, registers: [registry] }),
    webhookFailures: new Counter({ name: 'tollgate_webhook_failures_total', help: 'Failed webhook attempts (retried or given up)', registers: [registry] }),
  };
}
