import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TG_CLASS_INLINE_V4, TG_CLASS_V4_INLINE, TgIfaceKey, TgLpmV4Key, TgLpmV6Key, TgTenantRef } from '../kernel/abi.gen.js';
import { CompileError, compileMetering, diffEntries, emptyClassGen, type MeteringContext } from './compile-metering.js';
import { parsePolicy } from './load.js';
import type { Policy } from './schema.js';

const POLICY = `version: 1
metering:
  interfaces:
    - name: tg-br0
    - name: eth0
      mode: xdp-generic
tenants:
  - name: acme
    selectors:
      cidrs: [198.18.1.0/24, "2001:2:0:1::/64", 198.18.7.9]
      interfaces: [veth-acme, veth-gone]
  - name: globex
    selectors:
      cidrs: [198.18.0.0/16, "::ffff:198.19.0.0/120", "2001:2::/48"]
`;
const ifindexes = new Map([['tg-br0', 7], ['eth0', 2], ['veth-acme', 41]]);
const ctx = (over: Partial<MeteringContext> = {}): MeteringContext => ({
  tenantIds: new Map([['acme', 1], ['globex', 2]]),
  ifindexOf: (n) => ifindexes.get(n),
  generation: 1,
  ...over,
});

test('compiles tenants and interfaces into key/value entries for one generation', () => {
  const plan = compileMetering(parsePolicy(POLICY), ctx());
  assert.equal(plan.generation, 1);
  assert.deepEqual(plan.tenants, [{ name: 'acme', id: 1 }, { name: 'globex', id: 2 }]);
  assert.deepEqual(plan.attach, [{ ifname: 'tg-br0', ifindex: 7, mode: 'tc', metered: true }, { ifname: 'eth0', ifindex: 2, mode: 'xdp-generic', metered: true }]);
  assert.deepEqual(plan.ifaces, [{ key: { ifindex: 41, generation: 1 }, value: { tenant_id: 1, flags: 0 } }]);
  assert.equal(plan.warnings.length, 1);
  assert.match(plan.warnings[0], /interface "veth-gone" of tenant "acme" does not exist/);

  // Sorted by address then prefix length: deterministic output.
  assert.deepEqual(
    plan.v4.map((e) => [[...e.key.addr_be].join('.'), e.key.prefixlen, e.value.tenant_id]),
    [['198.18.0.0', 24, 2], ['198.18.1.0', 32, 1], ['198.18.7.9', 40, 1], ['198.19.0.0', 32, 2]],
  );
  assert.deepEqual(plan.v6.map((e) => [e.key.prefixlen, e.value.tenant_id]), [[56, 2], [72, 1]]);
});

test('key and value bytes match the kernel layout', () => {
  const plan = compileMetering(parsePolicy(POLICY), ctx({ generation: 1 }));
  const acme24 = plan.v4.find((e) => e.key.prefixlen === 32 && e.key.addr_be[2] === 1)!;
  // struct tg_lpm_v4_key: u32 prefixlen (LE) = 8 + 24, u8 generation, 4 address bytes, 3 pad bytes.
  assert.equal(TgLpmV4Key.encode(acme24.key).toString('hex'), '20000000' + '01' + 'c6120100' + '000000');
  assert.equal(TgTenantRef.encode(acme24.value).toString('hex'), '01000000' + '00000000');

  const acme64 = plan.v6.find((e) => e.value.tenant_id === 1)!;
  // 8 + 64 = 72 = 0x48; 2001:2:0:1::/64.
  assert.equal(TgLpmV6Key.encode(acme64.key).toString('hex'), '48000000' + '01' + '20010002000000010000000000000000' + '000000');
  assert.equal(TgIfaceKey.encode(plan.ifaces[0].key).toString('hex'), '29000000' + '01000000');

  const gen0 = compileMetering(parsePolicy(POLICY), ctx({ generation: 0 }));
  assert.ok(gen0.v4.every((e) => e.key.generation === 0 && TgLpmV4Key.encode(e.key)[4] === 0));
  assert.ok(gen0.ifaces.every((e) => e.key.generation === 0));
});

