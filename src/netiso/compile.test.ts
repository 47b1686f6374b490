import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TG_NI_ALLOW, TG_NI_DENY, TG_NI_DEST, TG_NI_MAX_RULES, TG_NI_RULE_PORTS } from '../kernel/abi.gen.js';
import { parsePolicy, type IsolationScope } from '../policy/index.js';
import {
  compileNetIsolation, compiledVerdict, destinationVerdict, generationEntries, kernelScopeId, netDestination, NetIsoCompileError, policyScopeIndex,
  type NetContainer,
} from './compile.js';

/** Isolation scopes from YAML, validated by the production schema. */
function scopes(isolation: string): IsolationScope[] {
  const doc = `version: 1
tenants:
  - name: acme
    selectors: { cgroups: ["/acme/**"] }
  - name: beta
    selectors: { cgroups: ["/beta/**"] }
isolation:
${isolation}`;
  return parsePolicy(doc).isolation!;
}

const container = (id: string, tenant: string, path: string, cgroupId: bigint, below: bigint[] = []): NetContainer =>
  ({ id, runtime: 'docker', tenant, cgroupId, cgroupPath: path, below });

test('groups: a containers glob limits each container, a tenant scope its containers together; others are left out', () => {
  const s = scopes(`
  - tenant: acme
    containers: "/acme/web/**"
    maxConnections: 5
  - tenant: acme
    maxConnections: 100
  - tenant: beta
`);
  const cs = [
    container('w1', 'acme', '/acme/web/docker/w1', 11n, [12n]),
    container('w2', 'acme', '/acme/web/docker/w2', 21n),
    container('db', 'acme', '/acme/db/docker/db', 31n),
    container('q', 'acme', '/acme/q/docker/q', 41n, [42n, 43n]),
    container('b', 'beta', '/beta/docker/b', 51n),
    container('x', 'gamma', '/gamma/docker/x', 61n),
  ];
  const plan = compileNetIsolation(s, cs);
  assert.deepEqual(plan.groups.map((g) => [g.key, g.kind, g.scope, g.limit, g.containers.map((c) => c.id), g.cgroups]), [
    ['container:w1', 'container', 0, 5, ['w1'], [11n, 12n]],
    ['container:w2', 'container', 0, 5, ['w2'], [21n]],
    ['tenant:acme', 'tenant', 1, 100, ['db', 'q'], [31n, 41n, 42n, 43n]],
    ['tenant:beta', 'tenant', 2, null, ['b'], [51n]],
  ]);
  assert.deepEqual(plan.unassigned, []);
  assert.deepEqual(plan.scopes.map((x) => [x.index, x.checked, x.maxConnections]), [[0, false, 5], [1, false, 100], [2, false, null]]);
  assert.deepEqual(compileNetIsolation(undefined, cs), { scopes: [], groups: [], unassigned: [] });
});

test('a cgroup listed twice (a container below another) counts for the first container only', () => {
  const s = scopes('  - tenant: acme\n    containers: "/acme/**"\n');
  const plan = compileNetIsolation(s, [container('a', 'acme', '/acme/docker/a', 1n, [2n]), container('b', 'acme', '/acme/docker/a/docker/b', 2n, [3n])]);
  assert.deepEqual(plan.groups.map((g) => g.cgroups), [[1n, 2n], [3n]]);
});

