// The reference evaluator (reference.ts), the plain statement of the rules'
// semantics the datapath is checked against: direction, first match, ports,
// and packets whose ports are unknown.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, type SecuritySection } from '../policy/index.js';
import { evaluateRules, rulePacket, type RulePacket, type RuleVerdict } from './reference.js';

const TENANTS = `tenants:
  - name: alpha
    selectors: { cidrs: [198.18.1.0/24, "2001:2:0:1::/64"] }
  - name: beta
    selectors: { cidrs: [198.18.2.0/24, "2001:2:0:2::/64"] }
`;
const ALPHA = 11;
const BETA = 22;
const OTHER = 33; // a tenant no rule names
const IDS: ReadonlyMap<string, number> = new Map([['alpha', ALPHA], ['beta', BETA]]);

function sec(rules: string[], extra = ''): SecuritySection {
  const s = parsePolicy(`version: 1\n${TENANTS}security:\n${extra ? `  ${extra}\n` : ''}  rules:\n${rules.map((r) => `    - ${r}\n`).join('')}`, 'test.yaml').security;
  assert.ok(s);
  return s;
}

function evaluate(s: SecuritySection, p: RulePacket, portsUnknown = false, ids: ReadonlyMap<string, number> = IDS): RuleVerdict {
  return evaluateRules(s.rules, s.defaultAction, ids, p, portsUnknown);
}

/** The name of the deciding rule, or "default" / "undecidable". */
function decides(s: SecuritySection, p: RulePacket, portsUnknown = false, ids: ReadonlyMap<string, number> = IDS): string {
  const v = evaluate(s, p, portsUnknown, ids);
  return v.kind === 'rule' ? v.name : v.kind;
}

const tcp = (o: { src?: string; dst?: string; dport?: number; srcTenant?: number; dstTenant?: number } = {}): RulePacket =>
  rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol: 6, dport: 80, ...o });

describe('direction', () => {
  // Every combination of tenants on the two sides: nobody's, alpha, beta, a tenant no rule names.
  const sides = [0, ALPHA, BETA, OTHER];
  const cases = sides.flatMap((srcTenant) => sides.map((dstTenant) => ({ srcTenant, dstTenant })));
  const matches = (rule: string) => {
    const s = sec([`{ name: r, action: deny, ${rule} }`]);
    return cases.filter((c) => decides(s, tcp(c)) === 'r').map((c) => `${c.srcTenant}->${c.dstTenant}`);
  };
  const where = (f: (c: { srcTenant: number; dstTenant: number }) => boolean) => cases.filter(f).map((c) => `${c.srcTenant}->${c.dstTenant}`);

  test('ingress without a tenant: the destination is some tenant', () => {
    assert.deepEqual(matches('direction: ingress'), where((c) => c.dstTenant !== 0));
  });
  test('ingress is the default direction', () => {
    assert.deepEqual(matches('protocols: [tcp]'), where((c) => c.dstTenant !== 0));
  });
  test('egress without a tenant: the source is some tenant', () => {
    assert.deepEqual(matches('direction: egress'), where((c) => c.srcTenant !== 0));
  });
  test('both without a tenant: all traffic, tenants or not', () => {
    assert.deepEqual(matches('direction: both'), where(() => true));
  });
  test('ingress with a tenant: the destination is that tenant', () => {
    assert.deepEqual(matches('direction: ingress, tenant: alpha'), where((c) => c.dstTenant === ALPHA));
  });
  test('egress with a tenant: the source is that tenant', () => {
    assert.deepEqual(matches('direction: egress, tenant: alpha'), where((c) => c.srcTenant === ALPHA));
  });
  test('both with a tenant: either side is that tenant', () => {
    assert.deepEqual(matches('direction: both, tenant: beta'), where((c) => c.srcTenant === BETA || c.dstTenant === BETA));
  });
  test('a tenant without an id matches nothing', () => {
    const s = sec(['{ name: r, action: deny, direction: both, tenant: beta }']);
    const ids = new Map([['alpha', ALPHA]]);
    for (const c of cases) assert.equal(decides(s, tcp(c), false, ids), 'default', JSON.stringify(c));
  });
});