test('missing ids, bad ids and missing metering interfaces are all reported', () => {
  const p = parsePolicy(POLICY);
  assert.throws(
    () => compileMetering(p, ctx({ tenantIds: new Map([['acme', 0]]), ifindexOf: (n) => (n === 'eth0' ? 2 : undefined) })),
    (e: unknown) => {
      assert.ok(e instanceof CompileError);
      assert.deepEqual(e.problems, [
        'tenant "acme" has id 0; ids are 1..4294967295 (0 is the unattributed row)',
        'tenant "globex" has no tenant id',
        'metering interface "tg-br0" does not exist',
      ]);
      assert.match(e.message, /3 problems/);
      return true;
    },
  );
  assert.throws(() => compileMetering(p, ctx({ tenantIds: new Map([['acme', 5], ['globex', 5]]) })), /tenants "acme" and "globex" have the same id 5/);
  assert.throws(() => compileMetering(p, ctx({ maxTenants: 2 })), /tenant "globex" has id 2, beyond the datapath's 2 tenant counters/);
  assert.throws(() => compileMetering(p, ctx({ generation: 2 as 0 })), /generation must be 0 or 1/);
});

test('two tenant interfaces that resolve to one ifindex are an error', () => {
  const p = parsePolicy('version: 1\ntenants:\n  - name: a\n    selectors: { interfaces: [x] }\n  - name: b\n    selectors: { interfaces: [y] }\n');
  assert.throws(() => compileMetering(p, ctx({ tenantIds: new Map([['a', 1], ['b', 2]]), ifindexOf: () => 9 })), /interface "y" of tenant "b" has ifindex 9, already used by "x" of tenant "a"/);
});

test('a generation may use at most half of a map', () => {
  const cidrs = Array.from({ length: 32_769 }, (_, i) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  const policy: Policy = { ...parsePolicy('version: 1\n'), tenants: [{ name: 'big', selectors: { cidrs, cgroups: [], interfaces: [] }, labels: {} }] };
  assert.throws(() => compileMetering(policy, ctx({ tenantIds: new Map([['big', 1]]) })), /32769 IPv4 prefixes; at most 32768 fit one generation/);
  policy.tenants[0].selectors.cidrs = cidrs.slice(1);
  assert.equal(compileMetering(policy, ctx({ tenantIds: new Map([['big', 1]]) })).v4.length, 32_768);
});

test('diffEntries: adds, updates and deletes; a generation switch deletes all old keys', () => {
  const p = parsePolicy(POLICY);
  const g0 = compileMetering(p, ctx({ generation: 0 }));
  const g1 = compileMetering(p, ctx({ generation: 1 }));
  const d = diffEntries(g0.v4, g1.v4);
  assert.equal(d.add.length, g1.v4.length);
  assert.equal(d.update.length, 0);
  assert.deepEqual(d.delete, g0.v4.map((e) => e.key));

  const same = diffEntries(g1.v4, compileMetering(p, ctx({ generation: 1 })).v4);
  assert.deepEqual(same, { add: [], update: [], delete: [] }, 'equal keys compare by bytes, not identity');

  const moved = compileMetering(p, ctx({ generation: 1, tenantIds: new Map([['acme', 3], ['globex', 2]]) }));
  const d2 = diffEntries(g1.v4, moved.v4);
  assert.equal(d2.add.length, 0);
  assert.equal(d2.delete.length, 0);
  assert.deepEqual(d2.update.map((e) => e.value.tenant_id), [3, 3]);

  const custom = diffEntries([{ key: 'a', value: 1 }, { key: 'b', value: 2 }], [{ key: 'b', value: 2 }, { key: 'c', value: 3 }], (k) => k);
  assert.deepEqual(custom, { add: [{ key: 'c', value: 3 }], update: [], delete: ['a'] });
});

const arbV4 = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }));
const arbV6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }));
function maskText(family: 4 | 6, bytes: Uint8Array, prefix: number): string {
  const b = Buffer.from(bytes);
  for (let i = 0; i < b.length; i++) b[i] &= (0xff << (8 - Math.max(0, Math.min(8, prefix - 8 * i)))) & 0xff;
  const addr = family === 4 ? [...b].join('.') : Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
  return `${addr}/${prefix}`;
}
function bitsBeyondPrefixAreZero(addr: Buffer, prefix: number): boolean {
  for (let bit = prefix; bit < addr.length * 8; bit++) if (addr[bit >> 3] & (0x80 >> (bit & 7))) return false;
  return true;
}

