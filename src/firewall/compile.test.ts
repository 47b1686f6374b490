// Pure unit tests of the firewall compiler (compile.ts): slot assignment, the
// masks of every map of one generation, and a property test that a plain
// TypeScript model of the datapath's lookup over the compiled plan (see
// fw_filter / fw_sides in bpf/progs/meter.bpf.c) agrees with the reference
// evaluator (reference.ts). Inputs are parsed the production way.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TG_FW_ALLOW, TG_FW_DENY, TG_FW_DST, TG_FW_FROM, TG_FW_LOG, TG_FW_MASK_WORDS, TG_FW_MAX_RULES, TG_FW_MAX_SLOTS, TG_FW_ON,
  TG_FW_PORTS, TG_FW_PROTO, TG_FW_RATE_LIMIT, TG_FW_REDIRECT, TG_FW_SIDES, TG_FW_SRC, TG_FW_TENANT_KEYS, TG_FW_TO, TG_PORTS, TG_PROTOCOLS,
  TG_DIR_EGRESS, TG_DIR_INGRESS, TG_RL_MAX, TG_RL_MAX_STANDING, TG_RL_PER_DESTINATION, TG_RL_PER_RULE, TG_RL_PER_SOURCE, TG_RL_PER_TENANT,
  TG_FW_HASH_DST4, TG_FW_HASH_DST6, TG_FW_HASH_SRC4, TG_FW_HASH_SRC6, TG_FW_PFX_DST4, TG_FW_PFX_DST6, TG_FW_PFX_SRC4, TG_FW_PFX_SRC6,
  type TgFwMask, type TgLpmV4Key, type TgLpmV6Key, type TgRlCfg,
} from '../kernel/abi.gen.js';
import { formatCidr, parseAddress, parseCidr, parsePolicy, type MapEntry, type SecuritySection } from '../policy/index.js';
import {
  ACTION_CODES, assignSlots, compileFirewall, DEFAULT_SLOT, emptyFwGen, FirewallCompileError, fromMask, limitCfg, limitSlotName,
  MAX_BURST_BYTES, PORT_PROTOCOLS, slotNames, toMask, type FirewallPlan, type RateLimit,
} from './compile.js';
import { evaluateRules, type RulePacket, type RuleVerdict } from './reference.js';
import { FIXTURE_TENANTS_YAML, fixtureTenantOf, mulberry32, pick, randomAddr, randomCidr, randomDport, randomSecurity } from './firewall.fixture.js';

// ---- helpers ----------------------------------------------------------------

/** Deliberately not 1, 2, 3: ids must come from the map, not from positions. */
const IDS: ReadonlyMap<string, number> = new Map([['alpha', 11], ['beta', 22], ['gamma', 33]]);

/** A security section parsed from YAML rule lines (flow mappings), as a policy file would have it. */
function sec(rules: string[], extra = ''): SecuritySection {
  const body = rules.length ? `  rules:\n${rules.map((r) => `    - ${r}\n`).join('')}` : '  rules: []\n';
  const s = parsePolicy(`version: 1\n${FIXTURE_TENANTS_YAML}security:\n${extra ? `  ${extra}\n` : ''}${body}`, 'test.yaml').security;
  assert.ok(s, 'the policy has a security section');
  return s;
}

/** A security section with n rules named r0.. (JSON is YAML). */
function secN(n: number, rule: (i: number) => Record<string, unknown> = () => ({ action: 'deny' })): SecuritySection {
  const rules = Array.from({ length: n }, (_, i) => ({ name: `r${i}`, ...rule(i) }));
  return parsePolicy(JSON.stringify({ version: 1, security: { rules } }), 'n.json').security!;
}

function compile(security: SecuritySection, generation: 0 | 1 = 0, tenantIds: ReadonlyMap<string, number> = IDS): FirewallPlan {
  const { slots } = assignSlots(new Map(), slotNames(security));
  return compileFirewall(security, { generation, tenantIds, slots });
}

const HASH_FLAGS = TG_FW_HASH_SRC4 | TG_FW_HASH_SRC6 | TG_FW_HASH_DST4 | TG_FW_HASH_DST6;
const bit = (...rules: number[]): bigint => rules.reduce((acc, i) => acc | (1n << BigInt(i)), 0n);
const lowBits = (n: number): bigint => (1n << BigInt(n)) - 1n;
const bits = (m: TgFwMask): bigint => fromMask(m);

type LpmEntry = MapEntry<TgLpmV4Key | TgLpmV6Key, TgFwMask>;

/** The trie entries as "cidr -> bits", for exact comparisons. */
function trie(entries: readonly LpmEntry[], family: 4 | 6, generation: 0 | 1 = 0): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of entries) {
    assert.equal(e.key.generation, generation, 'the generation is in every trie key');
    assert.ok(e.key.prefixlen >= 8, 'prefixlen counts the generation byte');
    assert.equal(e.key.addr_be.length, family === 4 ? 4 : 16);
    assert.deepEqual([...e.key.pad], [0, 0, 0]);
    const text = formatCidr({ family, addr: e.key.addr_be, prefix: e.key.prefixlen - 8 });
    assert.ok(!out.has(text), `one entry per prefix (${text} twice)`);
    out.set(text, bits(e.value));
  }
  return out;
}

/** The rule list of a mask, for readable failures. */
const ruleList = (b: bigint): number[] => {
  const out: number[] = [];
  for (let i = 0; b >> BigInt(i); i++) if ((b >> BigInt(i)) & 1n) out.push(i);
  return out;
};

function assertBits(got: bigint, want: bigint, what: string): void {
  assert.deepEqual(ruleList(got), ruleList(want), what);
}

// ---- masks --------------------------------------------------------------------

describe('toMask / fromMask', () => {
  test('bit i of the mask is bit i % 64 of word i / 64', () => {
    const m = toMask(bit(0, 63, 64, 130, 255));
    assert.equal(m.w.length, TG_FW_MASK_WORDS);
    assert.deepEqual(m.w, [1n | (1n << 63n), 1n, 1n << 2n, 1n << 63n]);
    assert.equal(fromMask(m), bit(0, 63, 64, 130, 255));
    assert.deepEqual(toMask(0n).w, [0n, 0n, 0n, 0n]);
    assert.equal(fromMask(toMask(lowBits(TG_FW_MAX_RULES))), lowBits(TG_FW_MAX_RULES));
  });
});

// ---- assignSlots ----------------------------------------------------------------