describe('first match wins', () => {
  test('the first rule in document order whose conditions all hold decides', () => {
    const s = sec([
      '{ name: other-net, action: allow, direction: both, src: [198.19.0.0/16] }',
      '{ name: web, action: deny, direction: both, protocols: [tcp], ports: [80] }',
      '{ name: all-tcp, action: log, direction: both, protocols: [tcp] }',
      '{ name: everything, action: allow, direction: both }',
    ], 'defaultAction: deny');
    assert.deepEqual(evaluate(s, tcp()), { kind: 'rule', index: 1, name: 'web', action: 'deny' });
    assert.deepEqual(evaluate(s, tcp({ dport: 81 })), { kind: 'rule', index: 2, name: 'all-tcp', action: 'log' });
    assert.deepEqual(evaluate(s, tcp({ src: '198.19.5.5' })), { kind: 'rule', index: 0, name: 'other-net', action: 'allow' });
    assert.deepEqual(evaluate(s, rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol: 17, dport: 80 })), { kind: 'rule', index: 3, name: 'everything', action: 'allow' });
    // Reversed, the catch-all shadows everything.
    const reversed = { ...s, rules: [...s.rules].reverse() };
    assert.deepEqual(evaluate(reversed, tcp()), { kind: 'rule', index: 0, name: 'everything', action: 'allow' });
  });

  test('no rule matches: the default action', () => {
    for (const d of ['allow', 'deny', 'log'] as const) {
      const s = sec(['{ name: r, action: deny, direction: both, protocols: [udp] }'], `defaultAction: ${d}`);
      assert.deepEqual(evaluate(s, tcp()), { kind: 'default', action: d });
    }
    assert.deepEqual(evaluateRules([], 'allow', IDS, tcp()), { kind: 'default', action: 'allow' }, 'the default default');
  });
});

describe('addresses', () => {
  test('src and dst: any of the prefixes, of the packet\'s family; none: any address', () => {
    const s = sec([
      '{ name: v4, action: deny, direction: both, src: [198.18.1.0/24, 198.18.3.128/25], dst: [198.18.0.0/16] }',
      '{ name: v6, action: deny, direction: both, dst: ["2001:2:0:1::/64"] }',
      '{ name: mapped, action: deny, direction: both, src: ["::ffff:198.19.0.0/112"] }',
    ]);
    assert.equal(decides(s, tcp({ src: '198.18.1.9' })), 'v4');
    assert.equal(decides(s, tcp({ src: '198.18.3.200' })), 'v4');
    assert.equal(decides(s, tcp({ src: '198.18.3.127' })), 'default');
    assert.equal(decides(s, tcp({ src: '198.18.1.9', dst: '198.19.0.1' })), 'default', 'src holds, dst does not');
    assert.equal(decides(s, tcp({ src: '198.19.0.7', dst: '198.18.0.1' })), 'mapped', 'an IPv4-mapped prefix matches IPv4 packets');
    assert.equal(decides(s, tcp({ src: '2001:2::1', dst: '2001:2:0:1::5' })), 'v6');
    assert.equal(decides(s, tcp({ src: '2001:2:0:1::1', dst: '2001:2:0:2::5' })), 'default', 'a v6 packet never matches a v4 prefix');
  });
});

describe('ports', () => {
  test('a rule with ports and no protocols matches tcp, udp and sctp only', () => {
    const s = sec(['{ name: r, action: deny, direction: both, ports: ["53-54"] }']);
    for (const protocol of [6, 17, 132]) {
      assert.equal(decides(s, { ...tcp({ dport: 53 }), protocol }), 'r', `protocol ${protocol}`);
      assert.equal(decides(s, { ...tcp({ dport: 54 }), protocol }), 'r');
      assert.equal(decides(s, { ...tcp({ dport: 52 }), protocol }), 'default');
      assert.equal(decides(s, { ...tcp({ dport: 55 }), protocol }), 'default');
    }
    for (const protocol of [0, 1, 47, 58, 255]) {
      assert.equal(decides(s, rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol })), 'default', `protocol ${protocol}`);
      // Even a caller that hands a port for a protocol without ports gets no match.
      assert.equal(decides(s, rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol, dport: 53 })), 'default', `protocol ${protocol} with a port`);
    }
  });

  test('ports with protocols: the port condition holds only for packets with a port', () => {
    const s = sec(['{ name: r, action: deny, direction: both, protocols: [icmp, tcp], ports: [80] }']);
    assert.equal(decides(s, tcp({ dport: 80 })), 'r');
    assert.equal(decides(s, tcp({ dport: 8080 })), 'default');
    assert.equal(decides(s, rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol: 1 })), 'default', 'icmp has no port');
    assert.equal(decides(s, rulePacket({ src: '198.18.0.1', dst: '198.18.0.2', protocol: 17, dport: 80 })), 'default', 'udp is not in protocols');
  });

  test('the policy refuses ports whose protocols have none', () => {
    assert.throws(() => sec(['{ name: r, action: deny, protocols: [icmp], ports: [80] }']), /ports need a protocol with ports/);
  });

  test('ranges are inclusive at both ends, 0 and 65535 included', () => {
    const s = sec(['{ name: r, action: deny, direction: both, ports: [0, "65535", "100-200"] }']);
    const hit = [0, 65535, 100, 150, 200];
    for (const dport of [0, 1, 99, 100, 150, 200, 201, 65534, 65535]) assert.equal(decides(s, tcp({ dport })), hit.includes(dport) ? 'r' : 'default', `port ${dport}`);
  });
});

