// A loaded meter object with the fixture tenants' metering maps, the
// firewall's maps written by the production compiler, and the packets the
// firewall tables send through BPF_PROG_TEST_RUN.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, TypedMap, u32 } from '../../src/kernel/index.js';
import { TgCounter, TgMeterConfig } from '../../src/kernel/abi.gen.js';
import { PolicyMaps } from '../../src/metering/policy-maps.js';
import { compileMetering, parsePolicy, type SecuritySection } from '../../src/policy/index.js';
import { assignSlots, compileFirewall, slotNames, type FirewallPlan } from '../../src/firewall/compile.js';
import { FirewallMaps } from '../../src/firewall/maps.js';
import { FIXTURE_TENANTS, FIXTURE_TENANTS_YAML } from '../../src/firewall/firewall.fixture.js';
import { ethernet, icmp, icmpv6, ipv4, ipv6, rawL4, tcp, udp, IPPROTO, TCP_FLAGS, type L3, type L4, type Ipv6Ext } from '../../lab/packets.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const OBJECT = join(ROOT, 'build', 'bpf', 'meter.bpf.o');
const TC_ACT_SHOT = 2;
const TC_ACT_UNSPEC = -1;
const XDP_DROP = 1;
const XDP_PASS = 2;

export const IDS = new Map(FIXTURE_TENANTS.map((name, i) => [name, i + 1])); // fixtureTenantOf's numbers

export type Prog = 'tg_filter_ingress' | 'tg_filter_egress' | 'tg_filter_xdp' | 'tg_meter_ingress' | 'tg_meter_egress' | 'tg_meter_xdp';
export const isXdp = (p: Prog) => p.endsWith('xdp');

/** Everything a table needs from a loaded object. */
export class Harness {
  readonly obj: BpfObject;
  readonly fw: FirewallMaps;
  readonly hits: TypedMap<number, TgCounter>;
  slots = new Map<string, number>();

  constructor() {
    this.obj = BpfObject.open(OBJECT);
    this.obj.load();
    this.fw = new FirewallMaps(this.obj);
    this.hits = new TypedMap(this.obj.map('tg_fw_hits'), u32, TgCounter);
    const plan = compileMetering(parsePolicy(`version: 1\n${FIXTURE_TENANTS_YAML}`, 'tenants'), { tenantIds: IDS, ifindexOf: () => undefined, generation: 0 });
    new PolicyMaps(this.obj).write(plan);
    new TypedMap(this.obj.map('tg_meter_config'), u32, TgMeterConfig).set(0, { generation: 0, flags: 0, metered_netns: 0, pad: 0 });
  }

  /** Parses a security section as a policy would have it and makes it live. */
  apply(securityYaml: string): SecuritySection {
    const security = parsePolicy(`version: 1\n${FIXTURE_TENANTS_YAML}security:\n${securityYaml}`, 'security').security!;
    this.applyParsed(security);
    return security;
  }

  applyParsed(security: SecuritySection): FirewallPlan {
    const { slots, fresh } = assignSlots(this.slots, slotNames(security));
    this.slots = slots;
    const plan = compileFirewall(security, { generation: this.fw.idleGeneration(), tenantIds: IDS, slots });
    this.fw.apply(plan, fresh);
    return plan;
  }

  hitCount(slot: number): bigint {
    return this.hits.getSum(slot)?.packets ?? 0n;
  }

  /** Runs a frame; true when the program dropped it. */
  run(prog: Prog, frame: Buffer): boolean {
    const res = this.obj.program(prog).testRun({ data: frame });
    const rv = res.retval | 0;
    if (isXdp(prog)) {
      assert.ok(rv === XDP_DROP || rv === XDP_PASS, `${prog} returned ${rv}`);
      return rv === XDP_DROP;
    }
    assert.ok(rv === TC_ACT_SHOT || rv === TC_ACT_UNSPEC, `${prog} returned ${rv}`);
    return rv === TC_ACT_SHOT;
  }

  stats(): Record<string, bigint> {
    return this.fw.readStats();
  }

  close(): void {
    this.obj.close();
  }
}

export function l4For(proto: number, dport: number | undefined, o: { flags?: number; sport?: number } = {}): L4 {
  const sport = o.sport ?? 40000;
  if (proto === IPPROTO.TCP) return tcp({ sport, dport: dport ?? 0, flags: o.flags ?? TCP_FLAGS.ACK });
  if (proto === IPPROTO.UDP) return udp({ sport, dport: dport ?? 0, payload: Buffer.alloc(8) });
  if (proto === IPPROTO.ICMP) return icmp({ payload: Buffer.alloc(8) });
  if (proto === IPPROTO.ICMPV6) return icmpv6({ payload: Buffer.alloc(8) });
  if (proto === IPPROTO.SCTP) {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(sport, 0);
    h.writeUInt16BE(dport ?? 0, 2);
    return rawL4(IPPROTO.SCTP, h);
  }
  return rawL4(proto, Buffer.alloc(16));
}

export function l3For(p: { family: 4 | 6; src: string; dst: string; l4: L4; fragmentOffset?: number; id?: number }): L3 {
  if (p.family === 4) return ipv4({ src: p.src, dst: p.dst, l4: p.l4, fragmentOffset: p.fragmentOffset, id: p.id });
  const ext: Ipv6Ext[] = p.fragmentOffset ? [{ type: 'fragment', offset: p.fragmentOffset, id: p.id }] : [];
  return ipv6({ src: p.src, dst: p.dst, l4: p.l4, ext });
}

export const frameOf = (l3: L3, vlans?: Parameters<typeof ethernet>[0]['vlans']) => ethernet({ payload: l3, vlans });

