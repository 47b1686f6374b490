// SYN-flood detection and mitigation, the agent's half (docs/security.md,
// "SYN floods"). The datapath counts SYNs (and the SYN-ACKs answering them)
// per destination; every poll this reads the counts, and a destination whose
// SYN rate reaches the policy's threshold is put under mitigation
// (tg_syn_guard), where the datapath challenges sources it has not verified.
// Mitigation ends once the rate has stayed below the threshold for holdFor.
// Start and end are security events.
import { randomBytes } from 'node:crypto';
import { pollEvery } from '../periodic.js';
import { type BpfMap, TypedMap, u32, u64 } from '../kernel/index.js';
import { TgAddrKey, TgSynCfg, TgSynCount, TG_SYN_CHALLENGE, TG_SYN_DROP, TG_SYN_LOG } from '../kernel/abi.gen.js';
import { formatAddress } from '../policy/cidr.js';
import type { SecuritySection } from '../policy/index.js';
import type { NewEvent } from '../events/event.js';

export type SynfloodSection = NonNullable<SecuritySection['synflood']>;
type Count = ReturnType<typeof TgSynCount.decode>;
type Addr = ReturnType<typeof TgAddrKey.decode>;

const ACTIONS: Readonly<Record<SynfloodSection['action'], number>> = { syncookie: TG_SYN_CHALLENGE, drop: TG_SYN_DROP, log: TG_SYN_LOG };
const COUNTS = ['syns', 'synacks', 'challenged', 'dropped', 'verified', 'passed'] as const;
type Counts = Record<(typeof COUNTS)[number], bigint>;

export interface GuardedDestination {
  address: string;
  tenant: string | null;
  since: string;
  /** SYNs per second at the latest poll, and the highest seen since mitigation began. */
  rate: number;
  peak: number;
  /** Since mitigation began. */
  counts: Counts;
}

export interface SynfloodStatus {
  enabled: boolean;
  action: SynfloodSection['action'] | null;
  thresholdPps: number | null;
  guarded: GuardedDestination[];
  /** Since the counters' map was created, over every destination. */
  totals: Counts;
}

interface Guarded {
  key: Addr;
  address: string;
  since: number;
  lastAbove: number;
  rate: number;
  peak: number;
  start: Counts;
}

const zero = (): Counts => ({ syns: 0n, synacks: 0n, challenged: 0n, dropped: 0n, verified: 0n, passed: 0n });
const minus = (a: Counts, b: Counts): Counts => Object.fromEntries(COUNTS.map((k) => [k, a[k] - b[k]])) as Counts;
const addrText = (k: Addr): string => formatAddress(k.ip_ver === 4 ? 4 : 6, k.addr_be.subarray(0, k.ip_ver === 4 ? 4 : 16));
const keyId = (k: Addr): string => `${k.ip_ver}:${k.addr_be.toString('hex')}`;

export interface SynGuardOptions {
  /** The tenant owning an address (for events), or null. */
  tenantOf(address: string): string | null;
  /** Records security events (synflood.start / synflood.end). */
  record(events: NewEvent[]): void;
  onError?(err: Error): void;
  /** Poll period; default 200 ms, so mitigation engages well within a second. */
  pollMs?: number;
}

export class SynGuard {
  readonly #cfg: TypedMap<number, ReturnType<typeof TgSynCfg.decode>>;
  readonly #dst: TypedMap<Addr, Count>;
  readonly #guard: TypedMap<Addr, bigint>;
  readonly #opts: SynGuardOptions;
  #policy: SynfloodSection | undefined;
  /** Counts at the previous poll, by destination, and when it was. */
  #last = new Map<string, Counts & { key: Addr }>();
  #lastAt = 0;
  readonly #guarded = new Map<string, Guarded>();
  #stop: (() => void) | undefined;

  constructor(maps: { cfg: BpfMap; dst: BpfMap; guard: BpfMap }, opts: SynGuardOptions) {
    this.#cfg = new TypedMap(maps.cfg, u32, TgSynCfg);
    this.#dst = new TypedMap(maps.dst, TgAddrKey, TgSynCount);
    this.#guard = new TypedMap(maps.guard, TgAddrKey, u64);
    this.#opts = opts;
  }

