// The meter's policy maps (tenant lookups and traffic classes), written one
// generation at a time. Shared by the datapath's generation switch and the
// BPF_PROG_TEST_RUN tables, so tests exercise the production writer.
import { type BpfObject, TypedMap, u32 } from '../kernel/index.js';
import {
  TgCgroupKey, TgCgroupRef, TgClassGen, TgLpmV4Key, TgLpmV6Key, TgTenantRef, TG_MAX_CLASS_RULES, TG_PORTS, TG_PROTOCOLS,
} from '../kernel/abi.gen.js';
import { emptyClassGen, ifaceSlot, type MeteringPlan } from '../policy/index.js';

type Decoded<C extends { decode(...a: never[]): unknown }> = ReturnType<C['decode']>;

export class PolicyMaps {
  readonly v4: TypedMap<Decoded<typeof TgLpmV4Key>, Decoded<typeof TgTenantRef>>;
  readonly v6: TypedMap<Decoded<typeof TgLpmV6Key>, Decoded<typeof TgTenantRef>>;
  readonly ifaces: TypedMap<number, Decoded<typeof TgTenantRef>>;
  readonly cgroups: TypedMap<Decoded<typeof TgCgroupKey>, Decoded<typeof TgCgroupRef>>;
  readonly classGen: TypedMap<number, Decoded<typeof TgClassGen>>;
  readonly classV4: TypedMap<Decoded<typeof TgLpmV4Key>, number>;
  readonly classV6: TypedMap<Decoded<typeof TgLpmV6Key>, number>;
  /** Array maps indexed generation * span + slot. */
  readonly #arrays: Array<{ map: TypedMap<number, number>; span: number; entries: (p: MeteringPlan) => { key: number; value: number }[] }>;

  constructor(obj: BpfObject) {
    this.v4 = new TypedMap(obj.map('tg_tenant_v4'), TgLpmV4Key, TgTenantRef);
    this.v6 = new TypedMap(obj.map('tg_tenant_v6'), TgLpmV6Key, TgTenantRef);
    this.ifaces = new TypedMap(obj.map('tg_tenant_iface'), u32, TgTenantRef);
    this.cgroups = new TypedMap(obj.map('tg_tenant_cgroup'), TgCgroupKey, TgCgroupRef);
    this.classGen = new TypedMap(obj.map('tg_class_gen'), u32, TgClassGen);
    this.classV4 = new TypedMap(obj.map('tg_class_v4'), TgLpmV4Key, u32);
    this.classV6 = new TypedMap(obj.map('tg_class_v6'), TgLpmV6Key, u32);
    this.#arrays = [
      { map: new TypedMap(obj.map('tg_class_proto'), u32, u32), span: TG_PROTOCOLS, entries: (p) => p.classMaps.protocols },
      { map: new TypedMap(obj.map('tg_class_port'), u32, u32), span: TG_PORTS, entries: (p) => p.classMaps.ports },
      { map: new TypedMap(obj.map('tg_class_ids'), u32, u32), span: TG_MAX_CLASS_RULES, entries: (p) => p.classMaps.ids },
    ];
  }

  /** Writes a plan's entries under its generation (whose old entries are removed first); does not make it live. */
  write(plan: MeteringPlan): void {
    this.purge(plan.generation);
    for (const e of plan.v4) this.v4.set(e.key, e.value);
    for (const e of plan.v6) this.v6.set(e.key, e.value);
    for (const e of plan.ifaces) this.ifaces.set(ifaceSlot(e.key), e.value);
    this.cgroups.setMany(plan.cgroups.map((e) => [e.key, e.value]));
    for (const e of plan.classMaps.v4) this.classV4.set(e.key, e.value);
    for (const e of plan.classMaps.v6) this.classV6.set(e.key, e.value);
    for (const a of this.#arrays) a.map.setMany(a.entries(plan).map((e) => [e.key, e.value]));
    this.classGen.set(plan.generation, plan.classMaps.gen);
  }

  /** Removes every entry of one generation. */
  purge(gen: 0 | 1): void {
    for (const [k] of this.v4.entries()) if (k.generation === gen) this.v4.delete(k);
    for (const [k] of this.v6.entries()) if (k.generation === gen) this.v6.delete(k);
    for (const [slot, ref] of this.ifaces.entries()) if (slot % 2 === gen && ref.tenant_id !== 0) this.ifaces.set(slot, { tenant_id: 0, flags: 0 });
    for (const [k] of this.cgroups.entries()) if (k.generation === gen) this.cgroups.delete(k);
    this.classGen.set(gen, emptyClassGen());
    for (const [k] of this.classV4.entries()) if (k.generation === gen) this.classV4.delete(k);
    for (const [k] of this.classV6.entries()) if (k.generation === gen) this.classV6.delete(k);
    for (const { map, span } of this.#arrays) {
      const stale = map.entries().filter(([slot, m]) => m !== 0 && Math.floor(slot / span) === gen);
      map.setMany(stale.map(([slot]) => [slot, 0]));
    }
  }
}
