// The firewall's maps in the datapath object (abi.h, "Firewall"): a compiled
// plan is written under the idle generation and made live with one array
// update (apply); the replaced generation's trie and tenant entries are
// removed afterwards (collect). Packets see the old rules or the new ones,
// never a mix, and no program is reloaded. Shared by the agent, the
// benchmarks and the BPF_PROG_TEST_RUN tables.
import { type BpfMap, type BpfObject, TypedMap, u8, u32, u64 } from '../kernel/index.js';
import {
  TgCounter, TgFwGen, TgHoneypot, TgFwMask, TgFwRule, TgFwStat, TgFwTenantKey, TgLpmV4Key, TgL7Sig, TgFwPfxV4Key, TgFwPfxV6Key, TG_FW_HASH_SRC4, TG_FW_PFX_SRC4, TG_FW_PFX_SRC6, TG_FW_PFX_DST4, TG_FW_PFX_DST6, TgLpmV6Key, TgRlBucket, TgRlCfg, TG_FW_LIVE_GEN, TG_FW_PROTO, TG_L7_MAX_STATES, TG_FW_LIVE_ON, TG_FW_STAT_MAX, TG_PORTS,
} from '../kernel/abi.gen.js';
import { nonZeroCounters } from '../metering/counters.js';
import type { MapEntry } from '../policy/compile-metering.js';
import { TG_FW_LIVE_BLOCK_REFL, TG_FW_LIVE_BLOCK_SRC, TG_FW_LIVE_DDOS, TG_FW_LIVE_SCAN } from '../kernel/abi.gen.js';

/** tg_fw_live bits owned by the flood and scan guards (src/firewall/guards.ts), not by the rules. */
export const GUARD_BITS = TG_FW_LIVE_DDOS | TG_FW_LIVE_SCAN | TG_FW_LIVE_BLOCK_SRC | TG_FW_LIVE_BLOCK_REFL;
import { emptyFwGen, toMask, type FirewallPlan } from './compile.js';
import type { L7Plan } from './l7.js';

type Decoded<C extends { decode(...a: never[]): unknown }> = ReturnType<C['decode']>;
type Trie<K> = TypedMap<K, Decoded<typeof TgFwMask>>;

/** tg_fw_stats names: enum tg_fw_stat without its prefix, lower case (passed, dropped, bad_ip, ...). */
export const FW_STAT_NAMES: readonly string[] = Object.entries(TgFwStat)
  .filter(([k]) => k !== 'TG_FW_STAT_MAX')
  .sort(([, a], [, b]) => a - b)
  .map(([k]) => k.replace(/^TG_FW_/, '').toLowerCase());

export class FirewallMaps {
  readonly #live: TypedMap<number, number>;
  readonly #gen: TypedMap<number, Decoded<typeof TgFwGen>>;
  readonly #tries: { src4: Trie<Decoded<typeof TgLpmV4Key>>; src6: Trie<Decoded<typeof TgLpmV6Key>>; dst4: Trie<Decoded<typeof TgLpmV4Key>>; dst6: Trie<Decoded<typeof TgLpmV6Key>> };
  readonly #hashed: { v4: TypedMap<Decoded<typeof TgFwPfxV4Key>, Decoded<typeof TgFwMask>>; v6: TypedMap<Decoded<typeof TgFwPfxV6Key>, Decoded<typeof TgFwMask>> };
  readonly #proto: TypedMap<number, Decoded<typeof TgFwMask>>;
  readonly #portMap: BpfMap;
  readonly #tenant: TypedMap<Decoded<typeof TgFwTenantKey>, Decoded<typeof TgFwMask>>;
  readonly #rules: TypedMap<number, Decoded<typeof TgFwRule>>;
  readonly #hits: TypedMap<number, Decoded<typeof TgCounter>>;
  readonly #stats: TypedMap<number, bigint>;
  readonly #limits: TypedMap<number, Decoded<typeof TgRlCfg>>;
  readonly #drops: TypedMap<number, Decoded<typeof TgCounter>>;
  readonly #buckets: BpfMap;
  readonly #honeypots: TypedMap<number, Decoded<typeof TgHoneypot>>;
  readonly #l7: { port: TypedMap<number, number>; dfa: TypedMap<number, number>; sig: TypedMap<number, Decoded<typeof TgL7Sig>> };
  readonly #hitsId: string;
  /** Per generation, the port slots holding a non-zero mask; undefined until this process cleared the generation once. */
  readonly #portsSet: Array<Set<number> | undefined> = [undefined, undefined];
  /** Per generation, the prefix and tenant keys (packed, by map) this process wrote since it emptied it; undefined until it did once. */
  readonly #written: Array<Array<readonly [BpfMap, Buffer]> | undefined> = [undefined, undefined];
  /** Per generation, the L7 ports this process last wrote; undefined until it wrote them all once. */
  readonly #l7Ports: Array<Uint8Array | undefined> = [undefined, undefined];
  /** Per generation, how many rule entries from the first may be non-zero; undefined until this process wrote them all once. */
  readonly #rulesWritten: Array<number | undefined> = [undefined, undefined];
  /** Per generation: the values this process last wrote to an array that is written whole (by map name). */
  readonly #wholeWritten = [new Map<string, Buffer>(), new Map<string, Buffer>()];
  /** Per generation, whether this process emptied its prefix and tenant keys since it last wrote them. */
  readonly #clean = [false, false];