describe('assignSlots', () => {
  test('new names get the lowest free slots from 1 on, all reported fresh', () => {
    const { slots, fresh } = assignSlots(new Map(), ['a', 'b', 'c']);
    assert.deepEqual([...slots], [['a', 1], ['b', 2], ['c', 3]]);
    assert.deepEqual(fresh, [1, 2, 3]);
    assert.ok(![...slots.values()].includes(DEFAULT_SLOT), 'slot 0 is the default action\'s');
  });

  test('keeps every slot by name across calls, whatever the order', () => {
    const first = assignSlots(new Map(), ['a', 'b', 'c']).slots;
    const { slots, fresh } = assignSlots(first, ['c', 'a', 'b']);
    assert.deepEqual(Object.fromEntries(slots), { a: 1, b: 2, c: 3 });
    assert.deepEqual(fresh, []);
  });

  test('a removed rule frees its slot; the next new name takes it and it is fresh', () => {
    const first = assignSlots(new Map(), ['a', 'b', 'c']).slots;
    const second = assignSlots(first, ['a', 'c']);
    assert.deepEqual(Object.fromEntries(second.slots), { a: 1, c: 3 });
    assert.deepEqual(second.fresh, []);
    const third = assignSlots(second.slots, ['d', 'a', 'c', 'e']);
    assert.deepEqual(Object.fromEntries(third.slots), { a: 1, c: 3, d: 2, e: 4 });
    assert.deepEqual(third.fresh, [2, 4], 'the writer zeroes these counters');
  });

  test('new names fill holes below kept slots first', () => {
    const { slots, fresh } = assignSlots(new Map([['k', 3], ['m', 5]]), ['x', 'k', 'y', 'm', 'z', 'w']);
    assert.deepEqual(Object.fromEntries(slots), { k: 3, m: 5, x: 1, y: 2, z: 4, w: 6 });
    assert.deepEqual(fresh, [1, 2, 4, 6]);
  });

  test('previous slots that are out of range or taken twice are not kept', () => {
    const previous = new Map([['zero', DEFAULT_SLOT], ['big', TG_FW_MAX_SLOTS], ['neg', -1], ['p', 7], ['q', 7]]);
    const { slots, fresh } = assignSlots(previous, ['zero', 'big', 'neg', 'p', 'q']);
    assert.deepEqual(Object.fromEntries(slots), { p: 7, zero: 1, big: 2, neg: 3, q: 4 });
    assert.deepEqual(fresh, [1, 2, 3, 4]);
  });

  test('does not modify the previous map', () => {
    const previous = new Map([['a', 1]]);
    assignSlots(previous, ['b']);
    assert.deepEqual([...previous], [['a', 1]]);
  });

  test(`at most TG_FW_MAX_SLOTS - 1 (${TG_FW_MAX_SLOTS - 1}) names`, () => {
    const names = (n: number, p = 'r') => Array.from({ length: n }, (_, i) => `${p}${i}`);
    const full = assignSlots(new Map(), names(TG_FW_MAX_SLOTS - 1));
    assert.deepEqual(new Set(full.slots.values()), new Set(Array.from({ length: TG_FW_MAX_SLOTS - 1 }, (_, i) => i + 1)));
    // All names replaced at once: every slot is free again.
    const replaced = assignSlots(full.slots, names(TG_FW_MAX_SLOTS - 1, 's'));
    assert.equal(replaced.fresh.length, TG_FW_MAX_SLOTS - 1);
    assert.throws(() => assignSlots(new Map(), names(TG_FW_MAX_SLOTS)), (err: unknown) => {
      assert.ok(err instanceof FirewallCompileError);
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0]!, new RegExp(`more than ${TG_FW_MAX_SLOTS - 1} rules`));
      return true;
    });
  });
});

// ---- compileFirewall ------------------------------------------------------------

