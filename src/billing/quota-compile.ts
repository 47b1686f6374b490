// Compiles the quotas section into the datapath's quota maps (struct
// tg_quota_cfg per slot, struct tg_quota_refs per counter; abi.h). Pure: the
// caller gives the ids, the slots already in the kernel and the clock.
//
// A quota keeps its slot for as long as its identity (tenant, class,
// directions, period kind) stays in the policy, across reloads and agent
// restarts, so the bytes the datapath counted against it survive both.
import {
  TG_DIR_MAX, TG_QUOTA_ALL_CLASSES, TG_QUOTA_BLOCK, TG_QUOTA_MARKS, TG_QUOTA_NONE, TG_QUOTA_REFS, TG_QUOTA_THROTTLE,
  TG_MAX_QUOTAS, type TgQuotaCfg,
} from '../kernel/abi.gen.js';
import type { Policy, Quota } from '../policy/index.js';
import { nextPeriod, PERIOD_KINDS, type Period } from './period.js';
import { quotaPeriodAt } from './quotas.js';

const ACTIONS: Record<Quota['action'], number> = { none: TG_QUOTA_NONE, throttle: TG_QUOTA_THROTTLE, block: TG_QUOTA_BLOCK };
const DIR_BITS: Record<Quota['direction'], number> = { ingress: 1 << 0, egress: 1 << 1, both: (1 << 0) | (1 << 1) };

/** What a slot belongs to; kept in tg_quota_cfg so a restarted agent finds it. */
export interface QuotaIdentity {
  tenantId: number;
  /** A class id, or TG_QUOTA_ALL_CLASSES. */
  classId: number;
  /** Bit 1 << enum tg_direction. */
  dirs: number;
  /** Index into PERIOD_KINDS. */
  period: number;
}

export interface QuotaContext {
  tenantIds: ReadonlyMap<string, number>;
  /** Every class of the live metering plan, with its ledger id. */
  classes: ReadonlyArray<{ name: string; id: number; billable: boolean }>;
  /** Class capacity of the counter array (tg_meter_counters is indexed with it). */
  maxClasses: number;
  /** Slots in use in the kernel now, by slot. */
  existing: ReadonlyMap<number, QuotaIdentity>;
  now: number;
  /** TAI - UTC in ms (src/kernel/clock.ts). */
  taiOffsetMs: number;
}

export interface QuotaSlot {
  slot: number;
  /** Index into policy.quotas. */
  index: number;
  quota: Quota;
  /** The running period. */
  period: Period;
  cfg: TgQuotaCfg;
  /** Not in the kernel before: its state must be seeded with the period's usage so far. */
  fresh: boolean;
}

export interface QuotaPlan {
  slots: QuotaSlot[];
  /** Counter index -> the slots its packets consume (at most TG_QUOTA_REFS). */
  refs: Map<number, number[]>;
  /** Slots in the kernel that no quota keeps: emptied after the refs stop naming them. */
  freed: number[];
}

