// Quota thresholds from the ledger: after every export, each quota's usage in
// its running period (billable bytes of its class, or of every billable
// class, in its direction or both) is compared with its thresholds; a
// threshold crossed for the first time in a period raises one alert, recorded
// in the ledger's outbox (so a crash loses none) and POSTed to the policy's
// webhooks by WebhookSender. The datapath reports the same crossings as they
// happen (src/billing/enforcer.ts), under the same idempotency keys: this
// check is the backstop for events lost or made while no agent ran.
import type { Policy, Quota } from '../policy/index.js';
import { AlertStore, DIRECTIONS, InvoiceStore, type Direction, type Ledger } from '../store/index.js';
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import { tenantPlan } from './billing.js';
import { periodAt, type Period } from './period.js';

export interface QuotaState {
  tenant: string;
  /** The quota's class, or "*" for every billable class. */
  class: string;
  direction: Quota['direction'];
  period: string;
  used: bigint;
  budget: number;
}

export interface QuotaAlert {
  /** threshold: a threshold was crossed; exhausted: the budget is spent and the first packet was refused or throttled. */
  type: 'quota.threshold' | 'quota.exhausted';
  /** The idempotency key: one alert per quota, period and threshold (or exhaustion). */
  key: string;
  tenant: string;
  class: string;
  direction: Quota['direction'];
  period: string;
  /** quota.threshold: the percentage crossed. */
  threshold?: number;
  /** Bytes, as decimal text (exact beyond 2^53). */
  used: string;
  budget: string;
  action: Quota['action'];
  at: string;
}

export interface QuotaRound {
  states: QuotaState[];
  raised: QuotaAlert[];
}

/** The period of a quota running at `instant`: in the time zone of its tenant's plan, UTC without one. */
export function quotaPeriodAt(policy: Policy, q: Quota, instant: number): Period {
  return periodAt(instant, q.period, tenantPlan(policy, q.tenant)?.timeZone ?? 'UTC');
}

/** A quota's class as keys, alerts and metrics name it: "*" for every billable class. */
export const quotaClass = (q: Quota): string => q.class ?? '*';

/** The idempotency key of a quota's alert: its threshold, or "exhausted". */
export function alertKey(s: Pick<QuotaState, 'tenant' | 'class' | 'direction' | 'period'>, what: number | 'exhausted'): string {
  return `quota:${s.tenant}:${s.class}:${s.direction}:${s.period}:${what}`;
}

export class QuotaWatcher extends PeriodicTask<QuotaRound> {
  readonly #usage: InvoiceStore;
  readonly #alerts: AlertStore;
  readonly #policy: () => Policy;
  readonly #now: () => number;

  constructor(ledger: Ledger, policy: () => Policy, intervalMs: number, events: TaskEvents<QuotaRound> = {}, now: () => number = Date.now) {
    super(intervalMs, events);
    this.#usage = new InvoiceStore(ledger);
    this.#alerts = new AlertStore(ledger);
    this.#policy = policy;
    this.#now = now;
  }

  /** Each quota's usage in its running period; periods follow the tenant's plan time zone (UTC without a plan). */
  states(now: number = this.#now(), policy: Policy = this.#policy()): QuotaState[] {
    return this.#usage.snapshot(() => {
      const cut = this.#usage.cut();
      return (policy.quotas ?? []).map((q): QuotaState => {
        const period = quotaPeriodAt(policy, q, now);
        const t = this.#usage.tenant(q.tenant);
        const dirs: readonly Direction[] = q.direction === 'both' ? DIRECTIONS : [q.direction];
        const used = (t ? this.#usage.volumes({ tenantId: t.id, start: period.start, end: period.end, upTo: cut }) : [])
          .filter((v) => (q.class === undefined || q.class === v.class) && dirs.includes(v.direction))
          .reduce((sum, v) => sum + v.bytes, 0n);
        return { tenant: q.tenant, class: quotaClass(q), direction: q.direction, period: period.id, used, budget: q.budget };
      });
    });
  }

  protected async run(): Promise<QuotaRound> {
    const now = this.#now();
    const policy = this.#policy();
    const quotas = policy.quotas ?? [];
    const webhooks = policy.alerts?.webhooks ?? [];
    const states = this.states(now, policy);
    const raised: QuotaAlert[] = [];
    states.forEach((s, i) => {
      const q = quotas[i]!;
      for (const threshold of q.thresholds) {
        if (s.used * 100n < BigInt(s.budget) * BigInt(threshold)) continue;
        const alert: QuotaAlert = {
          type: 'quota.threshold', key: alertKey(s, threshold),
          tenant: s.tenant, class: s.class, direction: s.direction, period: s.period, threshold,
          used: String(s.used), budget: String(s.budget), action: q.action, at: new Date(now).toISOString(),
        };
        if (this.#alerts.record(alert.key, JSON.stringify(alert), webhooks, now)) raised.push(alert);
      }
    });
    return { states, raised };
  }
}