test('rules: port lists split into kernel rules of TG_NI_RULE_PORTS ranges, adjacent ranges joined, protocols as bits', () => {
  const ports = Array.from({ length: 2 * TG_NI_RULE_PORTS + 1 }, (_, i) => 1000 + 10 * i);
  const s = scopes(`
  - tenant: acme
    destinations:
      default: deny
      rules:
        - { action: allow, cidrs: ["198.18.0.0/15"], protocols: [tcp], ports: [${ports.join(', ')}] }
        - { action: allow, cidrs: ["198.18.1.0/24"], ports: [53, 54, "55-60", "58-70"] }
        - { action: deny, cidrs: ["2001:2::/48", "198.18.1.128/25"] }
`);
  const [scope] = compileNetIsolation(s, []).scopes;
  assert.equal(scope!.checked, true);
  assert.equal(scope!.defaultAction, 'deny');
  assert.deepEqual(scope!.rules.map((r) => [r.policyRule, r.action, r.ports.length]), [
    [0, 'allow', TG_NI_RULE_PORTS], [0, 'allow', TG_NI_RULE_PORTS], [0, 'allow', 1], [1, 'allow', 1], [2, 'deny', 0],
  ]);
  assert.deepEqual(scope!.rules[3]!.ports, [{ from: 53, to: 70 }], 'joined');
  assert.deepEqual(scope!.rules[0]!.protocols, [1n << 6n, 0n, 0n, 0n], 'tcp only');
  assert.deepEqual(scope!.rules[3]!.protocols, [(1n << 6n) | (1n << 17n), 0n, 1n << (132n - 128n), 0n], 'ports alone: tcp, udp, sctp');
  assert.deepEqual(scope!.rules[4]!.protocols, [2n ** 64n - 1n, 2n ** 64n - 1n, 2n ** 64n - 1n, 2n ** 64n - 1n], 'any protocol');
  // Longest prefixes carry the bits of the prefixes containing them.
  const masks = new Map(scope!.prefixes.map((p) => [`${p.family}:${p.addr.toString('hex')}/${p.prefix}`, p.mask]));
  assert.deepEqual(masks, new Map([
    ['4:c6120000/15', 0b00111n],
    ['4:c6120100/24', 0b01111n],
    ['4:c6120180/25', 0b11111n],
    ['6:20010002000000000000000000000000/48', 0b10000n],
  ]));
});

test('generation entries: scope ids per generation, LPM prefix lengths count the scope, rules at id * TG_NI_MAX_RULES', () => {
  const s = scopes(`
  - tenant: acme
  - tenant: beta
    destinations: { rules: [{ action: deny, cidrs: ["198.18.5.0/24"], protocols: [udp], ports: [53] }] }
`);
  const plan = compileNetIsolation(s, []);
  for (const gen of [0, 1] as const) {
    const e = generationEntries(plan.scopes, gen);
    const id = kernelScopeId(gen, 1);
    assert.equal(id, gen * 64 + 2);
    assert.equal(policyScopeIndex(id), 1);
    assert.deepEqual(e.scopes, [
      [kernelScopeId(gen, 0), { flags: 0, default_action: TG_NI_ALLOW, n_rules: 0, pad: 0 }],
      [id, { flags: TG_NI_DEST, default_action: TG_NI_ALLOW, n_rules: 1, pad: 0 }],
    ]);
    assert.deepEqual(e.v4, [[{ prefixlen: 32 + 24, scope: id, addr_be: Buffer.from([198, 18, 5, 0]) }, 1n]]);
    assert.deepEqual(e.v6, []);
    assert.equal(e.rules.length, 1);
    const [idx, r] = e.rules[0]!;
    assert.equal(idx, id * TG_NI_MAX_RULES);
    assert.deepEqual({ ...r, protocols: undefined }, {
      protocols: undefined, port_lo: [53, 0, 0, 0, 0, 0, 0, 0], port_hi: [53, 0, 0, 0, 0, 0, 0, 0], policy_rule: 0, action: TG_NI_DENY, n_ports: 1, pad: 0,
    });
  }
  assert.equal(policyScopeIndex(0), undefined);
  assert.equal(policyScopeIndex(64), undefined);
});

