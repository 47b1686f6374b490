// The agent's side of the firewall: compiles the security section with the
// ledger's tenant ids, keeps every rule's hit-counter slot by name (in a
// small JSON file next to the ledger, for the life of the counter map), and
// makes the rules live in the datapath with a generation switch.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Policy, SecuritySection } from '../policy/index.js';
import { assignSlots, compileFirewall, DEFAULT_SLOT, honeypotOf, limitSlotName, slotNames, type FirewallAction, type FirewallPlan } from './compile.js';
import type { FirewallMaps } from './maps.js';

interface SlotFile {
  hitsId: string;
  slots: Record<string, number>;
}

export interface Counted {
  packets: bigint;
  bytes: bigint;
}

export interface RuleStatus extends Counted {
  name: string;
  action: FirewallAction | 'default';
  /** rate-limit rules: what the limit dropped (counted in packets and bytes too). */
  limited?: Counted;
}

/** A standing limit: the packets it applied to, and those it dropped. */
export interface LimitStatus extends Counted {
  name: string;
  tenant: string | null;
  direction: string;
  per: string;
  limited: Counted;
}

export interface FirewallStatus {
  enabled: boolean;
  generation: 0 | 1;
  defaultAction: SecuritySection['defaultAction'] | null;
  /** The rules in policy order, then the default action's counters. */
  rules: RuleStatus[];
  /** Standing rate limits (security.rateLimits) in policy order. */
  limits: LimitStatus[];
  /** Token buckets of the rate limits in use, and how many fit. */
  buckets: { used: number; capacity: number };
  /** What the datapath did with the packets it filtered (passed, dropped, and why). */
  stats: Record<string, bigint>;
}

/** Parts of the security section this version validates but does not act on yet. */
export function unenforcedSecurity(security: SecuritySection | undefined): string[] {
  if (!security) return [];
  const out: string[] = [];
  if (security.ddos?.mitigation === 'rate-limit') out.push('security.ddos.mitigation: rate-limit only reports floods (use block-source to block them)');
  return out;
}

const OFF = 'off';

export class Firewall {
  readonly #maps: FirewallMaps;
  readonly #path: string;
  #slots: Map<string, number>;
  /** #slots the other way round. */
  #names = new Map<number, string>();
  #security: SecuritySection | undefined;
  #signatures: string[] = [];
  /** The plan check() compiled last, for the apply() that follows it with the same rules. */
  #checked: { identity: string; slots: Map<string, number>; fresh: number[]; plan: FirewallPlan } | undefined;
  /** Per counter slot of a live rate limit: the time its buckets take to fill. */
  #fillNs = new Map<number, bigint>();
  /** #identity() of the rules live now (OFF: switched off), as this process wrote them; undefined until it wrote any. */
  #applied: string | undefined;

  constructor(maps: FirewallMaps, slotFile: string) {
    this.#maps = maps;
    this.#path = slotFile;
    this.#slots = new Map();
    if (!existsSync(slotFile)) return;
    let saved: SlotFile;
    try {
      saved = JSON.parse(readFileSync(slotFile, 'utf8')) as SlotFile;
    } catch (err) {
      throw new Error(`${slotFile}: not a firewall slot file (${(err as Error).message}); remove it to start the rule counters over`);
    }
    // Another counter map (a new pin): every slot counts from zero again.
    if (saved.hitsId === maps.hitsId()) this.#setSlots(new Map(Object.entries(saved.slots)));
  }