describe('compileFirewall', () => {
  test('rule i is bit i: active holds exactly the n low bits', () => {
    for (const n of [0, 1, 3, 63, 64, 65, 200, TG_FW_MAX_RULES]) {
      const plan = compile(secN(n));
      assert.equal(bits(plan.gen.active), lowBits(n), `${n} rules`);
      assert.equal(bits(plan.gen.any_port), lowBits(n), 'no rule has ports');
      assert.equal(bits(plan.gen.any_side), 0n, 'every rule defaults to ingress');
      assert.equal(bits(plan.gen.to_tenant), lowBits(n));
      assert.deepEqual(plan.ruleSlots.map((r) => r.name), Array.from({ length: n }, (_, i) => `r${i}`));
    }
  });

  test('an empty rule list filters with the default action only', () => {
    const plan = compile(sec([], 'defaultAction: deny'));
    assert.equal(plan.gen.flags, TG_FW_ON);
    assert.equal(plan.gen.default_action, TG_FW_DENY);
    for (const m of [plan.gen.active, plan.gen.any_port, plan.gen.any_side, plan.gen.to_tenant, plan.gen.from_tenant]) assert.equal(bits(m), 0n);
    assert.equal(plan.tenants.length, 0);
    assert.deepEqual([...trie(plan.src.v4, 4)], [['0.0.0.0/0', 0n]]);
    assert.deepEqual([...trie(plan.dst.v6, 6)], [['::/0', 0n]]);
    assert.ok(plan.rules.every((r) => r.value.slot === 0 && r.value.action === 0));
  });

  test('emptyFwGen filters nothing', () => {
    const g = emptyFwGen();
    assert.equal(g.flags, 0);
    assert.equal(g.default_action, TG_FW_ALLOW);
    assert.equal(bits(g.active), 0n);
  });

  test('ports: any_port holds the rules without ports; port p admits the rules whose ranges hold p, plus any_port', () => {
    const s = sec([
      '{ name: web, action: allow, protocols: [tcp], ports: [80, 443] }',
      '{ name: all, action: log }',
      '{ name: range, action: deny, ports: ["1000-1002", 443, 0] }',
      '{ name: top, action: deny, protocols: [udp], ports: ["65000-65535"] }',
      '{ name: icmp, action: deny, protocols: [icmp] }',
    ]);
    const plan = compile(s, 1);
    const anyPort = bit(1, 4);
    assertBits(bits(plan.gen.any_port), anyPort, 'any_port');
    // The port map may hold every port or only those in some range (the writer zeroes the others);
    // the datapath ANDs (entry | any_port), so that is what must hold the right rules.
    const entries = new Map<number, bigint>();
    for (const e of plan.ports) {
      assert.ok(e.key >= TG_PORTS && e.key < 2 * TG_PORTS, `key ${e.key}: index generation * TG_PORTS + port`);
      assert.ok(!entries.has(e.key - TG_PORTS), `port ${e.key - TG_PORTS} twice`);
      entries.set(e.key - TG_PORTS, bits(e.value));
    }
    assert.ok(plan.ports.length <= TG_PORTS);
    const at = (p: number) => (entries.get(p) ?? 0n) | bits(plan.gen.any_port);
    assertBits(at(80), anyPort | bit(0), 'port 80');
    assertBits(at(443), anyPort | bit(0, 2), 'port 443');
    assertBits(at(0), anyPort | bit(2), 'port 0');
    assertBits(at(999), anyPort, 'port 999');
    assertBits(at(1000), anyPort | bit(2), 'port 1000');
    assertBits(at(1002), anyPort | bit(2), 'port 1002');
    assertBits(at(1003), anyPort, 'port 1003');
    assertBits(at(64999), anyPort, 'port 64999');
    assertBits(at(65000), anyPort | bit(3), 'port 65000');
    assertBits(at(65535), anyPort | bit(3), 'port 65535');
    // Every port, against the rules themselves; an entry never holds a rule with ports outside its ranges.
    for (let p = 0; p < TG_PORTS; p++) {
      let ranged = 0n;
      s.rules.forEach((r, i) => {
        if (r.ports.some((x) => p >= x.from && p <= x.to)) ranged |= bit(i);
      });
      if (at(p) !== (anyPort | ranged)) assert.fail(`port ${p}: ${ruleList(at(p))}, want ${ruleList(anyPort | ranged)}`);
      const e = entries.get(p) ?? 0n;
      if ((e & ~anyPort) !== ranged) assert.fail(`port ${p}: entry holds ${ruleList(e)}, ranges ${ruleList(ranged)}`);
    }
  });

  test('protocols: a rule with protocols matches those; with ports only tcp/udp/sctp; otherwise all', () => {
    const s = sec([
      '{ name: icmp, action: deny, protocols: [icmp] }',
      '{ name: ssh, action: allow, ports: [22] }',
      '{ name: any, action: log }',
      '{ name: udp-gre, action: deny, protocols: [udp, 47] }',
      '{ name: mixed, action: deny, protocols: [icmp, tcp], ports: [80] }',
    ]);
    const plan = compile(s, 1);
    assert.equal(plan.protocols.length, TG_PROTOCOLS);
    for (let p = 0; p < TG_PROTOCOLS; p++) {
      assert.equal(plan.protocols[p]!.key, TG_PROTOCOLS + p, 'index generation * TG_PROTOCOLS + protocol');
      let want = bit(2);
      if (p === 1) want |= bit(0, 4);
      if (p === 6 || p === 17 || p === 132) want |= bit(1);
      if (p === 17 || p === 47) want |= bit(3);
      if (p === 6) want |= bit(4);
      assertBits(bits(plan.protocols[p]!.value), want, `protocol ${p}`);
    }
    assert.deepEqual([...PORT_PROTOCOLS].sort((a, b) => a - b), [6, 17, 132]);
  });

  test('prefix tries: a /0 per family, and each prefix carries every rule whose prefix contains it', () => {
    const s = sec([
      '{ name: r0, action: deny, src: [198.18.0.0/16] }',
      '{ name: r1, action: deny, src: [198.18.1.0/24] }',
      '{ name: r2, action: deny }',
      '{ name: r3, action: deny, src: ["2001:2::/48"] }',
      '{ name: r4, action: deny, src: ["2001:2:0:1::/64", 198.18.1.0/24, 198.18.1.128/25] }',
      '{ name: r5, action: deny, dst: [198.19.0.0/16, "2001:2:0:1:8000::/65"] }',
      '{ name: r6, action: deny, src: [198.18.1.7/32, 198.18.2.0/23] }',
    ]);
    const plan = compile(s);
    const noSrc = bit(2, 5);
    assert.deepEqual(Object.fromEntries(trie(plan.src.v4, 4)), {
      '0.0.0.0/0': noSrc,
      '198.18.0.0/16': noSrc | bit(0),
      '198.18.1.0/24': noSrc | bit(0, 1, 4),
      '198.18.1.128/25': noSrc | bit(0, 1, 4),
      '198.18.1.7/32': noSrc | bit(0, 1, 4, 6),
      '198.18.2.0/23': noSrc | bit(0, 6),
    });
    assert.deepEqual(Object.fromEntries(trie(plan.src.v6, 6)), {
      '::/0': noSrc,
      '2001:2::/48': noSrc | bit(3),
      '2001:2:0:1::/64': noSrc | bit(3, 4),
    });
    const noDst = bit(0, 1, 2, 3, 4, 6);
    assert.deepEqual(Object.fromEntries(trie(plan.dst.v4, 4)), { '0.0.0.0/0': noDst, '198.19.0.0/16': noDst | bit(5) });
    assert.deepEqual(Object.fromEntries(trie(plan.dst.v6, 6)), { '::/0': noDst, '2001:2:0:1:8000::/65': noDst | bit(5) });
  });

  test('prefix keys: prefixlen is 8 (the generation byte) plus the prefix length, the address in network order', () => {
    const plan = compile(sec(['{ name: r0, action: deny, src: [198.18.1.0/24, "2001:2:0:1::/64"] }']), 1);
    const v4 = plan.src.v4.find((e) => e.key.prefixlen === 8 + 24);
    assert.ok(v4);
    assert.deepEqual([...v4.key.addr_be], [198, 18, 1, 0]);
    assert.equal(v4.key.generation, 1);
    const zero4 = plan.src.v4.find((e) => e.key.prefixlen === 8);
    assert.ok(zero4, 'the /0 entry has prefixlen 8: it matches on the generation byte only');
    assert.deepEqual([...zero4.key.addr_be], [0, 0, 0, 0]);
    const v6 = plan.src.v6.find((e) => e.key.prefixlen === 8 + 64);
    assert.ok(v6);
    assert.ok(v6.key.addr_be.equals(parseAddress('2001:2:0:1::')!.addr));
    assert.ok(plan.src.v6.some((e) => e.key.prefixlen === 8 && e.key.addr_be.equals(Buffer.alloc(16))));
  });

  test('a rule naming /0 shares the one /0 entry of its family', () => {
    const plan = compile(sec([
      '{ name: r0, action: deny, src: [198.18.0.0/15] }',
      '{ name: r1, action: deny, src: [0.0.0.0/0] }',
      '{ name: r2, action: deny, src: ["::/0"] }',
    ]));
    assert.deepEqual(Object.fromEntries(trie(plan.src.v4, 4)), { '0.0.0.0/0': bit(1), '198.18.0.0/15': bit(0, 1) });
    assert.deepEqual(Object.fromEntries(trie(plan.src.v6, 6)), { '::/0': bit(2) });
  });

  test('an IPv4-mapped prefix is compiled into the IPv4 trie', () => {
    const plan = compile(sec(['{ name: r0, action: deny, dst: ["::ffff:198.18.0.0/112"] }']));
    assert.deepEqual(Object.fromEntries(trie(plan.dst.v4, 4)), { '0.0.0.0/0': 0n, '198.18.0.0/16': bit(0) });
    assert.deepEqual(Object.fromEntries(trie(plan.dst.v6, 6)), { '::/0': 0n });
  });

  test('tenant sides: to/from/any_side for rules without a tenant, tg_fw_tenant entries for named tenants', () => {
    const plan = compile(sec([
      '{ name: r0, action: deny, direction: ingress }',
      '{ name: r1, action: deny, direction: egress }',
      '{ name: r2, action: deny, direction: both }',
      '{ name: r3, action: deny, direction: ingress, tenant: alpha }',
      '{ name: r4, action: deny, direction: egress, tenant: alpha }',
      '{ name: r5, action: deny, direction: both, tenant: beta }',
      '{ name: r6, action: deny }',
    ]), 1);
    assertBits(bits(plan.gen.to_tenant), bit(0, 6), 'to_tenant: ingress without a tenant (the default direction)');
    assertBits(bits(plan.gen.from_tenant), bit(1), 'from_tenant: egress without a tenant');
    assertBits(bits(plan.gen.any_side), bit(2), 'any_side: both without a tenant');
    assert.equal(plan.gen.flags, TG_FW_ON | TG_FW_SIDES | TG_FW_TENANT_KEYS);
    const entries = plan.tenants.map((e) => {
      assert.equal(e.key.generation, 1);
      assert.deepEqual([...e.key.pad], [0, 0]);
      return [`${e.key.tenant_id}/${e.key.side === TG_FW_TO ? 'to' : e.key.side === TG_FW_FROM ? 'from' : e.key.side}`, ruleList(bits(e.value))];
    });
    assert.deepEqual(Object.fromEntries(entries), {
      '11/to': [0, 3, 6],
      '11/from': [1, 4],
      '22/to': [0, 5, 6],
      '22/from': [1, 5],
    }, 'named tenants only (gamma has none); each entry includes the tenant-less side mask');
    assert.equal(plan.tenants.length, 4);
  });

  test('flags: TG_FW_SIDES only when some rule depends on the sides, TG_FW_TENANT_KEYS only when a rule names a tenant', () => {
    const flags = (rules: string[]) => compile(sec(rules)).gen.flags & (TG_FW_ON | TG_FW_SIDES | TG_FW_TENANT_KEYS);
    assert.equal(flags(['{ name: a, action: deny, direction: both }', '{ name: b, action: deny, direction: both, src: [198.18.0.0/16] }']), TG_FW_ON);
    assert.equal(flags(['{ name: a, action: deny, direction: both }', '{ name: b, action: deny }']), TG_FW_ON | TG_FW_SIDES);
    assert.equal(flags(['{ name: a, action: deny, direction: egress }']), TG_FW_ON | TG_FW_SIDES);
    assert.equal(flags(['{ name: a, action: deny, direction: both, tenant: gamma }']), TG_FW_ON | TG_FW_SIDES | TG_FW_TENANT_KEYS);
  });

  test('flags: TG_FW_SRC / TG_FW_DST / TG_FW_PROTO / TG_FW_PORTS only when some rule has that condition', () => {
    const flags = (rules: string[]) => compile(sec(rules)).gen.flags & ~HASH_FLAGS; // the hashed tables: their own test
    assert.equal(flags(['{ name: a, action: deny, direction: both, protocols: [tcp], ports: [22] }']), TG_FW_ON | TG_FW_PROTO | TG_FW_PORTS);
    assert.equal(flags(['{ name: a, action: deny, direction: both, protocols: [icmp] }']), TG_FW_ON | TG_FW_PROTO);
    assert.equal(flags(['{ name: a, action: deny, direction: both, ports: [53] }']), TG_FW_ON | TG_FW_PROTO | TG_FW_PORTS, 'ports alone imply their protocols');
    assert.equal(flags(['{ name: a, action: deny, direction: both, src: [198.18.0.0/16] }', '{ name: b, action: deny, direction: both }']), TG_FW_ON | TG_FW_SRC);
    assert.equal(flags(['{ name: a, action: deny, direction: both, dst: ["2001:2::/48"] }']), TG_FW_ON | TG_FW_DST);
    assert.equal(flags(['{ name: a, action: deny, direction: both, src: [0.0.0.0/0], dst: [198.18.1.0/24] }']), TG_FW_ON | TG_FW_SRC | TG_FW_DST);
  });

  test('prefix tables with at most TG_FW_PFX_LENS lengths are hashed, longest first; their entries are the trie\'s', () => {
    const plan = compile(sec([
      '{ name: a, action: deny, direction: both, src: [198.18.1.0/24, 198.18.2.0/24, 198.18.0.0/16, 198.19.0.0/16, 198.18.1.128/25] }',
      '{ name: b, action: allow, direction: both, src: [198.18.1.7/32, "2001:2::/48", "2001:2:0:1::/64"], dst: [198.18.0.0/15] }',
      '{ name: c, action: log, direction: both, src: [198.18.1.0/24], dst: [198.18.1.0/24, 198.18.1.0/25, 198.18.1.0/26, 198.18.1.0/27, 198.18.1.0/28] }',
    ]));
    const g = plan.gen;
    // Every rule has a source, so neither source /0 holds a rule: src v4 has 4 lengths (32, 25, 24, 16), src v6 two.
    // Rule a has no destination: dst v4 has 7 lengths with its /0 (a trie), dst v6 just the /0.
    assert.equal(g.flags & HASH_FLAGS, TG_FW_HASH_SRC4 | TG_FW_HASH_SRC6 | TG_FW_HASH_DST6);
    assert.deepEqual([...g.pfx_n], [4, 2, 0, 1]);
    assert.deepEqual([...g.pfx_lens.subarray(0, 4)], [32, 25, 24, 16]);
    assert.deepEqual([...g.pfx_lens.subarray(4, 6)], [64, 48]);
    const hashed = (table: number) => {
      const entries = table % 2 === 0 ? plan.hashed.v4 : plan.hashed.v6;
      return new Map(entries.filter((e) => e.key.table === table).map((e) => {
        assert.equal(e.key.generation, 0);
        assert.equal(e.key.pad, 0);
        return [formatCidr({ family: table % 2 === 0 ? 4 : 6, addr: e.key.addr_be, prefix: e.key.prefixlen }), bits(e.value)];
      }));
    };
    const withoutEmptyZero = (m: Map<string, bigint>) => new Map([...m].filter(([k, v]) => !(k.endsWith('/0') && v === 0n)));
    assert.deepEqual(hashed(TG_FW_PFX_SRC4), withoutEmptyZero(trie(plan.src.v4, 4)));
    assert.deepEqual(hashed(TG_FW_PFX_SRC6), withoutEmptyZero(trie(plan.src.v6, 6)));
    assert.equal(hashed(TG_FW_PFX_SRC4).get('198.18.1.128/25'), bit(0, 2), 'a longer prefix carries the rules of those containing it');
    assert.equal(hashed(TG_FW_PFX_DST4).size, 0);
    assert.deepEqual(hashed(TG_FW_PFX_DST6), new Map([['::/0', bit(0)]]));

    // A /0 that holds a rule (one with no condition on the side) is an entry and a length.
    const zero = compile(sec(['{ name: a, action: deny, direction: both, src: [198.18.1.0/24] }', '{ name: b, action: allow, direction: both }']));
    assert.deepEqual([...zero.gen.pfx_n], [2, 1, 0, 0], 'rule b holds for any IPv6 source: the v6 table is its /0');
    assert.deepEqual([...zero.gen.pfx_lens.subarray(0, 2)], [24, 0]);
    assert.ok(zero.hashed.v4.some((e) => e.key.prefixlen === 0 && bits(e.value) === bit(1)));
    // A side no rule has a prefix on is not consulted, so not hashed.
    assert.equal(compile(sec(['{ name: a, action: deny, direction: both, protocols: [tcp] }'])).gen.flags & HASH_FLAGS, 0);
  });

  test('the generation is in every key', () => {
    const s = sec([
      '{ name: r0, action: deny, direction: both, tenant: alpha, src: [198.18.1.0/24], dst: ["2001:2::/48"], protocols: [tcp], ports: [22] }',
      '{ name: r1, action: allow }',
    ]);
    for (const g of [0, 1] as const) {
      const plan = compile(s, g);
      assert.equal(plan.generation, g);
      for (const e of [...plan.src.v4, ...plan.src.v6, ...plan.dst.v4, ...plan.dst.v6, ...plan.hashed.v4, ...plan.hashed.v6]) assert.equal(e.key.generation, g);
      for (const e of plan.tenants) assert.equal(e.key.generation, g);
      assert.deepEqual(plan.protocols.map((e) => e.key), Array.from({ length: TG_PROTOCOLS }, (_, p) => g * TG_PROTOCOLS + p));
      assert.ok(plan.ports.length > 0);
      for (const e of plan.ports) assert.ok(e.key >= g * TG_PORTS && e.key < (g + 1) * TG_PORTS, `port key ${e.key}`);
      assert.ok(plan.ports.some((e) => e.key === g * TG_PORTS + 22));
      assert.deepEqual(plan.rules.map((e) => e.key), Array.from({ length: TG_FW_MAX_RULES }, (_, b) => g * TG_FW_MAX_RULES + b));
    }
  });

  test('rule entries: one per bit, with the rule\'s slot and action code; unused bits zero', () => {
    const s = sec([
      '{ name: a, action: allow }',
      '{ name: d, action: deny }',
      '{ name: l, action: log }',
      '{ name: rl, action: rate-limit, rateLimit: { pps: 100 } }',
      '{ name: rd, action: redirect, redirectTo: tg-hp0, redirectVia: 198.19.2.2 }',
    ], 'defaultAction: log');
    const slots = new Map([['a', 9], ['d', 3], ['l', 1], ['rl', 1000], ['rd', 2]]);
    const plan = compileFirewall(s, { generation: 0, tenantIds: IDS, slots, ifindexOf: (n) => (n === 'tg-hp0' ? 7 : undefined) });
    assert.equal(plan.rules.length, TG_FW_MAX_RULES);
    assert.deepEqual(plan.rules.slice(0, 6).map((e) => [e.value.slot, e.value.action, e.value.limit, e.value.honeypot]), [
      [9, TG_FW_ALLOW, 0, 0], [3, TG_FW_DENY, 0, 0], [1, TG_FW_LOG, 0, 0], [1000, TG_FW_RATE_LIMIT, 1, 0], [2, TG_FW_REDIRECT, 0, 1], [0, 0, 0, 0],
    ]);
    assert.deepEqual(plan.honeypots[0]!.value, { ifindex: 7, family: 2, via_be: Buffer.from([198, 19, 2, 2, ...new Array(12).fill(0)]) });
    assert.ok(plan.honeypots.slice(1).every((e) => e.value.ifindex === 0));
    assert.throws(() => compileFirewall(s, { generation: 0, tenantIds: IDS, slots }), /security\.rules\[4\]\.redirectTo: no interface "tg-hp0" here/);
    assert.deepEqual(ACTION_CODES, { allow: TG_FW_ALLOW, deny: TG_FW_DENY, log: TG_FW_LOG, 'rate-limit': TG_FW_RATE_LIMIT, redirect: TG_FW_REDIRECT });
    assert.ok(plan.rules.slice(5).every((e) => e.value.slot === 0 && e.value.action === 0 && e.value.limit === 0 && e.value.honeypot === 0 && e.value.pad === 0));
    assert.equal(plan.gen.default_action, TG_FW_LOG);
    assert.deepEqual(plan.ruleSlots, [
      { name: 'a', action: 'allow', slot: 9 }, { name: 'd', action: 'deny', slot: 3 }, { name: 'l', action: 'log', slot: 1 },
      { name: 'rl', action: 'rate-limit', slot: 1000 }, { name: 'rd', action: 'redirect', slot: 2 },
    ]);
  });

  test('errors: a tenant without an id and a rule without a slot, all reported at once', () => {
    const s = sec([
      '{ name: ok, action: deny, tenant: alpha }',
      '{ name: lost, action: deny, tenant: beta }',
      '{ name: unslotted, action: deny }',
    ]);
    const err = (() => {
      try {
        compileFirewall(s, { generation: 0, tenantIds: new Map([['alpha', 11]]), slots: new Map([['ok', 1], ['lost', 2]]) });
      } catch (e) {
        return e;
      }
      assert.fail('compiled');
    })();
    assert.ok(err instanceof FirewallCompileError);
    assert.deepEqual(err.problems, [
      'security.rules[1].tenant: no tenant "beta"',
      'security.rules[2]: no hit-counter slot for rule "unslotted"',
    ]);
    assert.match(err.message, /2 problems/);
    assert.equal(err.name, 'FirewallCompileError');
  });

  test(`errors: more than TG_FW_MAX_RULES (${TG_FW_MAX_RULES}) rules`, () => {
    // The schema stops a policy at 256 rules; the compiler checks on its own.
    const one = secN(1).rules[0]!;
    const rules = Array.from({ length: TG_FW_MAX_RULES + 1 }, (_, i) => ({ ...one, name: `r${i}` }));
    const { slots } = assignSlots(new Map(), rules.map((r) => r.name));
    assert.throws(() => compileFirewall({ ...secN(0), rules }, { generation: 0, tenantIds: IDS, slots }), (e: unknown) => {
      assert.ok(e instanceof FirewallCompileError);
      assert.match(e.problems[0]!, /257 rules, at most 256/);
      return true;
    });
  });
});