test('property: compile never emits a key with address bits set beyond its prefix, and prefixlen = 8 + prefix', () => {
  let compiled = 0;
  fc.assert(
    fc.property(
      fc.uniqueArray(arbV4.map(([b, p]) => maskText(4, b, p)), { maxLength: 20 }),
      fc.uniqueArray(arbV6.map(([b, p]) => maskText(6, b, p)), { maxLength: 20 }),
      fc.constantFrom<0 | 1>(0, 1),
      (v4, v6, generation) => {
        const text = `version: 1\ntenants:\n  - name: t\n    selectors:\n      cidrs: ${JSON.stringify([...v4, ...v6, '198.18.0.0/15'])}\n`;
        let policy: Policy;
        try {
          policy = parsePolicy(text);
        } catch {
          return true; // an IPv4-mapped v6 prefix that duplicates a v4 one: rejected, nothing compiled
        }
        const plan = compileMetering(policy, ctx({ tenantIds: new Map([['t', 1]]), generation }));
        compiled++;
        const all = [...plan.v4.map((e) => ({ ...e, bits: 32 })), ...plan.v6.map((e) => ({ ...e, bits: 128 }))];
        return (
          all.length === policy.tenants[0].selectors.cidrs.length &&
          all.every(({ key, bits }) => {
            const prefix = key.prefixlen - 8;
            const enc = (bits === 32 ? TgLpmV4Key.encode(key as never) : TgLpmV6Key.encode(key as never));
            return prefix >= 0 && prefix <= bits && key.generation === generation && enc[4] === generation &&
              bitsBeyondPrefixAreZero(key.addr_be, prefix) && enc.subarray(5 + bits / 8).equals(Buffer.alloc(3));
          })
        );
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(compiled > 250, `only ${compiled} of 300 generated documents compiled`);
});

// ---- traffic classes -------------------------------------------------------

const CLASSES = `version: 1
classes:
  - name: internet
    billable: true
  - name: mgmt
    billable: false
    match: { cidrs: [198.18.7.0/24, "2001:2:0:5::/64"], protocols: [tcp], ports: [22, 8000-8002] }
  - name: internal
    match: { cidrs: [198.18.0.0/16] }
  - name: icmp
    match: { protocols: [icmp] }
tenants:
  - name: acme
    selectors: { cidrs: [198.18.1.0/24] }
`;
const classIds = new Map([['internet', 0], ['mgmt', 3], ['internal', 1], ['icmp', 2]]);
const classCtx = (over: Partial<MeteringContext> = {}): MeteringContext =>
  ctx({ tenantIds: new Map([['acme', 1]]), classIds, generation: 0, ...over });

test('classes: bits in policy order, ids from the ledger, default class first', () => {
  const plan = compileMetering(parsePolicy(CLASSES), classCtx());
  assert.deepEqual(plan.classes, [
    { name: 'internet', id: 0, billable: true },
    { name: 'mgmt', id: 3, billable: false },
    { name: 'internal', id: 1, billable: true },
    { name: 'icmp', id: 2, billable: true },
  ]);
  const m = plan.classMaps;
  assert.deepEqual([m.gen.active, m.gen.any_cidr, m.gen.any_port], [0b111, 0b100, 0b110]);
  assert.deepEqual(m.ids, [{ key: 0, value: 3 }, { key: 1, value: 1 }, { key: 2, value: 2 }]);
  // Two IPv4 CIDRs: inline, each with only the classes listing it (the program ORs every CIDR containing the peer).
  assert.equal(m.gen.flags, TG_CLASS_V4_INLINE);
  assert.deepEqual(inlineV4(m.gen), [['198.18.0.0', '255.255.0.0', 0b010], ['198.18.7.0', '255.255.255.0', 0b001]]);
  assert.ok(m.gen.v4.slice(2).every((e) => e.addr_be === 0 && e.mask_be === 0 && e.classes === 0), 'unused inline slots are zero');
  assert.deepEqual(m.v4, [], 'no IPv4 prefix in the trie');
  assert.deepEqual(m.v6.map((e) => e.value), [0b101]);
  // TCP: mgmt and internal (internal has no protocol condition); ICMP: internal and icmp; UDP: internal only.
  const proto = new Map(m.protocols.map((e) => [e.key, e.value]));
  assert.equal(proto.get(6), 0b011);
  assert.equal(proto.get(1), 0b110);
  assert.equal(proto.get(17), 0b010);
  assert.equal(m.protocols.length, 256);
  assert.deepEqual(m.ports.map((e) => e.key), [22, 8000, 8001, 8002]);
  assert.ok(m.ports.every((e) => e.value === 0b001));
});

const dotted = (be: number): string => { const b = Buffer.alloc(4); b.writeUInt32LE(be); return [...b].join('.'); };
const inlineV4 = (g: { n_v4: number; v4: Array<{ addr_be: number; mask_be: number; classes: number }> }) =>
  g.v4.slice(0, g.n_v4).map((e) => [dotted(e.addr_be), dotted(e.mask_be), e.classes]);

test('classes: more IPv4 CIDRs than fit inline go to the trie, each prefix with the classes covering it', () => {
  const filler = Array.from({ length: TG_CLASS_INLINE_V4 - 1 }, (_, i) => `198.19.9.${i}/32`);
  const doc = CLASSES.replace('  - name: icmp\n', `  - name: filler\n    match: { cidrs: [${filler.join(', ')}] }\n  - name: icmp\n`);
  const m = compileMetering(parsePolicy(doc), classCtx({ classIds: new Map([...classIds, ['filler', 4]]), maxClasses: 5 })).classMaps;
  assert.deepEqual([m.gen.flags, m.gen.n_v4], [0, 0]);
  assert.equal(m.v4.length, TG_CLASS_INLINE_V4 + 1);
  // The nested /24 carries internal's bit (its /16 covers it) and the class without CIDRs (icmp, now bit 3).
  const v4 = new Map(m.v4.map((e) => [`${[...e.key.addr_be].join('.')}/${e.key.prefixlen - 8}`, e.value]));
  assert.equal(v4.get('198.18.0.0/16'), 0b1010);
  assert.equal(v4.get('198.18.7.0/24'), 0b1011);
  assert.equal(v4.get('198.19.9.3/32'), 0b1100);
});

test('classes: a /0 and a /32 inline', () => {
  const doc = `version: 1\nclasses:\n  - { name: one, match: { cidrs: [198.18.3.4/32] } }\n  - { name: all, match: { cidrs: [0.0.0.0/0] } }\n`;
  const m = compileMetering(parsePolicy(doc), classCtx({ classIds: new Map([['one', 1], ['all', 2]]) })).classMaps;
  assert.deepEqual(inlineV4(m.gen), [['0.0.0.0', '0.0.0.0', 0b10], ['198.18.3.4', '255.255.255.255', 0b01]]);
});

test('classes: slots are offset by the generation', () => {
  const m = compileMetering(parsePolicy(CLASSES), classCtx({ generation: 1 })).classMaps;
  assert.ok(m.protocols.every((e) => e.key >= 256 && e.key < 512));
  assert.ok(m.ports.every((e) => e.key >= 65536));
  assert.ok(m.ids.every((e) => e.key >= 32 && e.key < 64));
  assert.ok(m.v4.every((e) => e.key.generation === 1));
});

test('classes: no classes means the default class only, with no maps', () => {
  const plan = compileMetering(parsePolicy('version: 1\ntenants: [{ name: a, selectors: { cidrs: [198.18.1.0/24] } }]\n'), ctx({ tenantIds: new Map([['a', 1]]) }));
  assert.deepEqual(plan.classes, [{ name: 'internet', id: 0, billable: true }]);
  assert.deepEqual(plan.classMaps, { gen: emptyClassGen(), v4: [], v6: [], protocols: [], ports: [], ids: [] });
});

test('classes: missing ids, ids beyond the counter array and too many classes are refused', () => {
  assert.throws(() => compileMetering(parsePolicy(CLASSES), classCtx({ classIds: new Map([['mgmt', 1]]) })), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems, ['class "internal" has no class id', 'class "icmp" has no class id']);
    return true;
  });
  assert.throws(() => compileMetering(parsePolicy(CLASSES), classCtx({ maxClasses: 3 })), /class "mgmt" has id 3; the datapath counts classes 1\.\.2/);
  const many = `version: 1\nclasses:\n${Array.from({ length: 33 }, (_, i) => `  - { name: c${i}, match: { ports: [${i + 1}] } }`).join('\n')}\n`;
  assert.throws(
    () => compileMetering(parsePolicy(many), classCtx({ classIds: new Map(Array.from({ length: 33 }, (_, i) => [`c${i}`, i + 1])), maxClasses: 64 })),
    /33 classes besides "internet"; at most 32/,
  );
});

test('classes: the 32nd class uses the top bit without sign trouble', () => {
  const doc = `version: 1\nclasses:\n${Array.from({ length: 32 }, (_, i) => `  - { name: c${i}, match: { cidrs: [198.18.${i}.0/24], ports: [${i + 1}] } }`).join('\n')}\n`;
  const m = compileMetering(parsePolicy(doc), classCtx({ classIds: new Map(Array.from({ length: 32 }, (_, i) => [`c${i}`, i + 1])), maxClasses: 64 })).classMaps;
  assert.equal(m.gen.active, 0xffff_ffff);
  assert.equal(m.v4.find((e) => e.key.addr_be[2] === 31)!.value, 0x8000_0000, '32 CIDRs: in the trie');
  assert.equal(m.ports.find((e) => e.key === 32)!.value, 0x8000_0000);
});