  #setSlots(slots: Map<string, number>): void {
    this.#slots = slots;
    this.#names = new Map([...slots].map(([name, slot]) => [slot, name]));
  }

  /** Removes token buckets that are full again (see FirewallMaps.sweepBuckets); returns how many. */
  sweepBuckets(nowNs: bigint): number {
    return this.#maps.sweepBuckets(this.#fillNs, nowNs);
  }

  /** The name of L7 signature index i of the live rules. */
  signatureAt(i: number): string | null {
    return this.#signatures[i] ?? null;
  }

  /** The rule counted at a hit-counter slot; null for the default action (slot 0) and unknown slots. */
  ruleAt(slot: number): string | null {
    return slot === DEFAULT_SLOT ? null : this.#names.get(slot) ?? null;
  }

  /**
   * What the compiled maps depend on: the security section and the ids of
   * the tenants its rules name. The agent re-applies its policy when only
   * cgroups changed; the rules are then left as they are.
   */
  #identity(security: SecuritySection, tenantIds: ReadonlyMap<string, number>): string {
    const named = [...new Set(security.rules.flatMap((r) => (r.tenant === undefined ? [] : [r.tenant])))].map((t) => [t, tenantIds.get(t)]);
    return JSON.stringify([security, named]);
  }

  /** Compiles the security section without touching the datapath: throws what apply would. */
  check(doc: Policy, tenantIds: ReadonlyMap<string, number>, ifindexOf?: (name: string) => number | undefined): void {
    if (!doc.security) return;
    const identity = this.#identity(doc.security, tenantIds);
    if (identity === this.#applied) return;
    const { slots, fresh } = assignSlots(this.#slots, slotNames(doc.security));
    const plan = compileFirewall(doc.security, { generation: this.#maps.idleGeneration(), tenantIds, slots, ifindexOf });
    this.#checked = { identity, slots, fresh, plan }; // apply() right after need not compile again
    const scan = doc.security.portscan;
    if (scan?.enabled && scan.action === 'redirect') honeypotOf(scan.redirectTo!, scan.redirectVia, ifindexOf, 'security.portscan.redirectTo');
  }

  /**
   * Compiles the policy's security section for the idle generation and makes
   * it live; without one the firewall is switched off. Throws (changing
   * nothing) when the rules do not compile.
   */
  apply(doc: Policy, tenantIds: ReadonlyMap<string, number>, ifindexOf?: (name: string) => number | undefined): { generation: 0 | 1; rules: number } {
    const security = doc.security;
    if (!security) {
      if (this.#applied !== OFF) {
        this.#maps.apply(undefined);
        this.#maps.collect();
        this.#security = undefined;
        this.#fillNs = new Map();
        this.#applied = OFF;
      }
      return { generation: this.#maps.liveGeneration(), rules: 0 };
    }
    const identity = this.#identity(security, tenantIds);
    if (identity === this.#applied) return { generation: this.#maps.liveGeneration(), rules: security.rules.length };
    const checked = this.#checked;
    this.#checked = undefined;
    const { slots, fresh, plan } = checked && checked.identity === identity && checked.plan.generation === this.#maps.idleGeneration()
      ? checked
      : (() => {
          const a = assignSlots(this.#slots, slotNames(security));
          return { ...a, plan: compileFirewall(security, { generation: this.#maps.idleGeneration(), tenantIds, slots: a.slots, ifindexOf }) };
        })();
    this.#maps.apply(plan, fresh);
    // The slots reach the disk after the switch, off the path to the first
    // packet the rules act on: they are assignSlots(the file's slots, the
    // rule names), which a restarted agent derives the same, so a crash in
    // between costs at most the new rules' first hits.
    this.#save(slots);
    this.#maps.collect(); // the new rules are live: the old ones can go
    this.#setSlots(slots);
    this.#security = security;
    this.#signatures = plan.l7?.names ?? [];
    this.#fillNs = new Map(plan.limits.filter((e) => e.value.slot !== 0).map((e) => {
      const c = e.value;
      return [c.slot, c.pkt_fill_ns > c.byte_fill_ns ? c.pkt_fill_ns : c.byte_fill_ns];
    }));
    this.#applied = identity;
    return { generation: plan.generation, rules: security.rules.length };
  }

  status(): FirewallStatus {
    const hits = this.#maps.readHits();
    const drops = this.#maps.readLimitDrops();
    const zero = { packets: 0n, bytes: 0n };
    const count = (slot: number) => hits.get(slot) ?? zero;
    const rules: RuleStatus[] = (this.#security?.rules ?? []).map((r) => {
      const slot = this.#slots.get(r.name)!;
      return { name: r.name, action: r.action, ...count(slot), ...(r.action === 'rate-limit' ? { limited: drops.get(slot) ?? zero } : {}) };
    });
    if (this.#security) rules.push({ name: '(default)', action: 'default', ...count(DEFAULT_SLOT) });
    const limits: LimitStatus[] = (this.#security?.rateLimits ?? []).map((l) => {
      const slot = this.#slots.get(limitSlotName(l.name))!;
      return { name: l.name, tenant: l.tenant ?? null, direction: l.direction, per: l.per, ...count(slot), limited: drops.get(slot) ?? zero };
    });
    return {
      enabled: this.#maps.enabled(),
      generation: this.#maps.liveGeneration(),
      defaultAction: this.#security?.defaultAction ?? null,
      rules,
      limits,
      buckets: this.#maps.bucketFill(),
      stats: this.#maps.readStats(),
    };
  }

  #save(slots: ReadonlyMap<string, number>): void {
    const file: SlotFile = { hitsId: this.#maps.hitsId(), slots: Object.fromEntries(slots) };
    const tmp = `${this.#path}.tmp`;
    writeFileSync(tmp, JSON.stringify(file));
    renameSync(tmp, this.#path); // a crash leaves the old file or the new one, never half
  }
}