  constructor(obj: BpfObject) {
    this.#hitsId = String(obj.map('tg_fw_hits').id);
    this.#live = new TypedMap(obj.map('tg_fw_live'), u32, u32);
    this.#gen = new TypedMap(obj.map('tg_fw_gen'), u32, TgFwGen);
    this.#tries = {
      src4: new TypedMap(obj.map('tg_fw_src_v4'), TgLpmV4Key, TgFwMask),
      src6: new TypedMap(obj.map('tg_fw_src_v6'), TgLpmV6Key, TgFwMask),
      dst4: new TypedMap(obj.map('tg_fw_dst_v4'), TgLpmV4Key, TgFwMask),
      dst6: new TypedMap(obj.map('tg_fw_dst_v6'), TgLpmV6Key, TgFwMask),
    };
    this.#hashed = { v4: new TypedMap(obj.map('tg_fw_pfx_v4'), TgFwPfxV4Key, TgFwMask), v6: new TypedMap(obj.map('tg_fw_pfx_v6'), TgFwPfxV6Key, TgFwMask) };
    this.#proto = new TypedMap(obj.map('tg_fw_proto'), u32, TgFwMask);
    this.#portMap = obj.map('tg_fw_port');
    this.#tenant = new TypedMap(obj.map('tg_fw_tenant'), TgFwTenantKey, TgFwMask);
    this.#rules = new TypedMap(obj.map('tg_fw_rules'), u32, TgFwRule);
    this.#hits = new TypedMap(obj.map('tg_fw_hits'), u32, TgCounter);
    this.#stats = new TypedMap(obj.map('tg_fw_stats'), u32, u64);
    this.#limits = new TypedMap(obj.map('tg_rl_cfg'), u32, TgRlCfg);
    this.#drops = new TypedMap(obj.map('tg_rl_drops'), u32, TgCounter);
    this.#buckets = obj.map('tg_rl_state');
    this.#honeypots = new TypedMap(obj.map('tg_honeypot'), u32, TgHoneypot);
    this.#l7 = { port: new TypedMap(obj.map('tg_l7_port'), u32, u8), dfa: new TypedMap(obj.map('tg_l7_dfa'), u32, u32), sig: new TypedMap(obj.map('tg_l7_sig'), u32, TgL7Sig) };
  }

  /** Identity of the hit-counter map: changes only when its pin is created afresh. */
  hitsId(): string {
    return this.#hitsId;
  }

  liveGeneration(): 0 | 1 {
    return ((this.#live.get(0) ?? 0) & TG_FW_LIVE_GEN) === 1 ? 1 : 0;
  }

  /** The generation a new plan must be compiled for. */
  idleGeneration(): 0 | 1 {
    return this.liveGeneration() === 0 ? 1 : 0;
  }

  /**
   * Makes a plan live: written under its (idle) generation, switched to,
   * then the old generation's entries removed. `fresh`: hit-counter slots
   * handed out now, zeroed before the switch. Without a plan the firewall is
   * switched off (the same way: an idle generation that filters nothing).
   */
  apply(plan: FirewallPlan | undefined, fresh: readonly number[] = []): void {
    const live = this.liveGeneration();
    const next = live === 0 ? 1 : 0;
    if (plan && plan.generation !== next) throw new Error(`firewall plan was compiled for generation ${plan.generation}, which is live; compile for ${next}`);
    if (!this.#clean[next]) this.#purge(next);
    this.#clean[next] = false;
    if (plan) this.#write(plan);
    for (const slot of fresh) {
      this.#hits.setAllCpus(slot, { packets: 0n, bytes: 0n });
      this.#drops.setAllCpus(slot, { packets: 0n, bytes: 0n });
    }
    this.#live.set(0, next | (plan ? TG_FW_LIVE_ON : 0) | (this.#liveWord() & GUARD_BITS));
  }

  /**
   * Removes the idle generation's entries (the rules apply() replaced), so
   * the tries hold one rule set between updates. Apart from apply() so the
   * switch is not delayed by it; apply() does it itself when it was not done.
   */
  collect(): void {
    const idle = this.idleGeneration();
    if (this.#clean[idle]) return;
    this.#purge(idle);
    this.#clean[idle] = true;
  }

  #write(plan: FirewallPlan): void {
    const t = this.#tries;
    const written: Array<readonly [BpfMap, Buffer]> = [];
    const keyed = <K, V>(map: TypedMap<K, V>, entries: ReadonlyArray<MapEntry<K, V>>) => {
      if (entries.length === 0) return;
      const { keys, values } = map.pack(entries.map((e) => [e.key, e.value]));
      map.map.updatePacked(keys, values);
      written.push([map.map, keys]);
    };
    const inTrie = (table: number) => (plan.gen.flags & (TG_FW_HASH_SRC4 << table)) === 0;
    if (inTrie(TG_FW_PFX_SRC4)) keyed(t.src4, plan.src.v4);
    if (inTrie(TG_FW_PFX_SRC6)) keyed(t.src6, plan.src.v6);
    if (inTrie(TG_FW_PFX_DST4)) keyed(t.dst4, plan.dst.v4);
    if (inTrie(TG_FW_PFX_DST6)) keyed(t.dst6, plan.dst.v6);
    keyed(this.#hashed.v4, plan.hashed.v4);
    keyed(this.#hashed.v6, plan.hashed.v6);
    keyed(this.#tenant, plan.tenants);
    this.#written[plan.generation] = written;
    // The protocol masks are read only with TG_FW_PROTO; another generation's never are.
    if (plan.gen.flags & TG_FW_PROTO) this.#proto.setMany(plan.protocols.map((e) => [e.key, e.value]));
    this.#writePorts(plan);
    // Rule bits past the rules are never read (the active mask holds none): those the generation
    // had are zeroed, the rest are already (all 256 the first time in this process).
    const ruleCount = plan.ruleSlots.length;
    const rulesTo = Math.max(ruleCount, this.#rulesWritten[plan.generation] ?? plan.rules.length);
    this.#rules.setMany(plan.rules.slice(0, rulesTo).map((e) => [e.key, e.value]));
    this.#rulesWritten[plan.generation] = ruleCount;
    this.#writeWhole(this.#limits, plan.generation, plan.limits);
    this.#writeWhole(this.#honeypots, plan.generation, plan.honeypots);
    if (plan.l7) this.#writeL7(plan.generation, plan.l7);
    this.#gen.set(plan.generation, plan.gen);
  }

  /** A generation's part of an array map, written whole unless it holds what this process wrote there last. */
  #writeWhole<V>(map: TypedMap<number, V>, gen: 0 | 1, entries: ReadonlyArray<MapEntry<number, V>>): void {
    const { keys, values } = map.pack(entries.map((e) => [e.key, e.value]));
    if (this.#wholeWritten[gen]!.get(map.map.name)?.equals(values)) return;
    map.map.updatePacked(keys, values);
    this.#wholeWritten[gen]!.set(map.map.name, values);
  }

  /**
   * Port masks are sparse: only the ports in some rule's ranges, plus zeros
   * where the generation's previous rules had ports. The first write of a
   * generation in this process clears all of it (an earlier agent's rules).
   */
  #writePorts(plan: Pick<FirewallPlan, 'generation' | 'ports'>): void {
    const gen = plan.generation;
    const base = gen * TG_PORTS;
    const next = new Set(plan.ports.map((e) => e.key));
    const stale = this.#portsSet[gen] ?? new Set(Array.from({ length: TG_PORTS }, (_, p) => base + p));
    const zero = TgFwMask.encode(toMask(0n));
    const entries: Array<readonly [Buffer, Buffer]> = [];
    for (const slot of stale) if (!next.has(slot)) entries.push([u32.encode(slot), zero]);
    for (const e of plan.ports) entries.push([u32.encode(e.key), TgFwMask.encode(e.value)]);
    this.#portMap.updateMany(entries);
    this.#portsSet[gen] = next;
  }

  /** A generation's L7 ports, automaton (the states it has: others are unreachable) and signatures. */
  #writeL7(gen: 0 | 1, l7: L7Plan): void {
    // Ports: those that changed since this process last wrote the generation's (all 65,536 the first time).
    const before = this.#l7Ports[gen];
    const ports: Array<readonly [number, number]> = [];
    for (let p = 0; p < TG_PORTS; p++) if (!before || before[p] !== l7.ports[p]) ports.push([gen * TG_PORTS + p, l7.ports[p]!]);
    this.#l7.port.setMany(ports);
    this.#l7Ports[gen] = Uint8Array.from(l7.ports);
    const base = gen * TG_L7_MAX_STATES * 256;
    this.#l7.dfa.setMany(Array.from(l7.dfa.table, (next, i) => [base + i, next] as const));
    this.#l7.sig.setMany(l7.sigs.map((e) => [e.key, e.value]));
  }

  /**
   * Switches a generation off and removes its prefix and tenant entries (its
   * arrays are overwritten whole by the next write): the keys this process
   * wrote, or, the first time, every key of the generation found in the maps
   * (an earlier agent's).
   */
  #purge(gen: 0 | 1): void {
    this.#gen.set(gen, emptyFwGen());
    const known = this.#written[gen];
    if (known) {
      for (const [map, keys] of known) map.deleteMany(keys);
    } else {
      for (const trie of Object.values(this.#tries) as Trie<{ generation: number }>[]) {
        for (const k of trie.keys()) if (k.generation === gen) trie.delete(k);
      }
      for (const k of this.#tenant.keys()) if (k.generation === gen) this.#tenant.delete(k);
      for (const { map } of Object.values(this.#hashed)) {
        const { count, keys } = map.lookupBatchPacked();
        const ksz = map.keySize;
        const stale: Buffer[] = [];
        for (let i = 0; i < count; i++) if (keys[i * ksz] === gen) stale.push(keys.subarray(i * ksz, (i + 1) * ksz)); // generation: byte 0
        if (stale.length) map.deleteMany(Buffer.concat(stale));
      }
    }
    this.#written[gen] = [];
    // An unknown generation's ports too (all 65,536), now rather than in the next write, where they would delay a switch.
    if (!this.#portsSet[gen]) this.#writePorts({ generation: gen, ports: [] });
  }

  /** Packets and L3 bytes per hit-counter slot, summed over CPUs. */
  readHits(): Map<number, { packets: bigint; bytes: bigint }> {
    return new Map(nonZeroCounters(this.#hits.map).map(({ index, packets, bytes }) => [index, { packets, bytes }]));
  }

  /** Packets and L3 bytes a rate limit dropped, per counter slot. */
  readLimitDrops(): Map<number, { packets: bigint; bytes: bigint }> {
    return new Map(nonZeroCounters(this.#drops.map).map(({ index, packets, bytes }) => [index, { packets, bytes }]));
  }

  /**
   * Removes the token buckets that have been idle for at least their limit's
   * fill time (fillNs by counter slot): they are full again, so a missing
   * bucket (created full by the next packet) is the same. Buckets of slots no
   * limit holds any more go too. nowNs: CLOCK_MONOTONIC, bpf_ktime_get_ns's clock.
   */
  sweepBuckets(fillNs: ReadonlyMap<number, bigint>, nowNs: bigint): number {
    const { count, keys, values } = this.#buckets.lookupBatchPacked();
    const ksz = this.#buckets.keySize;
    const vsz = this.#buckets.valueBufferSize;
    const idle: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const fill = fillNs.get(keys.readUInt32LE(i * ksz)); // tg_rl_key.slot
      const last = TgRlBucket.decode(values.subarray(i * vsz, (i + 1) * vsz)).last_ns;
      if (fill === undefined || nowNs - last >= fill) idle.push(keys.subarray(i * ksz, (i + 1) * ksz));
    }
    return idle.length ? this.#buckets.deleteMany(Buffer.concat(idle)) : 0;
  }

  /** Token buckets in use (sources, destinations, tenants being limited) and how many fit (LRU: the oldest is evicted). */
  bucketFill(): { used: number; capacity: number } {
    return { used: this.#buckets.lookupBatchPacked().count, capacity: this.#buckets.maxEntries };
  }

  /** tg_fw_stats summed over CPUs, by name (passed, dropped, by_default, bad_ip, ...). */
  readStats(): Record<string, bigint> {
    const sums = new Map(this.#stats.entriesSum());
    const out: Record<string, bigint> = {};
    for (let i = 0; i < TG_FW_STAT_MAX; i++) out[FW_STAT_NAMES[i]!] = sums.get(i) ?? 0n;
    return out;
  }

  #liveWord(): number {
    return this.#live.get(0) ?? 0;
  }

  /** Sets the floods-and-scans bits of tg_fw_live (TG_FW_LIVE_DDOS ..), keeping the generation's. */
  setGuardFlags(flags: number): void {
    if (flags & ~GUARD_BITS) throw new RangeError(`setGuardFlags: ${flags} has bits outside the guard flags`);
    this.#live.set(0, (this.#liveWord() & ~GUARD_BITS) | flags);
  }

  /** Whether the live generation filters. */
  enabled(): boolean {
    return ((this.#live.get(0) ?? 0) & TG_FW_LIVE_ON) !== 0;
  }
}
