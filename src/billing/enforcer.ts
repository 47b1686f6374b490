// Quotas enforced in the datapath: compiles the policy's quotas into the
// meter's quota maps, seeds a new quota with its period's usage from the
// ledger, and turns the datapath's events (thresholds crossed, budget
// exhausted, period renewed) into alerts. The datapath itself consumes the
// budgets, refuses or polices traffic and renews periods; the agent only has
// to run for new policies, seeds and alerts.
import { TgQuotaEvent, TG_QEV_EXHAUSTED, TG_QEV_RENEWED, TG_QEV_THRESHOLD, TG_QUOTA_EXHAUSTED } from '../kernel/abi.gen.js';
import type { QuotaMaps } from '../metering/quota-maps.js';
import type { Policy, Quota } from '../policy/index.js';
import { compileQuotas, type QuotaContext, type QuotaPlan, type QuotaSlot } from './quota-compile.js';
import { alertKey, quotaClass, quotaPeriodAt, type QuotaAlert } from './quotas.js';

export type EnforceContext = Omit<QuotaContext, 'existing' | 'now' | 'taiOffsetMs'>;

/** A quota as the datapath sees it now. */
export interface EnforcedQuota {
  tenant: string;
  class: string;
  direction: Quota['direction'];
  period: string;
  action: Quota['action'];
  budget: number;
  /** Bytes the datapath let through in the running period. */
  used: bigint;
  /** A packet was refused or policed in the running period. */
  exhausted: boolean;
  droppedPackets: bigint;
  droppedBytes: bigint;
}

export type QuotaEventInfo =
  | { type: 'alert'; alert: QuotaAlert }
  | { type: 'renewed'; tenant: string; class: string; direction: Quota['direction']; period: string; at: string };

const nsToMs = (ns: bigint, offsetMs: number): number => Number(ns / 1_000_000n) - offsetMs;

export class QuotaEnforcer {
  readonly #maps: QuotaMaps;
  readonly #taiOffsetMs: number;
  #plan: QuotaPlan | undefined;
  #bySlot = new Map<number, QuotaSlot>();

  constructor(maps: QuotaMaps, taiOffsetMs: number) {
    this.#maps = maps;
    this.#taiOffsetMs = taiOffsetMs;
  }

  /** Compiles without writing anything: throws QuotaCompileError for a policy apply() would refuse. */
  check(policy: Policy, ctx: EnforceContext, now: number): QuotaPlan {
    return compileQuotas(policy, { ...ctx, existing: this.#maps.existing(), now, taiOffsetMs: this.#taiOffsetMs });
  }

  /**
   * Makes the datapath enforce the policy's quotas as of now. seed(index):
   * the ledger's usage of policy.quotas[index] in its running period, for
   * slots that are new or whose period the datapath has not begun.
   */
  apply(policy: Policy, ctx: EnforceContext, now: number, seed: (index: number) => bigint): { plan: QuotaPlan; seeded: QuotaSlot[] } {
    const plan = this.check(policy, ctx, now);
    const seeded = this.#maps.write(plan, (s) => seed(s.index));
    this.#plan = plan;
    this.#bySlot = new Map(plan.slots.map((s) => [s.slot, s]));
    return { plan, seeded };
  }

  /** Each quota of the last plan as the datapath counts it. */
  status(): EnforcedQuota[] {
    const dropped = this.#maps.dropped();
    return (this.#plan?.slots ?? []).map((s) => {
      const st = this.#maps.state.get(s.slot);
      const current = st !== undefined && st.period_end_ns === s.cfg.period_end_ns; // else no packet began this period yet
      const d = dropped.get(s.slot);
      return {
        tenant: s.quota.tenant, class: quotaClass(s.quota), direction: s.quota.direction, period: s.period.id,
        action: s.quota.action, budget: s.quota.budget,
        used: current ? st.used : 0n,
        exhausted: current && (st.flags & TG_QUOTA_EXHAUSTED) !== 0,
        droppedPackets: d?.packets ?? 0n, droppedBytes: d?.bytes ?? 0n,
      };
    });
  }

  /** What a record of tg_quota_events means; undefined for a slot the last plan does not hold (removed meanwhile). */
  describe(record: Buffer, policy: Policy): QuotaEventInfo | undefined {
    const e = TgQuotaEvent.decode(record);
    const s = this.#bySlot.get(e.slot);
    if (!s) return undefined;
    const q = s.quota;
    // The event's period: the one ending at its period_end (whatever the agent thinks is running now).
    const period = quotaPeriodAt(policy, q, nsToMs(e.period_end_ns, this.#taiOffsetMs) - 1).id;
    const who = { tenant: q.tenant, class: quotaClass(q), direction: q.direction, period };
    const at = new Date(nsToMs(e.at_ns, this.#taiOffsetMs)).toISOString();
    const rest = { used: String(e.used), budget: String(q.budget), action: q.action, at };
    switch (e.kind) {
      case TG_QEV_THRESHOLD: {
        const threshold = q.thresholds[e.mark];
        if (threshold === undefined) return undefined;
        return { type: 'alert', alert: { type: 'quota.threshold', key: alertKey(who, threshold), ...who, threshold, ...rest } };
      }
      case TG_QEV_EXHAUSTED:
        return { type: 'alert', alert: { type: 'quota.exhausted', key: alertKey(who, 'exhausted'), ...who, ...rest } };
      case TG_QEV_RENEWED:
        return { type: 'renewed', ...who, at };
      default:
        return undefined;
    }
  }
}