export class QuotaCompileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`quotas cannot be compiled:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'QuotaCompileError';
  }
}

export function identityKey(i: QuotaIdentity): string {
  return `${i.tenantId}/${i.classId}/${i.dirs}/${i.period}`;
}

export function identityOf(cfg: Pick<TgQuotaCfg, 'tenant_id' | 'class_id' | 'dirs' | 'period'>): QuotaIdentity {
  return { tenantId: cfg.tenant_id, classId: cfg.class_id, dirs: cfg.dirs, period: cfg.period };
}

/** Bytes at which used * 100 >= budget * percent first holds (the ledger check's rule). */
export function markBytes(budget: number, percent: number): bigint {
  return (BigInt(budget) * BigInt(percent) + 99n) / 100n;
}

/**
 * The throttle's burst in bytes: given, or half a second of the rate but at
 * least 256 KiB (four 64 KiB GSO packets, what one tc packet can be). TCP
 * through a policer needs a deep bucket: at 10 Mbit/s in the lab, TCP got
 * 0.45 of the rate with 100 ms, 0.95 with 320 ms, 1.00 with 500 ms
 * (test/quota.lab.test.ts; docs/billing.md).
 */
export function burstBytes(q: Quota): number {
  return q.throttleBurst ?? Math.max(Math.ceil((q.throttleRate ?? 0) / 8 / 2), 256 * 1024);
}

const taiNs = (ms: number, offsetMs: number): bigint => BigInt(ms + offsetMs) * 1_000_000n;

export function compileQuotas(policy: Policy, ctx: QuotaContext): QuotaPlan {
  const problems: string[] = [];
  const byName = new Map(ctx.classes.map((c) => [c.name, c]));
  const billable = ctx.classes.filter((c) => c.billable);
  const wanted: Array<{ index: number; quota: Quota; identity: QuotaIdentity; counters: number[] }> = [];
  const seen = new Map<string, number>();
  (policy.quotas ?? []).forEach((q, index) => {
    const at = `quotas[${index}]`;
    const tenantId = ctx.tenantIds.get(q.tenant);
    if (tenantId === undefined) return void problems.push(`${at}.tenant: no tenant "${q.tenant}"`);
    const cls = q.class === undefined ? undefined : byName.get(q.class);
    if (q.class !== undefined && (!cls || !cls.billable)) return void problems.push(`${at}.class: no billable class "${q.class}"`);
    const identity: QuotaIdentity = {
      tenantId, classId: cls?.id ?? TG_QUOTA_ALL_CLASSES, dirs: DIR_BITS[q.direction], period: PERIOD_KINDS.indexOf(q.period),
    };
    const key = identityKey(identity);
    const twin = seen.get(key);
    if (twin !== undefined) return void problems.push(`${at}: same tenant, class, direction and period as quotas[${twin}]; merge them into one`);
    seen.set(key, index);
    const counters: number[] = [];
    for (const c of cls ? [cls] : billable) {
      for (let d = 0; d < TG_DIR_MAX; d++) if (identity.dirs & (1 << d)) counters.push((tenantId * ctx.maxClasses + c.id) * TG_DIR_MAX + d);
    }
    wanted.push({ index, quota: q, identity, counters });
  });

  const refs = new Map<number, number[]>();
  const slotOf = new Map([...ctx.existing].map(([slot, id]) => [identityKey(id), slot]));
  const kept = new Set<number>();
  for (const w of wanted) {
    const s = slotOf.get(identityKey(w.identity));
    if (s !== undefined) kept.add(s);
  }
  // New quotas take slots free before this plan: a slot freed now may still be named by a counter until the refs are rewritten.
  let next = 1;
  const slots: QuotaSlot[] = [];
  for (const w of wanted) {
    let slot = slotOf.get(identityKey(w.identity));
    const fresh = slot === undefined;
    if (slot === undefined) {
      while (next < TG_MAX_QUOTAS && ctx.existing.has(next)) next++;
      if (next >= TG_MAX_QUOTAS) {
        problems.push(`quotas[${w.index}]: more than ${TG_MAX_QUOTAS - 1} quotas`);
        continue;
      }
      slot = next++;
    }
    for (const c of w.counters) {
      const list = refs.get(c) ?? [];
      list.push(slot);
      refs.set(c, list);
      if (list.length === TG_QUOTA_REFS + 1) {
        problems.push(`quotas[${w.index}]: more than ${TG_QUOTA_REFS} quotas of tenant "${w.quota.tenant}" cover the same class and direction`);
      }
    }
    const q = w.quota;
    if (q.action === 'throttle' && burstBytes(q) > (q.throttleRate ?? 0) / 8 * 3600) {
      problems.push(`quotas[${w.index}].throttleBurst: more than an hour of throttleRate; a burst that long is no throttle`);
      continue;
    }
    const period = quotaPeriodAt(policy, q, ctx.now);
    const rate = q.action === 'throttle' ? Math.floor((q.throttleRate ?? 0) / 8) : 0;
    const marks = q.thresholds.map((t) => markBytes(q.budget, t));
    const cfg: TgQuotaCfg = {
      limit: BigInt(q.budget),
      marks: [...marks, ...Array<bigint>(TG_QUOTA_MARKS - marks.length).fill(0n)],
      rate: BigInt(rate),
      burst_ns: rate ? (BigInt(burstBytes(q)) * 1_000_000_000n) / BigInt(rate) : 0n,
      period_end_ns: taiNs(period.end, ctx.taiOffsetMs),
      next_end_ns: taiNs(nextPeriod(period).end, ctx.taiOffsetMs),
      tenant_id: w.identity.tenantId,
      class_id: w.identity.classId,
      dirs: w.identity.dirs,
      period: w.identity.period,
      action: ACTIONS[q.action],
      pad: 0,
    };
    slots.push({ slot, index: w.index, quota: q, period, cfg, fresh });
  }
  if (problems.length) throw new QuotaCompileError(problems);
  const freed = [...ctx.existing.keys()].filter((s) => !kept.has(s)).sort((a, b) => a - b);
  return { slots, refs, freed };
}
