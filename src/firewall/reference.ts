// The firewall's semantics, written as plainly as possible and independent of
// the compiled masks: what docs/security.md says, rule by rule. The
// differential tests feed the same rules and packets to this and to the
// datapath (through BPF_PROG_TEST_RUN) and require the same verdict.
import { cidrContains, parseAddress, parseCidr, type Family } from '../policy/cidr.js';
import { PORT_PROTOCOLS, protocolMatches, type DefaultAction, type FirewallAction, type FirewallRule } from './compile.js';

/** A packet as the rules see it, after the datapath's sanity checks passed. */
export interface RulePacket {
  family: Family;
  /** Network order, 4 or 16 bytes. */
  src: Buffer;
  dst: Buffer;
  protocol: number;
  /** Destination port for TCP/UDP/SCTP; undefined when unknown (a later fragment whose first was not seen) or the protocol has none. */
  dport?: number;
  /** Tenant ids on each side (0: nobody's). */
  srcTenant: number;
  dstTenant: number;
}

export type RuleVerdict =
  | { kind: 'rule'; index: number; name: string; action: FirewallAction }
  | { kind: 'default'; action: DefaultAction }
  /** A later fragment whose ports are unknown, where the first candidate rule has a port condition: dropped. */
  | { kind: 'undecidable'; index: number };

function addressIn(cidrs: readonly string[], family: Family, addr: Buffer): boolean {
  if (cidrs.length === 0) return true;
  const host = { family, addr, prefix: family === 4 ? 32 : 128 };
  return cidrs.some((c) => {
    const cidr = parseCidr(c);
    return cidr.family === family && cidrContains(cidr, host);
  });
}

/**
 * Direction is seen from a tenant: ingress holds when the destination is
 * the rule's tenant (any tenant without one), egress when the source is,
 * both when either is; both without a tenant holds for all traffic.
 */
function sidesMatch(r: FirewallRule, tenantIds: ReadonlyMap<string, number>, p: RulePacket): boolean {
  const id = r.tenant === undefined ? undefined : tenantIds.get(r.tenant) ?? -1;
  const to = id === undefined ? p.dstTenant !== 0 : p.dstTenant === id;
  const from = id === undefined ? p.srcTenant !== 0 : p.srcTenant === id;
  if (r.direction === 'ingress') return to;
  if (r.direction === 'egress') return from;
  return id === undefined || to || from;
}

/** Every condition of a rule except its ports. */
function matchesBesidesPorts(r: FirewallRule, tenantIds: ReadonlyMap<string, number>, p: RulePacket): boolean {
  return addressIn(r.src, p.family, p.src) && addressIn(r.dst, p.family, p.dst) && protocolMatches(r, p.protocol) && sidesMatch(r, tenantIds, p);
}

function portsMatch(r: FirewallRule, p: RulePacket): boolean {
  if (r.ports.length === 0) return true;
  return p.dport !== undefined && r.ports.some((range) => p.dport! >= range.from && p.dport! <= range.to);
}

/**
 * The first rule in order whose conditions all hold decides; none: the
 * default action. A packet whose protocol has ports but whose port is
 * unknown is undecidable when the first rule that matches it otherwise has
 * a port condition.
 */
export function evaluateRules(
  rules: readonly FirewallRule[],
  defaultAction: DefaultAction,
  tenantIds: ReadonlyMap<string, number>,
  p: RulePacket,
  portsUnknown = false,
): RuleVerdict {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!matchesBesidesPorts(r, tenantIds, p)) continue;
    if (portsUnknown && PORT_PROTOCOLS.has(p.protocol) && r.ports.length > 0) return { kind: 'undecidable', index: i };
    if (portsMatch(r, p)) return { kind: 'rule', index: i, name: r.name, action: r.action };
  }
  return { kind: 'default', action: defaultAction };
}

/** Convenience for tests and the CLI: a packet from text addresses. */
export function rulePacket(o: { src: string; dst: string; protocol: number; dport?: number; srcTenant?: number; dstTenant?: number }): RulePacket {
  const s = parseAddress(o.src);
  const d = parseAddress(o.dst);
  if (!s || !d || s.family !== d.family) throw new Error(`rulePacket: ${o.src} -> ${o.dst} are not two addresses of one family`);
  return { family: s.family, src: s.addr, dst: d.addr, protocol: o.protocol, dport: o.dport, srcTenant: o.srcTenant ?? 0, dstTenant: o.dstTenant ?? 0 };
}