// ---- rate limits ----------------------------------------------------------------

/** A tg_rl_cfg with every field given (unset ones zero), for exact comparisons. */
function rl(v: Partial<TgRlCfg>): TgRlCfg {
  return {
    pps: 0n, pkt_cap: 0n, pkt_fill_ns: 0n, bytes_ps: 0n, byte_cap: 0n, byte_fill_ns: 0n,
    slot: 0, tenant_id: 0, per: TG_RL_PER_SOURCE, dirs: 0, pad: Buffer.alloc(6), ...v,
  };
}

const E9 = 1_000_000_000n;
const INGRESS = 1 << TG_DIR_INGRESS;
const EGRESS = 1 << TG_DIR_EGRESS;

/** The problems compileFirewall reports (fails the test if it compiled). */
function compileProblems(security: SecuritySection, ctx: Partial<Parameters<typeof compileFirewall>[1]> = {}): readonly string[] {
  const slots = ctx.slots ?? assignSlots(new Map(), slotNames(security)).slots;
  try {
    compileFirewall(security, { generation: 0, tenantIds: IDS, slots, ...ctx });
  } catch (e) {
    assert.ok(e instanceof FirewallCompileError, `expected FirewallCompileError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('compiled');
}

describe('rate limits', () => {
  test('the ABI constants the compiler relies on', () => {
    assert.deepEqual([TG_RL_MAX, TG_RL_MAX_STANDING], [64, 16]);
    assert.deepEqual([TG_RL_PER_SOURCE, TG_RL_PER_DESTINATION, TG_RL_PER_RULE, TG_RL_PER_TENANT], [0, 1, 2, 3]);
    assert.deepEqual([INGRESS, EGRESS], [1, 2]);
    assert.equal(MAX_BURST_BYTES, 1_000_000_000);
  });

  test('limitCfg, pps only: burst defaults to pps; caps in billionths; fill = ceil(cap / pps)', () => {
    assert.deepEqual(limitCfg({ pps: 100, per: 'source' }, 7), rl({ pps: 100n, pkt_cap: 100n * E9, pkt_fill_ns: 1_000_000_000n, slot: 7 }));
    assert.deepEqual(limitCfg({ pps: 100, burst: 250, per: 'destination' }, 8),
      rl({ pps: 100n, pkt_cap: 250n * E9, pkt_fill_ns: 2_500_000_000n, slot: 8, per: TG_RL_PER_DESTINATION }));
    assert.deepEqual(limitCfg({ pps: 3, burst: 1, per: 'tenant' }, 9),
      rl({ pps: 3n, pkt_cap: E9, pkt_fill_ns: 333_333_334n, slot: 9, per: TG_RL_PER_TENANT }), 'rounded up');
    assert.deepEqual(limitCfg({ pps: 1_000_000_000, burst: 1_000_000_000, per: 'rule' }, 1),
      rl({ pps: 1_000_000_000n, pkt_cap: E9 * E9, pkt_fill_ns: 1_000_000_000n, slot: 1, per: TG_RL_PER_RULE }), 'the largest packet bucket');
  });

  test('limitCfg, bps only: bytes_ps = floor(bps / 8); burstBytes defaults to one second of bytes', () => {
    assert.deepEqual(limitCfg({ bps: 10_000_000, per: 'source' }, 2),
      rl({ bytes_ps: 1_250_000n, byte_cap: 1_250_000n * E9, byte_fill_ns: 1_000_000_000n, slot: 2 }));
    assert.deepEqual(limitCfg({ bps: 10_000_000, burstBytes: 1500, per: 'rule' }, 3),
      rl({ bytes_ps: 1_250_000n, byte_cap: 1500n * E9, byte_fill_ns: 1_200_000n, slot: 3, per: TG_RL_PER_RULE }));
    assert.deepEqual(limitCfg({ bps: 12_345, per: 'source' }, 4),
      rl({ bytes_ps: 1543n, byte_cap: 1543n * E9, byte_fill_ns: 1_000_000_000n, slot: 4 }), '12345 / 8 rounded down');
    assert.deepEqual(limitCfg({ bps: 12_345, burstBytes: 64_000, per: 'source' }, 4),
      rl({ bytes_ps: 1543n, byte_cap: 64_000n * E9, byte_fill_ns: 41_477_640_960n, slot: 4 }), 'fill rounded up');
    assert.deepEqual(limitCfg({ bps: 15, per: 'source' }, 5), rl({ bytes_ps: 1n, byte_cap: 1500n * E9, byte_fill_ns: 1500n * E9, slot: 5 }),
      'the smallest rate, 1 byte/s: the default burst still holds a full-size packet (1500 bytes)');
  });

  test('limitCfg, both: the two buckets are independent', () => {
    assert.deepEqual(limitCfg({ pps: 100, burst: 200, bps: 1_000_000_000, burstBytes: 64_000, per: 'rule' }, 40), rl({
      pps: 100n, pkt_cap: 200n * E9, pkt_fill_ns: 2_000_000_000n,
      bytes_ps: 125_000_000n, byte_cap: 64_000n * E9, byte_fill_ns: 512_000n,
      slot: 40, per: TG_RL_PER_RULE,
    }));
  });

  test('limitCfg: the default byte burst is at most 1GB, so caps fit a u64', () => {
    assert.deepEqual(limitCfg({ bps: 8e9, per: 'source' }, 1), rl({ bytes_ps: E9, byte_cap: E9 * E9, byte_fill_ns: E9, slot: 1 }), '8gbit: exactly 1GB a second');
    assert.deepEqual(limitCfg({ bps: 9e9, per: 'source' }, 1), rl({ bytes_ps: 1_125_000_000n, byte_cap: E9 * E9, byte_fill_ns: 888_888_889n, slot: 1 }));
    assert.deepEqual(limitCfg({ bps: 8e12, per: 'source' }, 1), rl({ bytes_ps: 1_000_000_000_000n, byte_cap: E9 * E9, byte_fill_ns: 1_000_000n, slot: 1 }), '8tbit');
    assert.deepEqual(limitCfg({ bps: 8e12, burstBytes: 64, per: 'source' }, 1),
      rl({ bytes_ps: 1_000_000_000_000n, byte_cap: 64n * E9, byte_fill_ns: 1n, slot: 1 }), 'an explicit burst is kept; 0.064 ns rounds up to 1');
    for (const c of [limitCfg({ pps: 1e9, burst: 1e9, bps: 8e12, burstBytes: 1e9, per: 'rule' }, 1)]) {
      for (const v of [c.pkt_cap, c.byte_cap, c.pkt_fill_ns * c.pps, c.byte_fill_ns * c.bytes_ps]) assert.ok(v < 1n << 64n);
    }
  });

  test('limitCfg: the scope gives a standing limit its tenant and directions; a parsed limit compiles the same', () => {
    assert.deepEqual(limitCfg({ pps: 5, per: 'tenant' }, 12, { tenantId: 22, dirs: EGRESS }),
      rl({ pps: 5n, pkt_cap: 5n * E9, pkt_fill_ns: E9, slot: 12, tenant_id: 22, per: TG_RL_PER_TENANT, dirs: EGRESS }));
    const parsed: RateLimit = sec(['{ name: r, action: rate-limit, rateLimit: { pps: 100, burst: 200, bps: 1gbit, burstBytes: 64KB, per: rule } }']).rules[0]!.rateLimit!;
    assert.deepEqual(limitCfg(parsed, 40), limitCfg({ pps: 100, burst: 200, bps: 1_000_000_000, burstBytes: 64_000, per: 'rule' }, 40));
  });

  test('slotNames: the rules in order, then limit:<name> for each standing limit', () => {
    const s = sec(['{ name: b, action: deny }', '{ name: a, action: rate-limit, rateLimit: { pps: 1 } }'],
      'rateLimits: [{ name: z, pps: 1 }, { name: b, bps: 1mbit }]');
    assert.deepEqual(slotNames(s), ['b', 'a', 'limit:z', 'limit:b']);
    assert.equal(limitSlotName('acme-in'), 'limit:acme-in');
    assert.deepEqual(slotNames(sec([])), []);
    const { slots } = assignSlots(new Map(), slotNames(s));
    assert.deepEqual(Object.fromEntries(slots), { b: 1, a: 2, 'limit:z': 3, 'limit:b': 4 }, 'a rule and a limit may share a name: their slots differ');
  });

  // Two standing limits and two rate-limit rules among other rules.
  const mixed = () => sec([
    '{ name: a, action: allow }',
    '{ name: rl-a, action: rate-limit, rateLimit: { pps: 10 } }',
    '{ name: d, action: deny }',
    '{ name: l, action: log }',
    '{ name: rl-b, action: rate-limit, direction: egress, rateLimit: { bps: 8mbit, burstBytes: 1500, per: destination } }',
    '{ name: z, action: allow }',
  ], `rateLimits:
    - { name: s1, tenant: beta, direction: egress, pps: 1000, per: tenant }
    - { name: s2, direction: both, bps: 1gbit, per: rule }`);
  const mixedSlots = new Map([['a', 9], ['rl-a', 3], ['d', 1], ['l', 2], ['rl-b', 40], ['z', 5], ['limit:s1', 17], ['limit:s2', 6]]);

  test('the plan: standing limits first, then the rules\' limits in rule order; rules point at theirs (1 + index)', () => {
    const plan = compileFirewall(mixed(), { generation: 1, tenantIds: IDS, slots: mixedSlots });
    assert.equal(plan.limits.length, TG_RL_MAX);
    assert.deepEqual(plan.limits.map((e) => e.key), Array.from({ length: TG_RL_MAX }, (_, i) => TG_RL_MAX + i), 'index generation * TG_RL_MAX + i');
    assert.deepEqual(plan.limits.slice(0, 4).map((e) => e.value), [
      rl({ pps: 1000n, pkt_cap: 1000n * E9, pkt_fill_ns: E9, slot: 17, tenant_id: 22, per: TG_RL_PER_TENANT, dirs: EGRESS }),
      rl({ bytes_ps: 125_000_000n, byte_cap: 125_000_000n * E9, byte_fill_ns: E9, slot: 6, per: TG_RL_PER_RULE, dirs: INGRESS | EGRESS }),
      rl({ pps: 10n, pkt_cap: 10n * E9, pkt_fill_ns: E9, slot: 3 }),
      rl({ bytes_ps: 1_000_000n, byte_cap: 1500n * E9, byte_fill_ns: 1_500_000n, slot: 40, per: TG_RL_PER_DESTINATION }),
    ]);
    assert.deepEqual(plan.rules.slice(0, 7).map((e) => [e.value.slot, e.value.action, e.value.limit]), [
      [9, TG_FW_ALLOW, 0], [3, TG_FW_RATE_LIMIT, 3], [1, TG_FW_DENY, 0], [2, TG_FW_LOG, 0], [40, TG_FW_RATE_LIMIT, 4], [5, TG_FW_ALLOW, 0], [0, 0, 0],
    ]);
    assert.ok(plan.rules.slice(6).every((e) => e.value.limit === 0), 'unused bits point at no limit');
    assert.equal(plan.gen.standing, 2);
    assert.deepEqual(plan.limitSlots, [{ name: 's1', slot: 17 }, { name: 's2', slot: 6 }]);
    assert.deepEqual(plan.ruleSlots.map((r) => r.slot), [9, 3, 1, 2, 40, 5], 'standing limits are not rules');
  });

  test('unused limit entries are zero', () => {
    for (const plan of [compileFirewall(mixed(), { generation: 0, tenantIds: IDS, slots: mixedSlots }), compile(sec([]))]) {
      const used = plan.gen.standing + plan.rules.filter((e) => e.value.limit !== 0).length;
      assert.equal(plan.limits.length, TG_RL_MAX);
      plan.limits.slice(used).forEach((e, i) => assert.deepEqual(e.value, rl({}), `limit ${used + i}`));
    }
    const empty = compile(sec(['{ name: a, action: allow }']));
    assert.equal(empty.gen.standing, 0);
    assert.deepEqual(empty.limitSlots, []);
    assert.deepEqual(emptyFwGen().standing, 0);
  });

  test('standing limits: the tenant\'s id (0: any tenant) and the directions as a bitmask', () => {
    const s = sec([], `rateLimits:
    - { name: in, tenant: alpha, direction: ingress, pps: 1 }
    - { name: out, direction: egress, pps: 1 }
    - { name: both, tenant: gamma, direction: both, pps: 1 }
    - { name: dflt, pps: 1 }`);
    const plan = compile(s);
    assert.deepEqual(plan.limits.slice(0, 5).map((e) => [e.value.slot, e.value.tenant_id, e.value.dirs]), [
      [1, 11, INGRESS], [2, 0, EGRESS], [3, 33, INGRESS | EGRESS], [4, 0, INGRESS], [0, 0, 0],
    ]);
    assert.deepEqual(plan.limitSlots, [{ name: 'in', slot: 1 }, { name: 'out', slot: 2 }, { name: 'both', slot: 3 }, { name: 'dflt', slot: 4 }]);
    assert.equal(plan.gen.standing, 4);
    assert.ok(plan.rules.every((e) => e.value.limit === 0));
  });

  test('a rule\'s limit has no tenant or directions: the rule decides where it applies', () => {
    const plan = compile(sec(['{ name: r, action: rate-limit, direction: both, tenant: alpha, rateLimit: { pps: 1, per: tenant } }']));
    assert.deepEqual(plan.limits[0]!.value, rl({ pps: 1n, pkt_cap: E9, pkt_fill_ns: E9, slot: 1, per: TG_RL_PER_TENANT }));
    assert.equal(plan.rules[0]!.value.limit, 1);
    assert.equal(plan.gen.standing, 0);
  });

  test('errors: a standing limit\'s unknown tenant and missing counter slot, with the rules\' problems', () => {
    const s = sec(['{ name: r, action: rate-limit, tenant: beta, rateLimit: { pps: 1 } }'], `rateLimits:
    - { name: g, tenant: gamma, pps: 1 }
    - { name: x, pps: 1 }`);
    // "x" has a slot under the rule namespace only: a standing limit's is limit:x.
    const slots = new Map([['r', 1], ['limit:g', 2], ['x', 3]]);
    assert.deepEqual(compileProblems(s, { tenantIds: new Map([['alpha', 11]]), slots }), [
      'security.rules[0].tenant: no tenant "beta"',
      'security.rateLimits[0].tenant: no tenant "gamma"',
      'security.rateLimits[1]: no counter slot for limit "x"',
    ]);
    assert.throws(() => compileFirewall(s, { generation: 0, tenantIds: new Map([['alpha', 11]]), slots }), /3 problems/);
  });

  test(`errors: more than TG_RL_MAX (${TG_RL_MAX}) limits together, or more than ${TG_RL_MAX_STANDING} standing ones`, () => {
    const policy = (rules: number, standing: number) => parsePolicy(JSON.stringify({
      version: 1,
      security: {
        rules: Array.from({ length: rules }, (_, i) => ({ name: `r${i}`, action: 'rate-limit', rateLimit: { pps: i + 1 } })),
        rateLimits: Array.from({ length: standing }, (_, i) => ({ name: `s${i}`, pps: 1000 + i })),
      },
    }), 'n.json').security!;
    const full = compile(policy(TG_RL_MAX - TG_RL_MAX_STANDING, TG_RL_MAX_STANDING));
    assert.equal(full.gen.standing, TG_RL_MAX_STANDING);
    assert.equal(full.rules[TG_RL_MAX - TG_RL_MAX_STANDING - 1]!.value.limit, TG_RL_MAX, 'the last rule takes the last entry');
    assert.equal(full.limits[TG_RL_MAX - 1]!.value.pps, BigInt(TG_RL_MAX - TG_RL_MAX_STANDING));
    assert.equal(full.limits[TG_RL_MAX_STANDING - 1]!.value.pps, BigInt(1000 + TG_RL_MAX_STANDING - 1));
    assert.ok(full.limits.every((e) => e.value.slot !== 0), 'every entry used');
    assert.equal(compile(policy(TG_RL_MAX, 0)).rules[TG_RL_MAX - 1]!.value.limit, TG_RL_MAX, 'rules alone may use every entry');

    assert.deepEqual(compileProblems(policy(TG_RL_MAX - TG_RL_MAX_STANDING + 1, TG_RL_MAX_STANDING)), [
      `security.rules: ${TG_RL_MAX - TG_RL_MAX_STANDING + 1} rate-limit rules and ${TG_RL_MAX_STANDING} standing limits, at most ${TG_RL_MAX} together`,
    ]);
    assert.deepEqual(compileProblems(policy(TG_RL_MAX + 1, 0)), [`security.rules: ${TG_RL_MAX + 1} rate-limit rules and 0 standing limits, at most ${TG_RL_MAX} together`]);
    // The schema stops a policy at 16 standing limits; the compiler checks on its own.
    const base = policy(0, TG_RL_MAX_STANDING);
    const over = { ...base, rateLimits: [...base.rateLimits, { ...base.rateLimits[0]!, name: 'extra' }] };
    assert.deepEqual(compileProblems(over), [`security.rateLimits: ${TG_RL_MAX_STANDING + 1} limits, at most ${TG_RL_MAX_STANDING}`]);
  });
});

// ---- the datapath's lookup, modelled, against the reference ------------------------

/** Whether a trie key's prefix contains addr. */
function keyContains(key: TgLpmV4Key | TgLpmV6Key, addr: Buffer): boolean {
  let len = key.prefixlen - 8;
  for (let i = 0; len > 0; i++, len -= 8) {
    const m = len >= 8 ? 0xff : (0xff << (8 - len)) & 0xff;
    if ((key.addr_be[i]! & m) !== (addr[i]! & m)) return false;
  }
  return true;
}

/** An LPM trie lookup: the longest prefix of this generation holding addr (undefined: no entry, mask_and with NULL). */
function lpmLookup(entries: readonly LpmEntry[], generation: number, addr: Buffer): bigint {
  let best: LpmEntry | undefined;
  for (const e of entries) {
    if (e.key.generation !== generation || !keyContains(e.key, addr)) continue;
    if (!best || e.key.prefixlen > best.key.prefixlen) best = e;
  }
  return best ? bits(best.value) : 0n;
}

const lowest = (m: bigint): number => {
  if (m === 0n) return -1;
  let i = 0;
  while (!((m >> BigInt(i)) & 1n)) i++;
  return i;
};

type ModelVerdict = { kind: 'rule'; bit: number; slot: number; action: number } | { kind: 'default'; action: number } | { kind: 'undecidable'; bit: number } | { kind: 'off' };

/** The firewall maps as the kernel holds them: keyed lookups only. */
class ModelMaps {
  readonly protocols: Map<number, bigint>;
  readonly ports: Map<number, bigint>;
  readonly tenants: Map<string, bigint>;
  readonly rules: Map<number, { slot: number; action: number }>;

  constructor(readonly plan: FirewallPlan) {
    this.protocols = new Map(plan.protocols.map((e) => [e.key, bits(e.value)]));
    this.ports = new Map(plan.ports.map((e) => [e.key, bits(e.value)]));
    this.tenants = new Map(plan.tenants.map((e) => [`${e.key.tenant_id}/${e.key.generation}/${e.key.side}`, bits(e.value)]));
    this.rules = new Map(plan.rules.map((e) => [e.key, e.value]));
  }

  /** side_mask() */
  side(tenant: number, side: number, gen: number): bigint {
    const g = this.plan.gen;
    if (!tenant) return 0n;
    const m = g.flags & TG_FW_TENANT_KEYS ? this.tenants.get(`${tenant}/${gen}/${side}`) : undefined;
    return m ?? bits(side === TG_FW_TO ? g.to_tenant : g.from_tenant);
  }

  /** Whether some candidate holds only for some tenants on some side: fw_needs_sides(). */
  needsSides(m: bigint): boolean {
    return (m & ~bits(this.plan.gen.any_side)) !== 0n;
  }

  /** fw_sides(), with the packet's tenants as the metering maps (or the tenant's own interface) give them. */
  sides(m: bigint, p: RulePacket, gen: number): bigint {
    return m & (this.side(p.dstTenant, TG_FW_TO, gen) | this.side(p.srcTenant, TG_FW_FROM, gen) | bits(this.plan.gen.any_side));
  }

  /** fw_filter() from the parsed packet on, step by step; the live generation is the plan's. */
  filter(p: RulePacket, portsUnknown: boolean): ModelVerdict {
    const g = this.plan.gen;
    const gen = this.plan.generation;
    if (!(g.flags & TG_FW_ON)) return { kind: 'off' };
    const anyPort = bits(g.any_port);
    const tries = (t: FirewallPlan['src']) => (p.family === 4 ? t.v4 : t.v6) as LpmEntry[];
    let m = bits(g.active);
    m &= this.protocols.get(gen * TG_PROTOCOLS + p.protocol) ?? 0n;
    if (g.flags & TG_FW_SRC) m &= lpmLookup(tries(this.plan.src), gen, p.src);
    if (g.flags & TG_FW_DST) m &= lpmLookup(tries(this.plan.dst), gen, p.dst);
    const hasPorts = PORT_PROTOCOLS.has(p.protocol);
    if (hasPorts && !portsUnknown) {
      assert.ok(p.dport !== undefined);
      m &= (this.ports.get(gen * TG_PORTS + p.dport) ?? 0n) | anyPort; // an array map: a missing entry reads 0
    } else if (hasPorts) {
      if (g.flags & TG_FW_SIDES && this.needsSides(m)) m = this.sides(m, p, gen);
      const first = lowest(m);
      if (first >= 0 && !((anyPort >> BigInt(first)) & 1n)) return { kind: 'undecidable', bit: first };
      m &= anyPort;
    } else {
      m &= anyPort;
    }
    if (g.flags & TG_FW_SIDES && this.needsSides(m)) m = this.sides(m, p, gen);
    const b = lowest(m);
    const rule = b >= 0 ? this.rules.get(gen * TG_FW_MAX_RULES + b) : undefined;
    return rule ? { kind: 'rule', bit: b, slot: rule.slot, action: rule.action } : { kind: 'default', action: g.default_action };
  }
}

const TENANT_IDS = [0, 11, 22, 33, 44] as const; // 44: a tenant the policy does not name in rules or tenants

/** The tenant owning an address, as the metering maps would say (ids as IDS gives them). */
function tenantOf(addr: Buffer, family: 4 | 6): number {
  return fixtureTenantOf(addr, family) * 11;
}

function randomPacket(rnd: () => number, security: SecuritySection): { packet: RulePacket; portsUnknown: boolean } {
  const family: 4 | 6 = rnd() < 0.6 ? 4 : 6;
  const protocol = pick(rnd, [6, 17, 6, 17, 132, 1, 58, 47, 0, 255]);
  const dport = PORT_PROTOCOLS.has(protocol) ? randomDport(rnd, security) : undefined;
  const src = randomAddr(rnd, family);
  const dst = randomAddr(rnd, family);
  // Mostly the tenant of the address; sometimes another (a tenant's own interface decides).
  const srcTenant = rnd() < 0.8 ? tenantOf(src, family) : pick(rnd, TENANT_IDS);
  const dstTenant = rnd() < 0.8 ? tenantOf(dst, family) : pick(rnd, TENANT_IDS);
  const portsUnknown = dport !== undefined && rnd() < 0.08;
  return { packet: { family, src, dst, protocol, dport: portsUnknown ? undefined : dport, srcTenant, dstTenant }, portsUnknown };
}

function agrees(model: ModelVerdict, want: RuleVerdict, plan: FirewallPlan): boolean {
  if (want.kind === 'rule') {
    return model.kind === 'rule' && model.bit === want.index && model.action === ACTION_CODES[want.action] && model.slot === plan.ruleSlots[want.index]!.slot;
  }
  if (want.kind === 'default') return model.kind === 'default' && model.action === ACTION_CODES[want.action];
  return model.kind === 'undecidable' && model.bit === want.index;
}

describe('the compiled maps, looked up as the datapath does, agree with the reference', () => {
  test('a hand-written case of every lookup', () => {
    const s = sec([
      '{ name: ssh-in, action: allow, tenant: alpha, protocols: [tcp], ports: [22], src: [198.18.2.0/24] }',
      '{ name: block-beta, action: deny, direction: both, tenant: beta }',
      '{ name: wide, action: log, src: [198.18.0.0/16] }',
    ], 'defaultAction: deny');
    const m = new ModelMaps(compile(s, 1));
    const pkt = (o: Partial<RulePacket>): RulePacket => ({
      family: 4, src: Buffer.from([198, 18, 2, 5]), dst: Buffer.from([198, 18, 1, 5]), protocol: 6, dport: 22, srcTenant: 22, dstTenant: 11, ...o,
    });
    assert.deepEqual(m.filter(pkt({}), false), { kind: 'rule', bit: 0, slot: 1, action: TG_FW_ALLOW });
    assert.deepEqual(m.filter(pkt({ dport: 23 }), false), { kind: 'rule', bit: 1, slot: 2, action: TG_FW_DENY });
    assert.deepEqual(m.filter(pkt({ dport: undefined }), true), { kind: 'undecidable', bit: 0 });
    assert.deepEqual(m.filter(pkt({ srcTenant: 33, dport: 23 }), false), { kind: 'rule', bit: 2, slot: 3, action: TG_FW_LOG });
    assert.deepEqual(m.filter(pkt({ srcTenant: 33, dstTenant: 0, dport: 23 }), false), { kind: 'default', action: TG_FW_DENY });
  });

  test('random rule sets and packets (seeded)', () => {
    const seed = 0x7011_6a7e;
    const rnd = mulberry32(seed);
    const SETS = 40;
    const PER_SET = 150;
    const kinds = { rule: 0, default: 0, undecidable: 0 };
    for (let s = 0; s < SETS; s++) {
      const security = randomSecurity(rnd, s);
      const plan = compile(security, (s & 1) as 0 | 1);
      const maps = new ModelMaps(plan);
      for (let i = 0; i < PER_SET; i++) {
        const { packet, portsUnknown } = randomPacket(rnd, security);
        const want = evaluateRules(security.rules, security.defaultAction, IDS, packet, portsUnknown);
        const got = maps.filter(packet, portsUnknown);
        kinds[want.kind]++;
        if (!agrees(got, want, plan)) {
          const show = { ...packet, src: formatCidr({ family: packet.family, addr: packet.src, prefix: packet.family === 4 ? 32 : 128 }), dst: formatCidr({ family: packet.family, addr: packet.dst, prefix: packet.family === 4 ? 32 : 128 }) };
          assert.fail(`seed ${seed}, set ${s}, case ${i}: model ${JSON.stringify(got)}, reference ${JSON.stringify(want)}\npacket ${JSON.stringify(show)} portsUnknown=${portsUnknown}\nrules ${JSON.stringify(security.rules)}`);
        }
      }
    }
    // The generator must reach every outcome, or the comparison proves little.
    assert.ok(kinds.rule > SETS * PER_SET * 0.2, `rule verdicts: ${JSON.stringify(kinds)}`);
    assert.ok(kinds.default > SETS * PER_SET * 0.05, `default verdicts: ${JSON.stringify(kinds)}`);
    assert.ok(kinds.undecidable > 20, `undecidable verdicts: ${JSON.stringify(kinds)}`);
  });

  test('the model itself: parseCidr and the trie lookup agree on containment', () => {
    // Guards the model against being wrong the same way as the compiler.
    const rnd = mulberry32(7);
    for (let i = 0; i < 2000; i++) {
      const c = parseCidr(randomCidr(rnd));
      const addr = randomAddr(rnd, c.family);
      const key = { prefixlen: 8 + c.prefix, generation: 0, addr_be: c.addr, pad: Buffer.alloc(3) };
      const mask = Buffer.from(addr);
      for (let j = 0; j < mask.length; j++) mask[j]! &= (0xff << (8 - Math.max(0, Math.min(8, c.prefix - 8 * j)))) & 0xff;
      assert.equal(keyContains(key, addr), mask.equals(c.addr), `${formatCidr(c)} ∋ ${[...addr].join('.')}`);
    }
  });
});
