// Builders shared by the firewall's property tests: the pure one
// (compile.test.ts, a model of the lookup) and the kernel's differential test
// (test/firewall.testrun.test.ts). Seeded random rule sets over a small
// address universe, so prefixes overlap and nest, parsed the production way.
import { formatCidr, networkOf, parseAddress, parsePolicy, type SecuritySection } from '../policy/index.js';

/** Three tenants: tenant n (alpha = 1, beta = 2, gamma = 3) owns 198.18.n.0/24 and 2001:2:0:n::/64. */
export const FIXTURE_TENANTS = ['alpha', 'beta', 'gamma'] as const;
export const FIXTURE_TENANTS_YAML = `tenants:\n${FIXTURE_TENANTS.map((name, i) => `  - name: ${name}\n    selectors: { cidrs: [198.18.${i + 1}.0/24, "2001:2:0:${i + 1}::/64"] }\n`).join('')}`;

/** Which fixture tenant (1..3, in FIXTURE_TENANTS order) owns an address; 0 when none. */
export function fixtureTenantOf(addr: Buffer, family: 4 | 6): number {
  const n = family === 4
    ? (addr[0] === 198 && addr[1] === 18 ? addr[2]! : 0)
    : (addr.readUInt32BE(0) === 0x2001_0002 && addr.readUInt16BE(4) === 0 && addr[6] === 0 ? addr[7]! : 0);
  return n >= 1 && n <= FIXTURE_TENANTS.length ? n : 0;
}

/** A small seeded PRNG (mulberry32): values in [0, 1). */
export function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
export const int = (rnd: () => number, n: number): number => Math.floor(rnd() * n);

// The universe: 198.18.0-3.x (now and then 198.19.x.x) and 2001:2:0:0-3::x (now and then 2001:2:0:n:8000::x).
export function randomAddr(rnd: () => number, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(rnd() < 0.1 ? [198, 19, int(rnd, 4), int(rnd, 256)] : [198, 18, int(rnd, 4), int(rnd, 256)]);
  const a = parseAddress(`2001:2:0:${int(rnd, 4)}::${int(rnd, 256).toString(16)}`)!.addr;
  if (rnd() < 0.1) a[8] = 0x80;
  return a;
}

export function randomCidr(rnd: () => number): string {
  const family: 4 | 6 = rnd() < 0.65 ? 4 : 6;
  const len = family === 4 ? pick(rnd, [0, 15, 16, 16, 22, 23, 24, 24, 25, 28, 31, 32]) : pick(rnd, [0, 48, 62, 63, 64, 64, 65, 120, 124, 127, 128]);
  return formatCidr({ family, addr: networkOf(randomAddr(rnd, family), len), prefix: len });
}

const PROTOS = ['tcp', 'udp', 'icmp', 'sctp', 'icmpv6', 47] as const;

/**
 * Rule set number s: 1-16 rules, every seventh 1-`big`, each with random
 * prefixes, protocols, port ranges, tenant and direction, over the fixture
 * tenants, parsed as a policy file would be.
 */
export function randomSecurity(rnd: () => number, s: number, big = 120): SecuritySection {
  const n = 1 + int(rnd, s % 7 === 0 ? big : 16);
  const rules = Array.from({ length: n }, (_, i) => {
    const r: Record<string, unknown> = { name: `r${i}`, action: pick(rnd, ['allow', 'deny', 'log', 'deny', 'allow'] as const) };
    if (rnd() < 0.5) r.src = Array.from({ length: 1 + int(rnd, 3) }, () => randomCidr(rnd));
    if (rnd() < 0.5) r.dst = Array.from({ length: 1 + int(rnd, 3) }, () => randomCidr(rnd));
    const withPorts = rnd() < 0.5;
    if (rnd() < 0.6) {
      const ps = [...new Set(Array.from({ length: 1 + int(rnd, 2) }, () => pick(rnd, PROTOS)))];
      r.protocols = withPorts && !ps.some((p) => p === 'tcp' || p === 'udp' || p === 'sctp') ? [...ps, 'udp'] : ps;
    }
    if (withPorts) {
      r.ports = Array.from({ length: 1 + int(rnd, 3) }, () => {
        const a = pick(rnd, [22, 53, 80, 443, 1000, 8080, 0, 65535, int(rnd, 65536)]);
        return rnd() < 0.5 ? a : `${a}-${Math.min(65535, a + int(rnd, 2000))}`;
      });
    }
    if (rnd() < 0.3) r.tenant = pick(rnd, FIXTURE_TENANTS);
    if (rnd() < 0.6) r.direction = pick(rnd, ['ingress', 'egress', 'both']);
    return r;
  });
  const security = { defaultAction: pick(rnd, ['allow', 'deny', 'log'] as const), rules };
  return parsePolicy(`version: 1\n${FIXTURE_TENANTS_YAML}security: ${JSON.stringify(security)}\n`, `random-${s}`).security!;
}

/** A destination port for a packet of a port protocol: mostly at or beside the edges of some rule's range. */
export function randomDport(rnd: () => number, security: SecuritySection): number {
  const withPorts = security.rules.filter((r) => r.ports.length > 0);
  if (!withPorts.length || rnd() >= 0.7) return int(rnd, 65536);
  const range = pick(rnd, pick(rnd, withPorts).ports);
  return Math.max(0, Math.min(65535, pick(rnd, [range.from, range.to, range.from - 1, range.to + 1, range.from + int(rnd, range.to - range.from + 1)])));
}