test('errors name the policy field', () => {
  const base = (over: Partial<IsolationScope['destinations'] & object>): IsolationScope[] => [
    { tenant: 'acme', execs: { log: false, alert: [] } },
    { tenant: 'acme', execs: { log: false, alert: [] } },
    { tenant: 'acme', execs: { log: false, alert: [] }, destinations: { default: 'allow', rules: [], ...over } },
  ];
  const cases: Array<[string, IsolationScope[], RegExp]> = [
    ['a CIDR with host bits', base({ rules: [{ action: 'deny', cidrs: ['198.18.0.0/16', '198.18.1.1/24'], protocols: [], ports: [] }] }),
      /^isolation\[2\]\.destinations\.rules\[0\]\.cidrs\[1\]: .*198\.18\.1\.0\/24/],
    ['not a CIDR', base({ rules: [{ action: 'deny', cidrs: ['nope'], protocols: [], ports: [] }] }), /^isolation\[2\]\.destinations\.rules\[0\]\.cidrs\[0\]: /],
    ['a protocol beyond 255', base({ rules: [{ action: 'deny', cidrs: ['198.18.0.0/16'], protocols: [6, 300], ports: [] }] }), /^isolation\[2\]\.destinations\.rules\[0\]\.protocols\[1\]: /],
    ['a backwards port range', base({ rules: [{ action: 'deny', cidrs: ['198.18.0.0/16'], protocols: [], ports: [{ from: 9, to: 1 }] }] }), /^isolation\[2\]\.destinations\.rules\[0\]\.ports\[0\]: /],
    ['no CIDR', base({ rules: [{ action: 'deny', cidrs: [], protocols: [], ports: [] }] }), /^isolation\[2\]\.destinations\.rules\[0\]\.cidrs: /],
    ['too many kernel rules', base({
      rules: Array.from({ length: 62 }, (_, i) => ({ action: 'deny' as const, cidrs: ['198.18.0.0/16'], protocols: [6], ports: Array.from({ length: i === 61 ? 30 : 1 }, (_, k) => ({ from: 2 * k, to: 2 * k })) })),
    }), /^isolation\[2\]\.destinations\.rules\[61\]: the scope's destination rules need more than 64 kernel rules/],
    ['maxConnections 0', [{ tenant: 'acme', execs: { log: false, alert: [] }, maxConnections: 0 }], /^isolation\[0\]\.maxConnections: must be an integer from 1/],
  ];
  for (const [what, s, want] of cases) {
    assert.throws(() => compileNetIsolation(s, []), (e: unknown) => e instanceof NetIsoCompileError && want.test(e.message), what);
  }
});

test('the schema-validated policy compiles; first match wins, as the reference says', () => {
  const s = scopes(`
  - tenant: acme
    destinations:
      default: deny
      rules:
        - { action: deny, cidrs: ["198.18.0.66/32"] }
        - { action: allow, cidrs: ["198.18.0.0/24"], protocols: [tcp], ports: [80, 443] }
        - { action: allow, cidrs: ["198.18.0.0/16", "2001:2::/48"], protocols: [udp], ports: ["5000-5999"] }
        - { action: deny, cidrs: ["198.18.0.0/16"], ports: ["6000-6999"] }
        - { action: allow, cidrs: ["198.18.0.0/15", "2001:2::/32"], protocols: [icmp, icmpv6] }
`);
  const [scope] = s;
  const plan = compileNetIsolation(s, []);
  const rows: Array<[string, number, number | undefined, 'allow' | 'deny', number | null]> = [
    ['198.18.0.66', 6, 80, 'deny', 0],
    ['198.18.0.1', 6, 443, 'allow', 1],
    ['198.18.0.1', 6, 22, 'deny', null],
    ['198.18.0.1', 17, 443, 'deny', null],
    ['198.18.7.1', 17, 5500, 'allow', 2],
    ['2001:2::9', 17, 5000, 'allow', 2],
    ['2001:2::9', 6, 5000, 'deny', null],
    ['198.18.7.1', 132, 6500, 'deny', 3],
    ['198.18.7.1', 1, undefined, 'allow', 4],
    ['198.19.7.1', 1, undefined, 'allow', 4],
    ['2001:2:1::1', 58, undefined, 'allow', 4],
    ['::ffff:198.18.0.66', 6, 80, 'deny', 0],
    ['::ffff:198.18.0.1', 6, 80, 'allow', 1],
    // an unknown port (a later fragment): deny rules with ports match, allow rules with ports do not
    ['198.18.0.1', 6, undefined, 'deny', 3],
    ['198.18.7.1', 17, undefined, 'deny', 3],
    ['203.0.113.1', 6, 80, 'deny', null],
  ];
  for (const [addr, proto, dport, action, rule] of rows) {
    const d = netDestination(addr, proto, dport);
    assert.deepEqual(destinationVerdict(scope!, d), { action, rule }, `reference ${addr} ${proto} ${dport}`);
    assert.deepEqual(compiledVerdict(plan.scopes[0]!, d), { action, rule }, `compiled ${addr} ${proto} ${dport}`);
  }
  assert.deepEqual(destinationVerdict({ tenant: 'acme', execs: { log: false, alert: [] } }, netDestination('198.18.0.1', 6, 1)), { action: 'allow', rule: null });
});

test('compiled maps decide like the reference on random policies and destinations', () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const v4 = (): string => `198.${18 + rnd(2)}.${rnd(4)}.${rnd(256)}`;
  const v4cidr = (): string => {
    const len = [15, 16, 22, 24, 28, 32][rnd(6)]!;
    const a = Buffer.from(v4().split('.').map(Number));
    const n = (a.readUInt32BE(0) & (len === 0 ? 0 : (-1 << (32 - len)))) >>> 0;
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`;
  };
  const v6 = (): string => `2001:2:0:${rnd(4).toString(16)}::${rnd(65536).toString(16)}`;
  const v6cidr = (): string => [`2001:2::/48`, `2001:2:0:${rnd(4).toString(16)}::/64`, `${v6()}/128`][rnd(3)]!;
  for (let p = 0; p < 40; p++) {
    const rules = Array.from({ length: 1 + rnd(12) }, () => {
      const protocols = [[], [6], [17], [6, 17], [1], [132, 6]][rnd(6)]!;
      const portable = protocols.length === 0 || protocols.some((x) => x !== 1);
      const ports = portable && rnd(2) ? Array.from({ length: 1 + rnd(12) }, () => { const f = rnd(100); return { from: f, to: f + rnd(5) }; }) : [];
      return { action: rnd(2) ? 'allow' as const : 'deny' as const, cidrs: Array.from({ length: 1 + rnd(3) }, () => (rnd(4) ? v4cidr() : v6cidr())), protocols, ports };
    });
    const scope: IsolationScope = { tenant: 'acme', execs: { log: false, alert: [] }, destinations: { default: rnd(2) ? 'allow' : 'deny', rules } };
    const [compiled] = compileNetIsolation([scope], []).scopes;
    for (let i = 0; i < 300; i++) {
      const proto = [6, 17, 1, 132, 58][rnd(5)]!;
      const d = netDestination(rnd(4) ? v4() : v6(), proto, rnd(10) ? rnd(110) : undefined);
      assert.deepEqual(compiledVerdict(compiled!, d), destinationVerdict(scope, d), `policy ${p}: ${JSON.stringify(rules)} ${JSON.stringify({ ...d, addr: d.addr.toString('hex') })}`);
    }
  }
});

test('capacity: more scopes than a generation holds is an error; containers beyond the maps are unassigned', () => {
  const many = Array.from({ length: 64 }, () => ({ tenant: 'acme', execs: { log: false, alert: [] } }));
  assert.throws(() => compileNetIsolation(many, []), /^NetIsoCompileError: isolation: 64 scopes, at most 63$|isolation: 64 scopes, at most 63/);
  const s = scopes('  - tenant: acme\n    containers: "/acme/**"\n');
  const cs = Array.from({ length: 4100 }, (_, i) => container(`c${i}`, 'acme', `/acme/docker/c${i}`, BigInt(i + 1)));
  const plan = compileNetIsolation(s, cs);
  assert.equal(plan.groups.length, 4095);
  assert.deepEqual(plan.unassigned, ['c4095', 'c4096', 'c4097', 'c4098', 'c4099']);
});
