// The meter's quota maps (abi.h, "Quotas enforced in the datapath"): the
// agent writes tg_quota_cfg and tg_quota_refs and seeds tg_quota_state for a
// new slot; from then on only the programs write the state. Shared by the
// agent's enforcer and the BPF_PROG_TEST_RUN tables, so tests exercise the
// production writer.
import { type BpfObject, TypedMap, u32 } from '../kernel/index.js';
import { TgCounter, TgQuotaCfg, TgQuotaRefs, TgQuotaState, TG_DIR_MAX, TG_QUOTA_REFS } from '../kernel/abi.gen.js';
import { identityOf, type QuotaIdentity, type QuotaPlan, type QuotaSlot } from '../billing/quota-compile.js';

const EMPTY_REFS = (): TgQuotaRefs => ({ slot: Array<number>(TG_QUOTA_REFS).fill(0) });
const EMPTY_CFG = (): TgQuotaCfg => TgQuotaCfg.decode(Buffer.alloc(TgQuotaCfg.size));
const sameRefs = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((s, i) => s === b[i]);

export class QuotaMaps {
  readonly refs: TypedMap<number, TgQuotaRefs>;
  readonly cfg: TypedMap<number, TgQuotaCfg>;
  readonly state: TypedMap<number, TgQuotaState>;
  readonly drops: TypedMap<number, TgCounter>;
  /** What tg_quota_refs holds, non-empty entries only: read once (pins may be adopted), then kept in step with every write. */
  #refs = new Map<number, number[]>();

  /** maxClasses: the class capacity tg_quota_refs (like tg_meter_counters) is indexed with. */
  constructor(obj: BpfObject, maxClasses: number) {
    this.refs = new TypedMap(obj.map('tg_quota_refs'), u32, TgQuotaRefs);
    this.cfg = new TypedMap(obj.map('tg_quota_cfg'), u32, TgQuotaCfg);
    this.state = new TypedMap(obj.map('tg_quota_state'), u32, TgQuotaState);
    this.drops = new TypedMap(obj.map('tg_quota_drops'), u32, TgCounter);
    // Only the rows of tenants with a slot in force can hold refs: write()
    // names a slot in refs only after its configuration, and empties a slot
    // only after no ref names it. So an adopted map is read a tenant row at a
    // time, not whole (tenants x classes x directions entries).
    const row = maxClasses * TG_DIR_MAX;
    for (const tenant of new Set([...this.existing().values()].map((i) => i.tenantId))) {
      for (let i = tenant * row; i < (tenant + 1) * row; i++) {
        const slots = this.refs.get(i)?.slot.filter((s) => s !== 0) ?? [];
        if (slots.length) this.#refs.set(i, slots);
      }
    }
  }

  /** Slots in force (a period set), with the identity the agent wrote. */
  existing(): Map<number, QuotaIdentity> {
    return new Map(this.cfg.entries().filter(([, c]) => c.period_end_ns !== 0n).map(([s, c]) => [s, identityOf(c)]));
  }

  /**
   * Makes the maps match a plan. A slot is seeded (state written with
   * seed(slot) bytes used) when it is new, or when its state is still in a
   * period before the plan's (no packet renewed it): the datapath would
   * start that period at 0, the ledger knows better. Order: states, then
   * configurations (a slot comes into force), then the counters' refs, then
   * slots no longer wanted are emptied, after no counter names them.
   */
  write(plan: QuotaPlan, seed: (s: QuotaSlot) => bigint): QuotaSlot[] {
    const seeded: QuotaSlot[] = [];
    for (const s of plan.slots) {
      const st = s.fresh ? undefined : this.state.get(s.slot);
      if (!st || st.period_end_ns < s.cfg.period_end_ns) {
        this.state.set(s.slot, { used: seed(s), period_end_ns: s.cfg.period_end_ns, tat_ns: 0n, flags: 0, pad: 0 });
        seeded.push(s);
      }
      const now = this.cfg.get(s.slot);
      if (!now || !TgQuotaCfg.encode(now).equals(TgQuotaCfg.encode(s.cfg))) this.cfg.set(s.slot, s.cfg);
    }
    const changes: Array<[number, TgQuotaRefs]> = [];
    for (const [i, slots] of plan.refs) {
      if (!sameRefs(this.#refs.get(i) ?? [], slots)) changes.push([i, { slot: [...slots, ...Array<number>(TG_QUOTA_REFS - slots.length).fill(0)] }]);
    }
    for (const i of this.#refs.keys()) if (!plan.refs.has(i)) changes.push([i, EMPTY_REFS()]);
    this.refs.setMany(changes);
    for (const [i, r] of changes) {
      const slots = r.slot.filter((s) => s !== 0);
      if (slots.length) this.#refs.set(i, slots);
      else this.#refs.delete(i);
    }
    for (const slot of plan.freed) {
      this.cfg.set(slot, EMPTY_CFG());
      this.state.set(slot, { used: 0n, period_end_ns: 0n, tat_ns: 0n, flags: 0, pad: 0 });
      this.drops.setAllCpus(slot, { packets: 0n, bytes: 0n });
    }
    return seeded;
  }

  /** Packets and bytes each slot refused, summed over CPUs (non-zero slots only). */
  dropped(): Map<number, TgCounter> {
    return new Map(this.drops.entriesSum().filter(([, c]) => c.packets !== 0n));
  }
}