describe('ports unknown (a later fragment whose first was not seen)', () => {
  const frag = (o: { src?: string; dst?: string } = {}) => ({ ...tcp(o), dport: undefined });

  test('undecidable when the first otherwise-matching rule has ports', () => {
    const s = sec([
      '{ name: ssh, action: allow, direction: both, protocols: [tcp], ports: [22] }',
      '{ name: all, action: allow, direction: both }',
    ]);
    assert.deepEqual(evaluate(s, frag(), true), { kind: 'undecidable', index: 0 });
  });

  test('decided when the first otherwise-matching rule has no ports, whatever follows', () => {
    const s = sec([
      '{ name: all, action: log, direction: both }',
      '{ name: ssh, action: allow, direction: both, protocols: [tcp], ports: [22] }',
    ]);
    assert.deepEqual(evaluate(s, frag(), true), { kind: 'rule', index: 0, name: 'all', action: 'log' });
  });

  test('rules with ports that fail another condition are passed over', () => {
    const s = sec([
      '{ name: elsewhere, action: deny, direction: both, src: [198.19.0.0/16], protocols: [tcp], ports: [22] }',
      '{ name: udp, action: deny, direction: both, protocols: [udp], ports: [53] }',
      '{ name: alpha-only, action: deny, tenant: alpha, ports: [80] }',
      '{ name: catch, action: allow, direction: both, src: [198.18.0.0/16] }',
      '{ name: later-ports, action: deny, direction: both, ports: [80] }',
    ], 'defaultAction: deny');
    assert.deepEqual(evaluate(s, frag(), true), { kind: 'rule', index: 3, name: 'catch', action: 'allow' });
    assert.deepEqual(evaluate(s, frag({ src: '198.19.1.1' }), true), { kind: 'undecidable', index: 0 });
    assert.deepEqual(evaluate(s, { ...frag(), dstTenant: ALPHA }, true), { kind: 'undecidable', index: 2 }, 'the tenant condition holds');
    assert.deepEqual(evaluate(s, frag({ src: '2001:2::1', dst: '2001:2::2' }), true), { kind: 'undecidable', index: 4 });
  });

  test('no rule matches otherwise: the default action', () => {
    const s = sec(['{ name: ssh, action: allow, direction: both, src: [198.19.0.0/16], ports: [22] }'], 'defaultAction: log');
    assert.deepEqual(evaluate(s, frag(), true), { kind: 'default', action: 'log' });
  });

  test('with the port known, the same packet is decided by the ports', () => {
    const s = sec([
      '{ name: ssh, action: allow, direction: both, protocols: [tcp], ports: [22] }',
      '{ name: all, action: deny, direction: both }',
    ]);
    assert.equal(decides(s, tcp({ dport: 22 })), 'ssh');
    assert.equal(decides(s, tcp({ dport: 23 })), 'all');
    assert.equal(decides(s, { ...tcp(), dport: undefined }), 'all', 'a packet without a port, not marked unknown, fails port conditions');
  });
});

describe('rulePacket', () => {
  test('parses the addresses and defaults the tenants to nobody', () => {
    const p = rulePacket({ src: '198.18.0.1', dst: '198.19.255.254', protocol: 17, dport: 53 });
    assert.deepEqual(p, { family: 4, src: Buffer.from([198, 18, 0, 1]), dst: Buffer.from([198, 19, 255, 254]), protocol: 17, dport: 53, srcTenant: 0, dstTenant: 0 });
    const q = rulePacket({ src: '2001:2::1', dst: '2001:2:0:1::2', protocol: 58, srcTenant: ALPHA, dstTenant: BETA });
    assert.equal(q.family, 6);
    assert.equal(q.src.length, 16);
    assert.equal(q.dport, undefined);
    assert.deepEqual([q.srcTenant, q.dstTenant], [ALPHA, BETA]);
  });

  test('refuses mixed families and non-addresses', () => {
    assert.throws(() => rulePacket({ src: '198.18.0.1', dst: '2001:2::1', protocol: 6 }), /not two addresses of one family/);
    assert.throws(() => rulePacket({ src: '198.18.0.0/24', dst: '198.18.0.1', protocol: 6 }), /not two addresses/);
    assert.throws(() => rulePacket({ src: 'nope', dst: '198.18.0.1', protocol: 6 }), /not two addresses/);
  });
});