  /**
   * Makes the policy's synflood section live. The cookie key is made once
   * and kept in the pinned map (a restarted agent's challenges stay valid).
   * Destinations an earlier agent left under mitigation stay so, and end
   * the normal way. Without the section (or disabled) every guard is lifted.
   */
  apply(policy: SynfloodSection | undefined, now = Date.now()): void {
    const on = policy?.enabled === true;
    const cur = this.#cfg.get(0);
    const key = cur && (cur.key[0] !== 0n || cur.key[1] !== 0n) ? cur.key : [randomBytes(8).readBigUInt64LE(), randomBytes(8).readBigUInt64LE()];
    this.#cfg.set(0, { key, verified_ns: BigInt(policy?.verifiedFor ?? 0) * 1_000_000n, on: on ? 1 : 0, action: ACTIONS[policy?.action ?? 'syncookie'] });
    this.#policy = on ? policy : undefined;
    if (!on) {
      for (const g of [...this.#guarded.values()]) this.#end(g, now, 'synflood mitigation switched off by the policy');
      for (const k of this.#guard.keys()) this.#guard.delete(k);
      return;
    }
    for (const [k, at] of this.#guard.entries()) {
      const id = keyId(k);
      if (this.#guarded.has(id)) continue;
      const address = addrText(k);
      this.#guarded.set(id, { key: k, address, since: Number(at) || now, lastAbove: now, rate: 0, peak: 0, start: this.#read().get(id) ?? zero() });
    }
  }

  /** Polls now (the baseline) and every pollMs until stop(). */
  start(): void {
    this.#stop ??= pollEvery(this.#opts.pollMs ?? 200, () => this.poll(), this.#opts.onError);
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  #read(): Map<string, Counts & { key: Addr }> {
    const out = new Map<string, Counts & { key: Addr }>();
    for (const [k, c] of this.#dst.entriesSum()) out.set(keyId(k), { key: k, ...(Object.fromEntries(COUNTS.map((n) => [n, c[n]])) as Counts) });
    return out;
  }

  /** One round: rates since the last poll, then engage or end mitigation per destination. */
  poll(now = Date.now()): void {
    const p = this.#policy;
    if (!p) {
      // Off: nothing to decide, and apply() has lifted every guard. The first poll once on is the baseline.
      this.#last = new Map();
      this.#lastAt = 0;
      return;
    }
    const counts = this.#read();
    const seconds = this.#lastAt ? (now - this.#lastAt) / 1000 : 0;
    if (seconds > 0) {
      for (const [id, c] of counts) {
        const before = this.#last.get(id) ?? zero();
        const syns = Number(c.syns - before.syns);
        const rate = Math.round(syns / seconds);
        const g = this.#guarded.get(id);
        if (g) {
          g.rate = rate;
          g.peak = Math.max(g.peak, rate);
          if (rate >= p.thresholdPps) g.lastAbove = now;
          else if (now - g.lastAbove >= p.holdFor) this.#end(g, now, 'the SYN rate stayed below the threshold', c);
        } else if (rate >= p.thresholdPps) {
          const synacks = Number(c.synacks - before.synacks);
          this.#engage(id, c.key, now, rate, syns > 0 ? Math.max(0, 1 - synacks / syns) : 0, before);
        }
      }
      // destinations evicted from the count map while guarded: their rate is 0
      for (const g of [...this.#guarded.values()]) {
        if (!counts.has(keyId(g.key)) && now - g.lastAbove >= p.holdFor) this.#end(g, now, 'the SYN rate stayed below the threshold');
      }
    }
    this.#last = counts;
    this.#lastAt = now;
  }

  #engage(id: string, key: Addr, now: number, rate: number, unanswered: number, start: Counts): void {
    const address = addrText(key);
    this.#guard.set(key, BigInt(now));
    this.#guarded.set(id, { key, address, since: now, lastAbove: now, rate, peak: rate, start });
    const p = this.#policy!;
    this.#opts.record([{
      at: now, type: 'synflood.start', tenant: this.#opts.tenantOf(address), flow: null, rule: null, action: p.action,
      detail: { destination: address, rate, thresholdPps: p.thresholdPps, unansweredRatio: Math.round(unanswered * 1000) / 1000 },
    }]);
  }

  #end(g: Guarded, now: number, why: string, c = this.#read().get(keyId(g.key))): void {
    this.#guard.delete(g.key);
    this.#guarded.delete(keyId(g.key));
    const d = minus(c ?? g.start, g.start);
    this.#opts.record([{
      at: now, type: 'synflood.end', tenant: this.#opts.tenantOf(g.address), flow: null, rule: null, action: this.#policy?.action ?? null,
      detail: { destination: g.address, why, seconds: Math.round((now - g.since) / 100) / 10, peakRate: g.peak, ...Object.fromEntries(COUNTS.map((k) => [k, Number(d[k])])) },
    }]);
  }

  status(): SynfloodStatus {
    const counts = this.#read();
    const totals = zero();
    for (const c of counts.values()) for (const k of COUNTS) totals[k] += c[k];
    return {
      enabled: this.#policy !== undefined,
      action: this.#policy?.action ?? null,
      thresholdPps: this.#policy?.thresholdPps ?? null,
      guarded: [...this.#guarded.values()].map((g) => ({
        address: g.address, tenant: this.#opts.tenantOf(g.address), since: new Date(g.since).toISOString(), rate: g.rate, peak: g.peak,
        counts: minus(counts.get(keyId(g.key)) ?? g.start, g.start),
      })),
      totals,
    };
  }
}
